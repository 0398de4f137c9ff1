"""tf.distribute for every recipe: choose the strategy, split the batch, keep one writer.

We build no cluster code: a recipe's `build` creates its model, optimizer, metrics and
schedules, so running the whole recipe inside `strategy.scope()` (what `trainer train
--strategy=...` does through `distributed`) puts all of them on the strategy without a change
to the recipe, and Keras's own `fit` distributes the `tf.data` input. This module owns:

- the `train` command's distribution options (`DistributeOptions`) and the strategy they name
  (`auto`, `default`, `mirrored`, `multi_worker`, `tpu`);
- the cluster: `TF_CONFIG` as a cluster manager sets it, or written from `--workers` and
  `--task_index`; which process is the chief;
- the batch rule (the recipe's `batch_size` is the global batch; `--per_replica_batch_size`
  sets it per replica instead) and the learning-rate rule (`none`, or `linear` in the global
  batch), both printed at start; the auto-shard policy of the input;
- the chief-only rule: only the chief writes the run folder; every other worker runs the same
  code (collective ops need every worker in every step, save and evaluation included) into a
  scratch folder it removes at exit, and reads and writes the shared backup the way tf_keras's
  `BackupAndRestore` does (the chief's checkpoint under `backup/chief`, its own in a
  `backup/workertemp_N` folder that it deletes after each write);
- `--local_workers=N`: N worker processes on this machine over loopback (127.0.0.1), all
  restarted from the last backup when one dies, a bounded number of times.

It must not import `trainer.cli` or any recipe, and never opens a connection itself: the
processes it starts talk to each other through TensorFlow's collective ops.

Example (what `trainer train digits --local_workers=2` runs in each worker process):

    from trainer.distribute import DistributeOptions, distributed
    with distributed(DistributeOptions(workers="127.0.0.1:20001,127.0.0.1:20002", task_index=0)):
        recipe.main(config)        # model, optimizer and metrics created under the scope
"""

import atexit
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer.config import ConfigError, choice, limit, option
from trainer.config import split_arguments as config_split_arguments
from trainer.processes import describe_exit, exits, free_port, log_tail, start, stop

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
LEARNING_RATE_RULES = ("none", "linear")
# Exit code of a worker whose options were refused: restarting it would fail the same way.
OPTION_ERROR_EXIT_CODE = 2


class WorkerLostError(ValueError):
    """Another worker of the cluster stopped answering (killed, crashed, its machine gone)."""


def _check_workers(text: str) -> None:
    for address in filter(None, text.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                f"--workers must list host:port addresses separated by commas, received "
                f"{address!r} in {text!r} (e.g. --workers=10.0.0.1:2222,10.0.0.2:2222)"
            )


@dataclasses.dataclass
class DistributeOptions:
    """Options of `trainer train` (not of any recipe) that spread training over devices or
    machines."""

    # auto: multi_worker when TF_CONFIG or --workers names a cluster, mirrored when several
    # GPUs are visible, else default (one device)
    strategy: str = choice("auto", *STRATEGIES)
    workers: str = option("", check=_check_workers)  # host:port of every worker, chief first
    task_index: int = option(-1)  # this process's place in --workers (0 = the chief)
    local_workers: int = limit(0)  # start N workers on this machine over loopback; 0 = off
    # examples per replica per step; 0 = the recipe's batch_size is the global batch
    per_replica_batch_size: int = limit(0)
    # none: keep the learning rate; linear: multiply it by global batch / recipe batch_size
    scale_learning_rate: str = choice("none", *LEARNING_RATE_RULES)
    max_restarts: int = limit(3)  # --local_workers: restarts of all workers after one dies


