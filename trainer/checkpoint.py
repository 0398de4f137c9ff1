"""Checkpoints that survive `kill -9` and keeping the best model: two callbacks.

`ResumeBackup` is tf_keras's `BackupAndRestore` (model, optimizer with its step counter and
so the schedule position, epoch and batch) saving every `save_freq` batches *and* at every
epoch end, and keeping the backup after training so a run killed during export resumes
without retraining. TensorFlow writes each checkpoint under a new name and then atomically
replaces the small `checkpoint` pointer file, so a kill at any moment leaves the previous
checkpoint valid. `BestModelCheckpoint` keeps the best model by a validation metric, written
atomically, and remembers the best value across a resume. Run-folder names, `run.json`,
resuming and checking a backup belong to `trainer.runs`. This module must not build models.

Example:

    import trainer
    from trainer.checkpoint import ResumeBackup
    # Run the same script again after a crash: fit continues from the last saved batch.
    model.fit(dataset, epochs=10, callbacks=[ResumeBackup("backup", save_freq=100)])
"""

import json
import math
import re
from pathlib import Path

import tf_keras as keras

from trainer.files import atomic_save, atomic_write_json
from trainer.keras_path import is_keras3_object


class ResumeBackup(keras.callbacks.BackupAndRestore):
    """Backs up training every `save_freq` batches and each epoch; `fit` resumes from it.

    On `fit`'s start it restores the newest backup in `backup_dir` (if any): weights,
    optimizer state and step counter, epoch and batch; `fit` then runs only the remaining
    batches and epochs, so a resumed run ends with the same number of epochs. Put it last in
    the callback list so that loggers have written an epoch before it is backed up. The
    model must be built (a functional or Sequential model with an `Input`) before `fit`.

    Args:
        backup_dir: folder for the backup; one per run.
        save_freq: batches between backups (an int), or "epoch" for epoch ends only.
        delete_checkpoint: delete the backup when `fit` ends; False keeps it so that a run
            killed after training (during export) resumes without training again.

    Example:

        import trainer
        from trainer.checkpoint import ResumeBackup
        model.fit(dataset, epochs=10, callbacks=[ResumeBackup("runs/a/backup", save_freq=50)])
    """

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint: bool = False):
        if save_freq != "epoch" and (not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"save_freq must be 'epoch' or an int >= 1, received {save_freq!r}")
        super().__init__(str(backup_dir), save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        self._keras3_backup = None  # Keras 3's BackupAndRestore, in a Keras 3 fit

    def set_model(self, model):
        # tf_keras's BackupAndRestore needs tf_keras's fit to restore the epoch; in a Keras 3
        # fit, Keras 3's own BackupAndRestore does the work (weights with the optimizer's
        # state, epoch; a resumed epoch restarts at its first batch), in its own file format.
        self._keras3_backup = None
        if is_keras3_object(model):
            from trainer.keras_compat import keras_of

            self._keras3_backup = keras_of(model).callbacks.BackupAndRestore(
                self.backup_dir, self.save_freq, delete_checkpoint=self.delete_checkpoint
            )
            self._keras3_backup.set_model(model)
        super().set_model(model)

    def on_train_batch_begin(self, batch, logs=None):
        if self._keras3_backup is None:
            super().on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self._keras3_backup is not None:
            return self._keras3_backup.on_train_batch_end(batch, logs)
        super().on_train_batch_end(batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        if self._keras3_backup is None:
            super().on_epoch_begin(epoch, logs)

    def on_train_end(self, logs=None):
        if self._keras3_backup is not None:
            return self._keras3_backup.on_train_end(logs)
        super().on_train_end(logs)

    def on_train_begin(self, logs=None):
        if self._keras3_backup is not None:
            return self._keras3_backup.on_train_begin(logs)
        # tf_keras would fail on a broken backup with an IndexError deep in the restore, or
        # silently start from epoch 1 when the pointer file is garbage.
        problem = backup_problem(self.backup_dir)
        if problem:
            raise ValueError(
                f"the backup in {self.backup_dir} cannot be restored: {problem}. Delete that "
                "folder to train from epoch 1 (with `trainer train`: --resume=RUN_DIR --restart)"
            )
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        # The parent saves at epoch ends only when save_freq == "epoch"; without this, a run
        # killed during validation or export would redo the tail of its last epoch.
        if self._keras3_backup is not None:
            self._keras3_backup.on_epoch_end(epoch, logs)
            if self.save_freq != "epoch":
                self._keras3_backup._save_model()
            return
        self._backup(epoch=epoch)

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "save_freq": self.save_freq,
            "delete_checkpoint": self.delete_checkpoint,
        }


class BestModelCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever `monitor` improves, atomically, and remembers the best value.

    The model file is written to a temporary name and renamed, so it is never half-written;
    the best value and epoch go to `<filepath>.best.json`, which is read back on the next
    `fit`, so a resumed run does not overwrite a better model with a worse one.

    Args:
        filepath: the model file (`.keras` or `.h5`).
        monitor: the metric to watch, e.g. "val_loss" or "val_accuracy".
        mode: "min", "max" or "auto" (max for names containing "acc", else min).
        verbose: 1 prints a line on each save.

    Example:

        import trainer
        from trainer.checkpoint import BestModelCheckpoint
        model.fit(x, y, validation_split=0.2, epochs=10,
                  callbacks=[BestModelCheckpoint("best.keras", monitor="val_accuracy")])
    """

    def __init__(self, filepath, monitor: str = "val_loss", mode: str = "auto", verbose: int = 0):
        super().__init__()
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', received {mode!r}")
        if not str(filepath).endswith((".keras", ".h5")):
            raise ValueError(f"filepath must end in .keras or .h5, received {str(filepath)!r}")
        self.filepath = Path(filepath)
        self.monitor = monitor
        self.mode = mode
        self.verbose = verbose
        self.best = None
        self.best_epoch = None

    @property
    def state_path(self) -> Path:
        return self.filepath.with_name(self.filepath.name + ".best.json")

    def _maximize(self) -> bool:
        return self.mode == "max" or (self.mode == "auto" and "acc" in self.monitor)

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch = None, None
        if self.state_path.is_file() and self.filepath.exists():
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            if state.get("monitor") == self.monitor:
                self.best, self.best_epoch = state["best"], state["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            available = ", ".join(sorted(logs or {}))
            raise ValueError(
                f"BestModelCheckpoint monitors {self.monitor!r}, which is not in the logs "
                f"({available}); pass validation data or choose one of these"
            )
        value = float(value)
        if not math.isfinite(value):
            return
        improved = self.best is None or (
            value > self.best if self._maximize() else value < self.best
        )
        if not improved:
            return
        self.best, self.best_epoch = value, epoch + 1
        _save_model_atomically(self.model, self.filepath)
        atomic_write_json(
            self.state_path, {"monitor": self.monitor, "best": value, "epoch": epoch + 1}
        )
        if self.verbose:
            print(f"best {self.monitor} {value:.4f} at epoch {epoch + 1}: saved {self.filepath}")

    def get_config(self):
        return {
            "filepath": str(self.filepath),
            "monitor": self.monitor,
            "mode": self.mode,
            "verbose": self.verbose,
        }


def _save_model_atomically(model, path: Path) -> None:
    atomic_save(path, lambda temporary: model.save(temporary, overwrite=True))


def backup_problem(backup_dir: str | Path) -> str | None:
    """Why the `ResumeBackup` folder `backup_dir` cannot be restored, or None if it can (or
    holds nothing). Reads every tensor, so a truncated file is found before training."""
    backup = Path(backup_dir)
    if not backup.is_dir() or not any(backup.rglob("*")):
        return None
    # A multi-worker backup's `workertemp_N` folders are other workers' scratch copies, which
    # tf_keras deletes after each save; one left by a killed worker is never restored.
    pointers = sorted(p for p in backup.rglob("checkpoint") if "workertemp_" not in str(p))
    if not pointers:
        return "its `checkpoint` pointer file is missing"
    import tensorflow as tf

    for pointer in pointers:
        # Parsed here rather than by TensorFlow, which logs a ParseError and ignores it.
        try:
            text = pointer.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            text = ""
        named = re.search(r'^model_checkpoint_path:\s*"([^"]+)"\s*$', text, re.MULTILINE)
        if not named:
            return f"its pointer file {pointer} names no checkpoint"
        prefix = str(pointer.parent / Path(named.group(1)).name)
        if not Path(prefix + ".index").is_file():
            return f"{prefix}.index is missing"
        try:
            reader = tf.train.load_checkpoint(prefix)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except (tf.errors.OpError, ValueError, IndexError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            return f"reading {prefix} failed: {first_line[:200]}"
    return None
