"""One process vs two workers on localhost: step time, examples per second, all-reduce cost.

A LOOPBACK MEASUREMENT ON ONE MACHINE: two `MultiWorkerMirroredStrategy` workers share the
same CPU cores and talk over 127.0.0.1, so they are not expected to be faster than one
process; what this measures is the cost the strategy adds per step (the all-reduce of the
gradients and the distributed input) and that the loss curves agree.

The model and data are the fashion_mnist recipe's (real Fashion-MNIST from
/usr/share/datasets/fashion-mnist, first `--train_limit` images, no augmentation or dropout so
that the curves are comparable; batch norm keeps per-replica statistics). Three runs, each in
its own process, with the same global batch:

- reference: plain Keras, `model.fit` on the recipe's compiled model, no strategy;
- two workers: `trainer.distribute` with `--workers=127.0.0.1:P0,127.0.0.1:P1`, each worker
  computing half of each global batch;
- the all-reduce alone: inside each worker, a `tf.function` that all-reduces tensors shaped
  like the model's trainable weights across both workers, timed over `--reduce_calls` calls.

Step time is the median time between consecutive `on_train_batch_end` calls in the last epoch
(the first epoch includes tracing); examples per second are over that whole epoch. The load
average at the start is printed: other processes on the machine slow every run. Prints the table and writes
bench/results/distributed.{json,md}.

Run:  .venv/bin/python bench/distributed.py            # about 2-4 min on 2 cores
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"


def _train(args, output: str, distribute_options: list[str]) -> None:
    """One measured run (in this process): writes step times, losses and, for workers, the
    all-reduce time to `output`."""
    import numpy as np

    import trainer.keras_path as keras_path

    keras_path.import_tensorflow_quietly()
    import tensorflow as tf
    import tf_keras as keras

    import recipes.fashion_mnist as fashion_mnist
    from trainer.distribute import distributed, prepare_input, split_arguments

    config = fashion_mnist.Config(
        train_limit=args.train_limit,
        epochs=args.epochs,
        batch_size=args.batch_size,
        augment="none",
        dropout=0.0,
        backup_every=0,
        seed=0,
    )

    class StepTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    timer = StepTimes()
    result = {}
    options, _ = split_arguments(distribute_options)
    context = distributed(options) if distribute_options else _no_strategy()
    with context as strategy:
        experiment = fashion_mnist.build(config)
        dataset = prepare_input(experiment.train) if distribute_options else experiment.train
        started = time.perf_counter()
        history = experiment.model.fit(dataset, epochs=config.epochs, verbose=0, callbacks=[timer])
        result["fit_seconds"] = time.perf_counter() - started
        result["loss"] = [float(value) for value in history.history["loss"]]
        result["steps_per_epoch"] = len(experiment.train)
        steps = np.diff(timer.times)
        result["step_seconds_median"] = float(np.median(steps))
        result["epoch_seconds_last"] = float(timer.times[-1] - timer.times[0])
        if strategy is not None:
            shapes = [variable.shape for variable in experiment.model.trainable_variables]
            result["gradient_values"] = int(sum(np.prod(shape) for shape in shapes))

            @tf.function
            def all_reduce():
                def step():
                    # Made on the replica: tensors passed in from outside have no device that
                    # MultiWorkerMirroredStrategy can reduce to ("destinations can not be empty").
                    values = [tf.ones(shape) for shape in shapes]
                    context = tf.distribute.get_replica_context()
                    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

                return strategy.run(step)

            for _ in range(5):  # warm up: tracing and the collective's first handshake
                all_reduce()
            started = time.perf_counter()
            for _ in range(args.reduce_calls):
                outputs = all_reduce()
            _ = [value.numpy() for value in strategy.experimental_local_results(outputs)[0]]
            result["all_reduce_seconds"] = (time.perf_counter() - started) / args.reduce_calls
    Path(output).write_text(json.dumps(result))


class _no_strategy:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _spawn(args, name: str, options: list[str], folder: Path) -> subprocess.Popen:
    command = [
        sys.executable,
        __file__,
        "_run",
        str(folder / f"{name}.json"),
        *options,
        f"--train_limit={args.train_limit}",
        f"--epochs={args.epochs}",
        f"--batch_size={args.batch_size}",
        f"--reduce_calls={args.reduce_calls}",
    ]
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    log = open(folder / f"{name}.log", "w")  # noqa: SIM115 (the process holds it)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)


def _wait(process: subprocess.Popen, folder: Path, name: str) -> dict:
    if process.wait() != 0:
        raise SystemExit(f"{name} failed:\n{(folder / f'{name}.log').read_text()[-3000:]}")
    return json.loads((folder / f"{name}.json").read_text())


def compare(args) -> dict:
    import tempfile

    from trainer.distribute import free_port

    folder = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    # One after the other: each run gets both cores to itself.
    reference = _wait(_spawn(args, "reference", [], folder), folder, "reference")
    workers = f"--workers=127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    processes = [_spawn(args, f"worker{i}", [workers, f"--task_index={i}"], folder) for i in (0, 1)]
    chief, other = (_wait(process, folder, f"worker{i}") for i, process in enumerate(processes))
    batch = args.batch_size
    rows = {
        "one process, plain Keras (reference)": reference,
        "two workers, loopback (chief)": chief,
    }
    table = [
        "| run | step time (median) | examples/s | epoch time | final loss | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        # Throughput over the whole last epoch: the median step hides the slow steps.
        row["examples_per_second"] = batch * row["steps_per_epoch"] / row["epoch_seconds_last"]
        ratio = row["examples_per_second"] / reference["examples_per_second"]
        table.append(
            f"| {name} | {row['step_seconds_median'] * 1000:.1f} ms | "
            f"{row['examples_per_second']:.0f} | {row['epoch_seconds_last']:.1f} s | "
            f"{row['loss'][-1]:.4f} | {ratio:.2f}x |"
        )
    reduce_ms = (chief["all_reduce_seconds"] + other["all_reduce_seconds"]) / 2 * 1000
    curve_difference = max(
        abs(a - b) / abs(b) for a, b in zip(chief["loss"], reference["loss"], strict=True)
    )
    summary = {
        "date": when,
        "machine": _machine(),
        "load_average_1min_at_start": load,
        "train_limit": args.train_limit,
        "epochs": args.epochs,
        "global_batch": batch,
        "steps_per_epoch": reference["steps_per_epoch"],
        "gradient_values": chief["gradient_values"],
        "all_reduce_ms_per_step": reduce_ms,
        "all_reduce_share_of_two_worker_step": reduce_ms / 1000 / chief["step_seconds_median"],
        "max_relative_loss_difference": curve_difference,
        "runs": rows,
    }
    text = "\n".join(
        [
            f"Distributed training on localhost, {when}, {_machine()}, load average {load:.1f} "
            "at start.",
            "Loopback measurement: both workers share the same CPU cores, so two workers are "
            "not expected to be faster here.",
            "",
            f"Fashion-MNIST (first {args.train_limit} training images), the fashion_mnist "
            f"recipe's CNN without augmentation or dropout, global batch {batch} "
            f"({batch // 2} per worker), {args.epochs} epochs of "
            f"{reference['steps_per_epoch']} steps; step times from the last epoch.",
            "",
            *table,
            "",
            f"All-reduce of the gradients ({chief['gradient_values']:,} float32 values) across "
            f"the two workers, alone: {reduce_ms:.1f} ms per step "
            f"({summary['all_reduce_share_of_two_worker_step'] * 100:.0f}% of a two-worker step).",
            f"Loss curves, two workers vs one process: largest relative difference per epoch "
            f"{curve_difference * 100:.2f}% (batch norm statistics are per replica).",
        ]
    )
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(summary, indent=2))
    (RESULTS / "distributed.md").write_text(text + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", "_run"])
    parser.add_argument("output", nargs="?", default="")
    parser.add_argument("--train_limit", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--reduce_calls", type=int, default=50)
    args, rest = parser.parse_known_args()
    if args.mode == "_run":
        _train(args, args.output, rest)
    else:
        compare(args)


if __name__ == "__main__":
    main()
