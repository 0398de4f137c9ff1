"""tf.distribute on this machine: two workers over loopback, a killed worker, two logical CPUs.

Every distributed run happens in its own process (collective ops and logical devices are
fixed when TensorFlow's runtime starts): a fork of the warm server (tests/warm.py), which
imported TensorFlow without starting its runtime, so the fork starts it, with its own devices
and collectives, without paying for the import. Two workers run at once as two forks
(`Warm.start` beside `Warm.run`), and the supervisor of `--local_workers` runs in this process
with its worker processes forked the same way. The model is the digits recipe's (one
convolution, 1,212 training images), so each process trains in a few seconds; the network is
127.0.0.1 only.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import RECIPES_FOR_TESTS, command_env
from trainer.config import ConfigError
from trainer.distribute import (
    DistributeOptions,
    cluster_spec,
    free_port,
    is_chief,
    shard_policy,
    split_arguments,
    worker_count,
)

REPO = Path(__file__).resolve().parents[1]

# Trains the digits recipe's model for 2 epochs under `distributed(...)` and writes its loss
# curve and final weights to argv[1] (.npz). argv[2:] are `trainer train` distribution options.
TRAIN_SCRIPT = RECIPES_FOR_TESTS / "distributed_digits.py"


def _environment(tmp_path: Path) -> dict[str, str]:
    """The user's environment (command_env: the warm server's too), without TF_CONFIG."""
    environment = {key: value for key, value in command_env().items() if key != "TF_CONFIG"}
    environment["TMPDIR"] = str(tmp_path / "tmp")  # to see that workers remove their scratch
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return environment


def _start_warm(warm, tmp_path: Path, name: str, *options: str):
    """TRAIN_SCRIPT in a fork of the warm server that runs beside this process (a
    `warm.Forked`); output in NAME.log."""
    command = [sys.executable, str(TRAIN_SCRIPT), str(tmp_path / f"{name}.npz"), *options]
    return warm.start(command, _environment(tmp_path), tmp_path / f"{name}.log")


def _train_warm(warm, tmp_path: Path, name: str, *options: str) -> int:
    """TRAIN_SCRIPT in a fork of the warm server (blocks until it ends); output in NAME.log."""
    command = ["python", str(TRAIN_SCRIPT), str(tmp_path / f"{name}.npz"), *options]
    result = warm.run(command, cwd=tmp_path, env=_environment(tmp_path), timeout=240)
    (tmp_path / f"{name}.log").write_text(result.stdout + result.stderr)
    return result.returncode


def _finish(tmp_path: Path, name: str, process, timeout: float = 240):
    """Waits for `process` (a fork's exit code, or a `warm.Forked`) and reads its results."""
    code = process if isinstance(process, int) else process.wait(timeout)
    log = (tmp_path / f"{name}.log").read_text()
    assert code == 0, f"{name} exited {code}:\n{log[-3000:]}"
    result = np.load(tmp_path / f"{name}.npz")
    weights = [result[key] for key in sorted(result.files) if key.startswith("arr_")]
    return result["loss"], int(result["replicas"]), weights, log


def _batch_norm_statistics(path: Path, replicas: int) -> np.ndarray:
    """Checks what `recalibrate_batch_norm` left in TRAIN_SCRIPT's probe layer and returns its
    moving variance: the mean of the 256 rows, and the plain average of the variances of the
    batches the replicas saw (8 batches of 32 rows, or their 16 halves over 2 replicas), the
    same in every replica's copy. Skipped under a strategy, it would stay at 0 and 1."""
    rows = np.random.default_rng(0).normal(3.0, 2.0, size=(256, 4)).astype(np.float32)
    found = np.load(path)
    assert int(found["bn_updated"]) == 1
    np.testing.assert_allclose(found["bn_mean"], rows.mean(axis=0), rtol=1e-4)
    shares = rows.reshape(8 * replicas, 32 // replicas, 4)  # tf_keras: the biased variance
    expected = shares.var(axis=1).mean(axis=0)
    np.testing.assert_allclose(found["bn_variance"], expected, rtol=1e-3)
    for copy in found["bn_copies"]:
        np.testing.assert_array_equal(copy, found["bn_variance"])
    return found["bn_variance"]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory, warm):
    """The reference: the same training in one process on one device (default strategy)."""
    folder = tmp_path_factory.mktemp("single")
    loss, replicas, weights, log = _finish(folder, "single", _train_warm(warm, folder, "single"))
    assert replicas == 1 and "strategy:" not in log  # no option, no strategy line
    _batch_norm_statistics(folder / "single.npz", replicas=1)
    return loss, weights


def test_two_workers_end_with_identical_weights_and_the_single_process_loss_curve(
    tmp_path, single_process, warm
):
    workers = f"--workers=127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    # Worker 1 in a fork that runs on, worker 0 meanwhile in another (`run` waits for it).
    worker1 = _start_warm(warm, tmp_path, "worker1", workers, "--task_index=1")
    try:
        code0 = _train_warm(warm, tmp_path, "worker0", workers, "--task_index=0")
        loss0, replicas0, weights0, log0 = _finish(tmp_path, "worker0", code0)
        loss1, replicas1, weights1, _ = _finish(tmp_path, "worker1", worker1)
    finally:
        if worker1.poll() is None:  # a failed test: worker 1 would wait for its peer
            worker1.kill()
            worker1.wait()
    loss, weights = single_process

    assert (replicas0, replicas1) == (2, 2)
    assert "MultiWorkerMirroredStrategy, 2 replica(s) over 2 process(es)" in log0
    # All-reduced gradients: both workers apply the same update in every step.
    for a, b in zip(weights0, weights1, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # The same global batch of 32 (16 per worker, DATA sharding of the same shuffled order):
    # the loss curve matches one process within 1% (summation order differs), and the
    # weights within 1e-3 after 76 steps.
    np.testing.assert_allclose(loss0, loss, rtol=0.01)
    assert loss[-1] < loss[0] * 0.6  # it trained
    for a, b in zip(weights0, weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    # Batch-norm statistics re-estimated over each worker's share, then one all-reduce: the
    # same on both workers.
    variance0 = _batch_norm_statistics(tmp_path / "worker0.npz", replicas=2)
    variance1 = _batch_norm_statistics(tmp_path / "worker1.npz", replicas=2)
    np.testing.assert_allclose(variance0, variance1, rtol=1e-6)


def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path, single_process, warm):
    mirrored = _train_warm(warm, tmp_path, "mirrored", "--strategy=mirrored")
    loss_mirrored, replicas, weights_mirrored, log = _finish(tmp_path, "mirrored", mirrored)
    loss, weights = single_process
    assert replicas == 2
    assert "MirroredStrategy, 2 replica(s) over 1 process(es)" in log
    np.testing.assert_allclose(loss_mirrored, loss, rtol=0.01)
    for a, b in zip(weights_mirrored, weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
    _batch_norm_statistics(tmp_path / "mirrored.npz", replicas=2)


def _history_epochs(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line.split(",")[0] for line in path.read_text().splitlines()[1:] if line]


# A recipe small enough to start fast (numpy data, no scikit-learn, one float32 export): 4
# Gaussian classes of 16 features, one hidden layer. Worker 1 stops once at the start of epoch
# 2, after epoch 1's backup, writes its pid to $PAUSE_MARKER and waits to be killed: the test
# kills it at that known point instead of racing epochs of a few hundred ms.
PAUSED_RECIPE = RECIPES_FOR_TESTS / "paused_worker.py"


@pytest.mark.e2e
def test_local_workers_restart_after_kill_9_continue_from_the_backup_with_one_report(
    tmp_path, warm, monkeypatch, capsys
):
    """`trainer train RECIPE --local_workers=2 --epochs=3`: kill -9 worker 1 once epoch 1 is
    backed up; the supervisor restarts both workers from the chief's backup, which train
    epochs 2 and 3 only; the run ends with 3 epochs, one report and no scratch folder left.
    The supervisor runs in this process; its worker processes are forks of the warm server
    (`trainer.distribute.start` is `Warm.start`), the command line each would run."""
    import threading

    import trainer.distribute as distribute
    from trainer.cli.main import main as trainer_main

    recipe, run_dir, marker = PAUSED_RECIPE, tmp_path / "run", tmp_path / "paused"
    for name, value in {**_environment(tmp_path), "PAUSE_MARKER": str(marker)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    workers = []

    def start(command, environment, log=None):
        workers.append(warm.start(command, environment, log))
        return workers[-1]

    monkeypatch.setattr(distribute, "start", start)
    killed, ended = [], threading.Event()

    def kill_worker_1_when_paused() -> None:
        # Worker 1 writes its pid at the start of epoch 2, after the chief backed up epoch 1.
        while not (marker.is_file() and (run_dir / "backup" / "chief" / "checkpoint").is_file()):
            if ended.wait(0.05):
                return
        pid = int(marker.read_text())
        killed.append(pid)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_worker_1_when_paused)
    killer.start()
    try:
        arguments = ["train", str(recipe), "--local_workers=2", "--epochs=3"]
        code = trainer_main([*arguments, f"--run_dir={run_dir}"])
    finally:
        ended.set()
        killer.join()
    output = capsys.readouterr().out
    assert code == 0, output[-4000:]
    assert killed == [workers[1].pid]  # worker 1 of the first attempt, paused as planned

    assert "worker 1 stopped with signal SIGKILL" in output
    assert "restarting all 2 workers from the last backup" in output
    # Epoch 1 was trained before the kill and not again; epochs 2 and 3 after the restart.
    assert _history_epochs(run_dir / "history.csv") == ["0", "1", "2"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["test_accuracy"] > 0.8
    assert [export["format"] for export in metrics["exports"]] == ["float32"]
    assert abs(metrics["exports"][0]["accuracy"] - metrics["test_accuracy"]) < 0.01  # LiteRT
    chiefs = [workers[0].output.read_text(), workers[2].output.read_text()]  # both attempts
    assert len(workers) == 4 and sum(text.count("report: ") for text in chiefs) == 1
    # The killed worker's scratch folder was removed by the worker restarted in its place.
    assert not list((tmp_path / "tmp").glob("trainer-*"))
    assert not list((run_dir / "backup").glob("workertemp_*"))


def test_split_arguments_keeps_the_recipe_options_and_checks_its_own():
    options, rest = split_arguments(
        ["--epochs=2", "--strategy=mirrored", "--scale_learning_rate=linear"]
    )
    assert rest == ["--epochs=2"]
    assert (options.strategy, options.scale_learning_rate) == ("mirrored", "linear")
    with pytest.raises(ConfigError, match="task_index"):
        split_arguments(["--workers=127.0.0.1:2222,127.0.0.1:2223"])
    with pytest.raises(ConfigError, match="--task_index=2 is not in --workers"):
        split_arguments(["--workers=127.0.0.1:2222,127.0.0.1:2223", "--task_index=2"])
    with pytest.raises(ConfigError, match="host:port"):
        split_arguments(["--workers=127.0.0.1", "--task_index=0"])
    with pytest.raises(ConfigError, match="strategy"):
        split_arguments(["--strategy=gpu"])
    with pytest.raises(ConfigError, match="takes no --workers"):
        split_arguments(["--local_workers=2", "--workers=127.0.0.1:2222", "--task_index=0"])
    with pytest.raises(ConfigError, match="received --strategy=mirrored"):
        split_arguments(["--local_workers=2", "--strategy=mirrored"])


def test_tf_config_decides_the_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert cluster_spec() is None and is_chief() and worker_count() == 1
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}
    for index, chief in ((0, True), (2, False)):
        task = {"type": "worker", "index": index}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert is_chief() is chief and worker_count() == 3
    # With an explicit chief task, worker 0 is an ordinary worker.
    spec = {
        "cluster": {"chief": ["127.0.0.1:9"], **cluster},
        "task": {"type": "worker", "index": 0},
    }
    monkeypatch.setenv("TF_CONFIG", json.dumps(spec))
    assert not is_chief() and worker_count() == 4
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        cluster_spec()


def test_shard_policy_is_file_for_file_readers_and_data_for_arrays(tmp_path):
    import tensorflow as tf

    arrays = tf.data.Dataset.from_tensor_slices(np.zeros((8, 2), np.float32)).batch(4)
    assert shard_policy(arrays) == "DATA"
    (tmp_path / "a.txt").write_text("x\ny\n")
    files = tf.data.Dataset.list_files(str(tmp_path / "*.txt"), shuffle=False)
    lines = files.interleave(tf.data.TextLineDataset, cycle_length=1).batch(2)
    assert shard_policy(lines) == "FILE"


def test_strategy_errors_say_what_to_do(monkeypatch):
    from trainer.distribute import create_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(ValueError, match="--local_workers=2"):
        create_strategy("multi_worker")
    if not Path("/dev/accel0").exists():
        with pytest.raises(ValueError, match="found no TPU"):
            create_strategy("tpu")
    assert DistributeOptions().strategy == "auto"


# Under MirroredStrategy over two logical CPUs: EMA, time budget, pruning, QAT and
# distillation each train, and each does what it is for. Prints one JSON line of findings.
PIECES_SCRIPT = RECIPES_FOR_TESTS / "mirrored_pieces.py"


@pytest.mark.e2e
@pytest.mark.slow  # about 25 s alone (55 s on a loaded machine)
def test_callbacks_pruning_qat_and_distillation_train_under_mirrored_strategy(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PIECES_SCRIPT)],
        capture_output=True,
        text=True,
        env=_environment(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = json.loads(result.stdout.split("FOUND ", 1)[1])
    assert found["replicas"] == 2
    assert found["ema_differs_from_last_step"] > 1e-4  # the model ends with the average
    assert found["budget_epochs"] == 3  # a generous budget does not stop training
    assert 0.45 <= found["pruned_sparsity"] <= 0.55
    assert found["qat"] is True
    assert found["student_moved"] > 1e-4


def test_per_replica_batch_and_linear_learning_rate_rule_are_applied_and_printed(capsys):
    from recipes.digits import Config
    from trainer.distribute import distributed, scale_config

    options = DistributeOptions(
        strategy="default", per_replica_batch_size=8, scale_learning_rate="linear"
    )
    with distributed(options):
        config = scale_config(Config(batch_size=32, learning_rate=4e-3))
    assert (config.batch_size, config.learning_rate) == (8, pytest.approx(1e-3))
    printed = capsys.readouterr().out
    assert "global batch 8 = 8 per replica x 1 replicas" in printed
    assert "linear: 0.004 x 8/32 = 0.001" in printed
    with distributed(DistributeOptions(strategy="default")):
        unchanged = scale_config(Config(batch_size=32, learning_rate=4e-3))
    assert (unchanged.batch_size, unchanged.learning_rate) == (32, 4e-3)
    assert "learning-rate scaling none" in capsys.readouterr().out

    @dataclasses.dataclass
    class WithoutLearningRate:  # a user's recipe may have none
        batch_size: int = 32

    with distributed(DistributeOptions(strategy="default")):
        scale_config(WithoutLearningRate())
    assert "learning-rate scaling none\n" in capsys.readouterr().out


def test_a_killed_workers_scratch_copy_of_the_backup_is_neither_restored_nor_broken(tmp_path):
    from trainer.checkpoint import backup_problem
    from trainer.runs import has_backup

    leftover = tmp_path / "run" / "backup" / "workertemp_1"
    leftover.mkdir(parents=True)
    (leftover / "checkpoint").write_text("half-written garbage")
    assert not has_backup(tmp_path / "run")
    (tmp_path / "run" / "backup" / "chief").mkdir()
    (tmp_path / "run" / "backup" / "chief" / "checkpoint").write_text("garbage")
    assert has_backup(tmp_path / "run")
    # The chief's broken pointer is still reported; the worker's leftover is not read.
    assert "names no checkpoint" in backup_problem(tmp_path / "run" / "backup")
    assert "chief" in backup_problem(tmp_path / "run" / "backup")


def test_a_lost_worker_becomes_one_message_that_says_how_to_continue(monkeypatch):
    import tensorflow as tf

    import trainer.distribute as distribute

    monkeypatch.setattr(distribute, "in_multi_worker", lambda: True)
    aborted = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: connect")
    with pytest.raises(distribute.WorkerLostError, match="--resume=RUN_DIR") as caught:
        with distribute.distributed(DistributeOptions(strategy="default")):
            raise aborted
    assert "Collective ops is aborted" in str(caught.value)
    with pytest.raises(KeyError):  # any other error passes through unchanged
        with distribute.distributed(DistributeOptions(strategy="default")):
            raise KeyError("not a cluster problem")


@pytest.mark.parametrize("trained", [True, False])
def test_ctrl_c_in_the_supervisor_says_how_to_continue_the_chiefs_run(
    trained, tmp_path, monkeypatch
):
    """The chief writes the run folder in its own process; the supervisor that caught Ctrl-C
    must say how to continue it (it used to say "Nothing was trained yet")."""
    import trainer.distribute as distribute
    from trainer.cli.errors import describe

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if trained:
        (run_dir / "history.csv").write_text("epoch,loss\n0,1.0\n")

    def interrupted(processes):
        raise KeyboardInterrupt

    monkeypatch.setattr(distribute, "_wait_for_first_failure", interrupted)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(KeyboardInterrupt) as caught:
        distribute.supervise_local_workers(2, sleeper, sleeper, run_dir)
    message, code = describe(caught.value)
    assert code == 130
    if trained:
        assert f"continue with `trainer train --resume={run_dir} --local_workers=2`" in message
    else:
        assert message == "interrupted. Nothing was trained yet."