def split_arguments(argv: list[str]) -> tuple[DistributeOptions, list[str]]:
    """Separates the distribution options from the recipe's options and parses them.

    Raises:
        ConfigError: a distribution option with a bad value, or --workers without
            --task_index (or the other way round).
    """
    from trainer.config import parse_args

    ours, rest = config_split_arguments(DistributeOptions, argv)
    options = parse_args(DistributeOptions, ours, program="trainer train")
    if bool(options.workers) != (options.task_index >= 0):
        raise ConfigError(
            f"--workers and --task_index go together (received --workers={options.workers!r}, "
            f"--task_index={options.task_index}): give every worker the same --workers list "
            "and its own --task_index (0 = the chief)"
        )
    if options.workers:
        count = len(options.workers.split(","))
        if options.task_index >= count:
            raise ConfigError(
                f"--task_index={options.task_index} is not in --workers, which lists {count} "
                f"workers: use 0 to {count - 1}"
            )
    if options.local_workers and options.workers:
        raise ConfigError(
            f"--local_workers={options.local_workers} starts its own cluster on this machine, "
            f"so it takes no --workers (received {options.workers!r}) or --task_index; use "
            "one or the other"
        )
    if options.local_workers and options.strategy not in ("auto", "multi_worker"):
        raise ConfigError(
            f"--local_workers={options.local_workers} trains with multi_worker, received "
            f"--strategy={options.strategy}; leave --strategy out"
        )
    if options.local_workers == 1:
        raise ConfigError("--local_workers=1 is one process: use 2 or more, or leave it out")
    return options, rest


# ----------------------------------------------------------------------------- the cluster


def cluster_spec() -> dict[str, Any] | None:
    """The parsed `TF_CONFIG` environment variable, or None when it is not set.

    Raises:
        ValueError: TF_CONFIG is not JSON, or names no cluster or task.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"TF_CONFIG is not valid JSON ({error}), received {text[:200]!r}"
        ) from None
    if not isinstance(spec, dict) or not spec.get("cluster") or "task" not in spec:
        raise ValueError(
            'TF_CONFIG must hold {"cluster": {"worker": ["host:port", ...]}, "task": '
            f'{{"type": "worker", "index": 0}}}}, received {text[:200]!r}'
        )
    return spec


def write_cluster_spec(workers: str, task_index: int) -> None:
    """Sets TF_CONFIG for a cluster of `workers` (host:port, comma-separated) in which this
    process is worker `task_index`; worker 0 is the chief."""
    spec = {
        "cluster": {"worker": [address.strip() for address in workers.split(",")]},
        "task": {"type": "worker", "index": task_index},
    }
    os.environ["TF_CONFIG"] = json.dumps(spec)


def worker_count() -> int:
    """How many training processes the cluster in TF_CONFIG has (1 without TF_CONFIG)."""
    spec = cluster_spec()
    if spec is None:
        return 1
    cluster = spec["cluster"]
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def is_chief() -> bool:
    """True for the process that writes the run folder: the only process without TF_CONFIG,
    the `chief` task, or worker 0 of a cluster that has no `chief` task."""
    spec = cluster_spec()
    if spec is None:
        return True
    task_type, index = spec["task"].get("type"), int(spec["task"].get("index", 0))
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and not spec["cluster"].get("chief")


def task_name() -> str:
    spec = cluster_spec()
    if spec is None:
        return "single process"
    return f"{spec['task'].get('type')} {spec['task'].get('index', 0)}"


# -------------------------------------------------------------------------- the strategy

# What `distributed` set up in this process: the strategy, the batch and learning-rate
# lines to print, and the scratch folders of a non-chief worker (scratch -> shared run folder).
_state: dict[str, Any] = {"strategy": None, "options": None}
_scratch: dict[Path, Path] = {}


def create_strategy(name: str):
    """The `tf.distribute` strategy `name` names, for this machine and TF_CONFIG.

    `mirrored` uses every visible GPU, or else every logical CPU device when more than one
    was configured (`tf.config.set_logical_device_configuration`, as the tests do).

    Raises:
        ValueError: an unknown name; `multi_worker` without a cluster; `mirrored` with a
            cluster; `tpu` without a TPU.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, received {name!r}")
    spec = cluster_spec()
    import tensorflow as tf

    if name == "auto":
        if spec is not None:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        if spec is None:
            raise ValueError(
                "--strategy=multi_worker needs a cluster: set TF_CONFIG (a cluster manager "
                "does), pass --workers=host:port,... --task_index=I, or try it on this "
                "machine with --local_workers=2"
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        # Starting the collective server reprints TensorFlow's native start-up notices.
        from trainer.keras_path import _native_stderr_silenced, _quiet_wanted

        with _native_stderr_silenced() if _quiet_wanted() else contextlib.nullcontext():
            return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "mirrored":
        if spec is not None:
            raise ValueError(
                "--strategy=mirrored uses the devices of one machine, but TF_CONFIG names a "
                "cluster: use --strategy=multi_worker (or auto), or unset TF_CONFIG"
            )
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus if gpus else tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    # tpu: look for one on this machine before asking TensorFlow, whose resolver would
    # otherwise query a cloud metadata server and wait for it.
    if not (os.environ.get("TPU_NAME") or Path("/dev/accel0").exists()):
        raise ValueError(
            "--strategy=tpu found no TPU (no TPU_NAME variable and no /dev/accel0): run on a "
            "TPU VM, or set TPU_NAME to your TPU's name, or choose --strategy=auto"
        )
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def strategy_name(strategy) -> str:
    """The public name of `strategy`'s class (TensorFlow's classes carry older names)."""
    names = {
        "_DefaultDistributionStrategy": "default (one device)",
        "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
    }
    return names.get(type(strategy).__name__, type(strategy).__name__)


@contextlib.contextmanager
def distributed(options: DistributeOptions) -> Iterator[Any]:
    """Within this block the strategy `options` names is active (its scope is entered), and
    on a non-chief worker the run folder becomes a scratch folder removed at the end.

    With `--workers` and `--task_index` it first writes TF_CONFIG. Must run before
    TensorFlow executes anything (multi-worker collectives are configured at start-up).
    """
    if options.workers:
        write_cluster_spec(options.workers, options.task_index)
    strategy = create_strategy(options.strategy)
    replicas = strategy.num_replicas_in_sync
    _state.update(strategy=strategy, options=options)
    if options.strategy != "auto" or replicas > 1 or cluster_spec() is not None:
        workers = worker_count()
        print(
            f"strategy: {strategy_name(strategy)}, {replicas} replica(s) over {workers} "
            f"process(es); this process: {task_name()}"
            + ("" if is_chief() else " (writes to a scratch folder; the chief writes the run)"),
            flush=True,
        )
    try:
        with strategy.scope():
            yield strategy
    except Exception as error:
        if in_multi_worker() and _lost_a_worker(error):
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise WorkerLostError(
                f"another worker of the cluster stopped answering ({first_line[:300]}), so "
                "this one stopped too. Restart every worker with `trainer train "
                "--resume=RUN_DIR` and the same --workers or TF_CONFIG: training continues from "
                "the last backup (--local_workers does this for you)"
            ) from error
        raise
    finally:
        _state.update(strategy=None, options=None)
        remove_scratch_folders()


def _lost_a_worker(error: Exception) -> bool:
    """True for the errors collective ops raise when a peer is gone (TensorFlow aborts them
    within seconds, from gRPC's "unavailable"), rather than a hang."""
    import tensorflow as tf

    lost = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.CancelledError)
    return isinstance(error, lost) or "Collective ops is aborted" in str(error)


