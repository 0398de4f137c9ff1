"""Kill -9 a training subprocess mid-epoch, resume it from its run directory, and check that it
finishes with the same epochs, config and schedule position; best-model and history helpers.

The killed run is tests/recipes_for_tests/killable_regression.py: it stops at a known step and
says so in a file, and only then is it killed, so no timing decides where the kill lands. It
runs in a fork of the warm server (tests/warm.py), the process `trainer train` would be; the
resume runs in this process."""

import json
import sys
import time

import numpy as np
import pytest
import tf_keras as keras

from conftest import RECIPES_FOR_TESTS, command_env
from trainer import cli
from trainer.checkpoint import BestModelCheckpoint, ResumeBackup
from trainer.runs import has_backup, read_history, resume_arguments
from trainer.schedules import build_schedule


@pytest.mark.e2e
def test_kill_9_mid_epoch_then_resume_finishes_the_same_run(tmp_path, capsys, warm):
    recipe = RECIPES_FOR_TESTS / "killable_regression.py"
    run_dir, marker = tmp_path / "run", tmp_path / "paused"
    command = [sys.executable, "-m", "trainer.cli", "train", str(recipe), f"--run_dir={run_dir}"]
    environment = {**command_env(), "PAUSE_MARKER": str(marker)}
    process = warm.start([*command, "--learning_rate=0.04"], environment, tmp_path / "first.log")
    history_file = run_dir / "history.csv"
    # The run writes the marker at step 15 (epoch 2, batch 5: epoch 1 is logged and the
    # backup of step 12 written) and waits there to be killed.
    deadline = time.monotonic() + 600
    while not marker.is_file():
        assert process.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "no pause marker after 10 minutes"
        time.sleep(0.05)
    assert int(marker.read_text()) == process.pid
    process.kill()  # SIGKILL: no handler, no flush, no clean-up
    assert process.wait(60) == -9, (tmp_path / "first.log").read_text()[-2000:]
    assert not (run_dir / "metrics.json").exists() and has_backup(run_dir)
    assert json.loads((run_dir / "run.json").read_text())["recipe_file"] == str(recipe.resolve())

    assert cli.main(["train", f"--resume={run_dir}"]) == 0
    printed = capsys.readouterr().out
    assert f"resuming {run_dir}" in printed
    assert "epoch 1/4" not in printed  # continued, not restarted
    assert "epoch 4/4" in printed
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == {"iterations": 40, "epochs": 4}  # same epochs, no step lost or repeated
    history = read_history(history_file)
    assert len(history["loss"]) == 4
    # Same config (learning_rate=0.04 came back from config.yaml) and schedule position: the
    # rate logged at each epoch end is the one the schedule gave the epoch's last step.
    schedule = build_schedule("cosine", 0.04, 40, warmup_steps=5)
    expected = [float(schedule(10 * (epoch + 1) - 1)) for epoch in range(4)]
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-5, atol=1e-9)
    assert history["loss"][-1] < history["loss"][0]

    assert cli.main(["train", f"--resume={run_dir}"]) == 2
    assert "already finished" in capsys.readouterr().err


def test_resume_errors_are_clear(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resume_arguments(tmp_path / "nope")
    (tmp_path / "config.yaml").write_text("epochs: 1\n")
    with pytest.raises(FileNotFoundError, match="has no run.json"):
        resume_arguments(tmp_path)
    assert cli.main(["train", "--resume"]) == 2
    assert cli.main(["train", f"--resume={tmp_path}", "epochs=3"]) == 2
    assert "use `trainer train --resume=RUN_DIR [--restart] [--key=value ...]`" in (
        capsys.readouterr().err
    )
    (tmp_path / "run.json").write_text(json.dumps({"recipe": "fashion_mnist", "recipe_file": None}))
    recipe, options = resume_arguments(tmp_path)
    assert recipe == "fashion_mnist"
    assert options == [f"--config={tmp_path / 'config.yaml'}", f"--run_dir={tmp_path}"]


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.8,0.9\n1,0.7,0.85\n2,0.6,0.8\n")
    assert read_history(path) == {"loss": [1.0, 0.7, 0.6], "val_loss": [1.1, 0.85, 0.8]}


def _val_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    return model


class ScriptedValLoss(keras.callbacks.Callback):
    """Replaces val_loss with scripted values so the best epoch is known in advance."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_best_model_is_kept_across_a_resume(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    path = tmp_path / "best.keras"
    model = _val_model()
    weights_at = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights_at[epoch] = self.model.get_weights()

    best = BestModelCheckpoint(path)
    model.fit(
        x,
        y,
        epochs=4,
        verbose=0,
        callbacks=[ScriptedValLoss([0.9, 0.5, 0.7, 0.6]), Snapshot(), best],
    )
    assert (best.best, best.best_epoch) == (0.5, 2)
    saved = keras.models.load_model(path)
    for kept, expected in zip(saved.get_weights(), weights_at[1], strict=True):
        np.testing.assert_array_equal(kept, expected)
    # A resumed fit remembers 0.5 and does not replace the model with a worse one.
    resumed = BestModelCheckpoint(path)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ScriptedValLoss([0.8, 0.55]), resumed])
    assert resumed.best == 0.5 and json.loads(resumed.state_path.read_text())["epoch"] == 2
    assert not list(tmp_path.glob(".best*"))  # no temporary files left behind
    with pytest.raises(ValueError, match="monitors 'val_accuracy', which is not in the logs"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[BestModelCheckpoint(path, "val_accuracy")])


def test_early_stopping_restores_best_weights_in_plain_fit():
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = _val_model()
    weights_at = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights_at[epoch] = self.model.get_weights()

    stop = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(
        x,
        y,
        epochs=10,
        verbose=0,
        callbacks=[ScriptedValLoss([0.9, 0.4, 0.6, 0.7, 0.1]), Snapshot(), stop],
    )
    assert len(history.history["loss"]) == 4
    for kept, expected in zip(model.get_weights(), weights_at[1], strict=True):
        np.testing.assert_array_equal(kept, expected)


def test_resume_backup_rejects_bad_frequency(tmp_path):
    with pytest.raises(ValueError, match="save_freq must be 'epoch' or an int >= 1, received 0"):
        ResumeBackup(tmp_path, save_freq=0)


def test_resume_backup_refuses_a_broken_backup_in_plain_fit(tmp_path):
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    backup = tmp_path / "backup"
    _val_model().fit(x, y, epochs=1, verbose=0, callbacks=[ResumeBackup(backup, save_freq=1)])
    pointer = next(backup.rglob("checkpoint"))
    data = sorted(pointer.parent.glob("*.data-*"))[-1]
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(ValueError, match=r"cannot be restored: reading .* failed"):
        _val_model().fit(x, y, epochs=2, verbose=0, callbacks=[ResumeBackup(backup)])
    pointer.write_text("garbage")
    with pytest.raises(ValueError, match="names no checkpoint"):
        _val_model().fit(x, y, epochs=2, verbose=0, callbacks=[ResumeBackup(backup)])
