"""Checkpoints that survive `kill -9`, resuming a run directory, and keeping the best model.

`ResumeBackup` is tf_keras's `BackupAndRestore` (model, optimizer with its step counter and
so the schedule position, epoch and batch) saving every `save_freq` batches *and* at every
epoch end, and keeping the backup after training so a run killed during export resumes
without retraining. TensorFlow writes each checkpoint under a new name and then atomically
replaces the small `checkpoint` pointer file, so a kill at any moment leaves the previous
checkpoint valid. `BestModelCheckpoint` keeps the best model by a validation metric, written
atomically, and remembers the best value across a resume. `resume_arguments` turns a run
directory back into the recipe and options that made it. This module must not build models.

Example:

    import trainer
    from trainer.checkpoint import ResumeBackup
    # Run the same script again after a crash: fit continues from the last saved batch.
    model.fit(dataset, epochs=10, callbacks=[ResumeBackup("backup", save_freq=100)])
"""

import csv
import json
import math
import os
import tempfile
from pathlib import Path

import tf_keras as keras

from trainer.files import atomic_write_json

RUN_INFO_FILE = "run.json"
CONFIG_FILE = "config.yaml"
BACKUP_DIR = "backup"


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

    def on_epoch_end(self, epoch, logs=None):
        # The parent saves at epoch ends only when save_freq == "epoch"; without this, a run
        # killed during validation or export would redo the tail of its last epoch.
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
        return {"filepath": str(self.filepath), "monitor": self.monitor, "mode": self.mode,
                "verbose": self.verbose}  # fmt: skip


def _save_model_atomically(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras picks the format from the suffix, so the temporary name keeps it.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix,
                                         dir=path.parent)  # fmt: skip
    os.close(handle)
    try:
        model.save(temporary, overwrite=True)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_run_info(run_dir, recipe: str, recipe_file: str | None) -> Path:
    """Records which recipe made `run_dir` (`run.json`), so `--resume` can find it again."""
    info = {
        "recipe": recipe,
        "recipe_file": str(Path(recipe_file).resolve()) if recipe_file else None,
    }
    return atomic_write_json(Path(run_dir) / RUN_INFO_FILE, info)


def resume_arguments(run_dir) -> tuple[str, list[str]]:
    """The recipe (name or file) and options that continue the run in `run_dir`.

    The options are the run's own `config.yaml` plus `--run_dir=RUN_DIR`, so the resumed run
    has the same config, writes into the same folder and restores its backup.

    Raises:
        FileNotFoundError: `run_dir` is missing, or lacks `config.yaml` or `run.json`.
        FileExistsError: the run already finished (`metrics.json` exists).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    for name in (CONFIG_FILE, RUN_INFO_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir} has no {name}: it was not made by `trainer train`, so there is "
                "nothing to resume; start a new run instead"
            )
    if (run_dir / "metrics.json").exists():
        raise FileExistsError(f"the run in {run_dir} already finished (metrics.json exists)")
    info = json.loads((run_dir / RUN_INFO_FILE).read_text(encoding="utf-8"))
    recipe = info.get("recipe")
    recipe_file = info.get("recipe_file")
    if recipe_file and Path(recipe_file).is_file() and Path(recipe_file).parent.name != "recipes":
        recipe = recipe_file  # a recipe outside the package is found by its path
    if not recipe:
        raise ValueError(f"{run_dir / RUN_INFO_FILE} names no recipe, received {info!r}")
    return recipe, [f"--config={run_dir / CONFIG_FILE}", f"--run_dir={run_dir}"]


def has_backup(run_dir) -> bool:
    """True if `run_dir` holds a training backup that `ResumeBackup` will restore."""
    # tf_keras keeps the chief worker's checkpoint in a `chief/` subfolder.
    return any((Path(run_dir) / BACKUP_DIR).rglob("checkpoint"))


def read_history(path) -> dict[str, list[float]]:
    """The columns of a `CSVLogger` file, one value per epoch, for a possibly resumed run.

    A run killed after logging an epoch but before its next backup logs part of that epoch
    again when resumed; the last row for each epoch wins, so every epoch appears once.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"history file {str(path)!r} does not exist")
    rows: dict[int, dict[str, str]] = {}
    with open(path, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row.get("epoch", "") in ("", "epoch"):
                continue  # a header repeated by an appending logger
            rows[int(row["epoch"])] = row
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key != "epoch" and key is not None:
                number = math.nan if value in ("", "NA", None) else float(value)
                history.setdefault(key, []).append(number)
    # CSVLogger adds "NA" val_* columns to runs without validation data; drop them.
    return {key: values for key, values in history.items() if not all(map(math.isnan, values))}