def active_strategy():
    """The strategy `distributed` set up in this process, or None."""
    return _state["strategy"]


def in_multi_worker() -> bool:
    """True inside `distributed` with a cluster of several processes."""
    return _state["strategy"] is not None and worker_count() > 1


def scale_config(config: Any) -> Any:
    """Applies the batch and learning-rate rules of the active options to a new run's config
    and prints them; returns the config (a copy when something changed).

    The recipe's `batch_size` is the global batch, split over the replicas; with
    `--per_replica_batch_size=B` the global batch becomes B x replicas. `linear` multiplies
    `learning_rate` by global batch / the config's `batch_size` (Goyal et al. 2017: the pair
    the recipe was tuned with keeps its ratio); `none` keeps it. A resumed run is not scaled
    again: its saved config already holds the values it trained with.

    Raises:
        ConfigError: a multi-worker run without --run_dir (the workers must agree on it), a
            rule that needs a `batch_size` or `learning_rate` field the config lacks, or a
            global batch that does not split evenly over the replicas.
    """
    strategy, options = _state["strategy"], _state["options"]
    if strategy is None:
        return config
    replicas = strategy.num_replicas_in_sync
    if in_multi_worker() and not getattr(config, "run_dir", ""):
        raise ConfigError(
            "a multi-worker run needs --run_dir, the same on every worker and on a disk they "
            "share (the chief writes it, the others read its backup); --local_workers picks "
            "one for you"
        )
    base = getattr(config, "batch_size", None)
    wanted = options.per_replica_batch_size * replicas if options.per_replica_batch_size else base
    if base is None and (options.per_replica_batch_size or options.scale_learning_rate != "none"):
        raise ConfigError(
            f"--per_replica_batch_size and --scale_learning_rate set the recipe's batch_size "
            f"and learning_rate, but {type(config).__qualname__} has no batch_size field"
        )
    changes: dict[str, Any] = {}
    if wanted != base:
        changes["batch_size"] = wanted
    rate = getattr(config, "learning_rate", None)
    if options.scale_learning_rate == "linear":
        if rate is None:
            raise ConfigError(
                f"--scale_learning_rate=linear scales learning_rate, but "
                f"{type(config).__qualname__} has no learning_rate field"
            )
        changes["learning_rate"] = rate * wanted / base
    if wanted is not None and wanted % replicas:
        raise ConfigError(
            f"the global batch {wanted} does not split evenly over {replicas} replicas: choose "
            f"a batch_size that is a multiple of {replicas}, or --per_replica_batch_size"
        )
    config = dataclasses.replace(config, **changes) if changes else config
    if replicas > 1 or options.strategy != "auto":
        if options.scale_learning_rate == "linear":
            rule = f"linear: {rate:g} x {wanted}/{base} = {config.learning_rate:g}"
        elif rate is None:  # a recipe without a learning_rate field
            rule = "none"
        else:
            rule = (
                f"none (learning rate {rate:g} as configured; --scale_learning_rate=linear "
                "scales it with the global batch)"
            )
        per_replica = f"{wanted // replicas}" if wanted is not None else "?"
        print(
            f"global batch {wanted} = {per_replica} per replica x {replicas} replicas; "
            f"learning-rate scaling {rule}",
            flush=True,
        )
    return config


def shard_policy(dataset) -> str:
    """ "FILE" when the pipeline reads files (TFRecord, text lines, fixed-length records):
    each worker then reads its own files; "DATA" otherwise: every worker builds the same
    in-memory pipeline and keeps its share of each global batch, so the workers together see
    exactly the batches one process would (FILE would find no files to split and fall back
    with a warning)."""
    import tensorflow as tf

    readers = ("TFRecordDataset", "TextLineDataset", "FixedLengthRecordDataset")
    try:
        graph = tf.raw_ops.DatasetToGraphV2(input_dataset=dataset._variant_tensor)
        graph_def = tf.compat.v1.GraphDef.FromString(graph.numpy())
    except (AttributeError, tf.errors.OpError, ValueError):
        return "DATA"
    operations = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        operations.update(node.op for node in function.node_def)
    return "FILE" if any(op.startswith(readers) for op in operations) else "DATA"


def prepare_input(dataset):
    """`dataset` with the auto-shard policy `shard_policy` chooses when a strategy with more
    than one replica is active (unchanged otherwise), so Keras's `fit` distributes it that
    way. The batches stay global batches: Keras splits each over the replicas."""
    strategy = _state["strategy"]
    if dataset is None or strategy is None or strategy.num_replicas_in_sync == 1:
        return dataset
    import tensorflow as tf

    policy = shard_policy(dataset)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy
    )
    return dataset.with_options(options)


# ---------------------------------------------------------------- chief-only writing


def worker_run_dir(run_dir: str | Path) -> Path | None:
    """A scratch folder that stands in for `run_dir` on a non-chief worker (None on the
    chief): the worker writes there what the chief writes into the run folder, and the folder
    is removed when `distributed` ends or the process exits. Its name is fixed by the run
    folder and the task, so a worker restarted after kill -9 removes what it left before."""
    if is_chief():
        return None
    import hashlib

    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    scratch = Path(tempfile.gettempdir()) / f"trainer-{task_name().replace(' ', '')}-{digest}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    _scratch[scratch] = Path(run_dir)
    return scratch


def shared_run_dir(run_dir: str | Path) -> Path:
    """The run folder every worker shares: `run_dir` itself, or for a non-chief worker's
    scratch folder the run folder it stands in for (where the backup lives)."""
    return _scratch.get(Path(run_dir), Path(run_dir))


def remove_scratch_folders() -> None:
    for scratch in list(_scratch):
        shutil.rmtree(scratch, ignore_errors=True)
        _scratch.pop(scratch, None)


atexit.register(remove_scratch_folders)


# --------------------------------------------------------------------- local workers


def supervise_local_workers(
    count: int,
    first_command: list[str],
    resume_command: list[str],
    run_dir: str | Path,
    max_restarts: int = 3,
) -> int:
    """Runs `count` worker processes of a multi-worker job on this machine and returns the
    job's exit code.

    Each worker runs `first_command` plus `--workers=127.0.0.1:P0,... --task_index=I`; worker
    0, the chief, prints to this terminal and writes `run_dir`, the others print to a log
    file that is shown if they fail. When a worker dies (kill -9, out of memory...) the
    collective ops of the others can no longer finish, so all are stopped and started again
    with `resume_command` (`--resume=RUN_DIR`): every worker restores the chief's last backup
    and the job continues from there, at most `max_restarts` times. A worker refused for its
    options (exit 2) is not restarted.
    """
    from trainer.keras_path import child_environment

    run_dir = Path(run_dir)
    environment = child_environment("TF_CONFIG")
    attempt = 0
    while True:
        resumable = attempt > 0 and (run_dir / "config.yaml").is_file()
        command = resume_command if resumable else first_command
        code = _run_workers_once(count, command, environment, run_dir)
        if code is None:
            return 0
        if code == OPTION_ERROR_EXIT_CODE or (run_dir / "metrics.json").exists():
            return code if code > 0 else 1
        if attempt >= max_restarts:
            print(
                f"giving up after {max_restarts} restart(s); continue the job later with "
                f"`trainer train --resume={run_dir} --local_workers={count}`",
                flush=True,
            )
            return code if code > 0 else 1
        attempt += 1
        # A worker killed while saving leaves its scratch copy of the backup behind.
        for leftover in (run_dir / "backup").glob("workertemp_*"):
            shutil.rmtree(leftover, ignore_errors=True)
        print(
            f"restarting all {count} workers from the last backup in {run_dir / 'backup'} "
            f"(restart {attempt} of {max_restarts})",
            flush=True,
        )


def _run_workers_once(
    count: int, command: list[str], environment: dict[str, str], run_dir: Path
) -> int | None:
    """Starts the `count` workers of one attempt and waits: None when all finished, else the
    exit code of the first that failed, once the others are stopped. Ctrl-C or any error
    stops them all."""
    # New ports on each attempt: the old ones may still be held by the killed processes.
    addresses = ",".join(f"127.0.0.1:{free_port()}" for _ in range(count))
    processes, logs = [], []
    log_folder = Path(tempfile.mkdtemp(prefix="trainer-workers-"))
    try:
        for index in range(count):
            arguments = [*command, f"--workers={addresses}", f"--task_index={index}"]
            logs.append(None if index == 0 else log_folder / f"worker{index}.log")
            processes.append(start(arguments, environment, logs[-1]))
            role = "chief, writes the run folder" if index == 0 else f"log {logs[-1]}"
            print(f"worker {index}: pid {processes[-1].pid} ({role})", flush=True)
        failed = _wait_for_first_failure(processes)
        if failed is None:
            return None
        index, code = failed
        # The others wait in collective ops that cannot finish without the dead worker,
        # and MultiWorkerMirroredStrategy catches SIGTERM (TensorFlow's preemption
        # notice), so terminate() would only wait until they fail on their own (8-10 s
        # measured): kill them. The last backup on disk is what the restart reads.
        stop(processes, grace=0.0)
        print(f"worker {index} stopped with {describe_exit(code)}", flush=True)
        if logs[index] is not None and logs[index].is_file():
            print(f"  last lines of its log:\n{log_tail(logs[index])}", flush=True)
        return code
    except KeyboardInterrupt as interrupt:
        stop(processes, grace=3.0)
        # The chief wrote the run folder in its own process: say here how to continue it.
        if (run_dir / "history.csv").is_file() and not (run_dir / "metrics.json").exists():
            raise KeyboardInterrupt(
                f"The run folder {run_dir} is kept: continue with `trainer train "
                f"--resume={run_dir} --local_workers={count}`."
            ) from interrupt
        raise
    except BaseException:
        stop(processes, grace=3.0)
        raise
    finally:
        shutil.rmtree(log_folder, ignore_errors=True)


def _wait_for_first_failure(processes: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Waits until every process has exited 0 (returns None) or one has failed (returns its
    index and exit code; the others are left running)."""
    for index, code in exits(dict(enumerate(processes))):
        if code != 0:
            return index, code
    return None


def local_worker_command(argv: list[str]) -> list[str]:
    """The command line that runs `trainer train ARGV` in a new Python process."""
    return [sys.executable, "-m", "trainer.cli", "train", *argv]
