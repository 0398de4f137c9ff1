"""Run directories: one folder per training run holding everything needed to repeat it.

`runs/<recipe>-<timestamp>/` gets the resolved `config.yaml` first, then `history.csv`,
TensorBoard logs under `logs/`, `metrics.json`, the Keras model, `.tflite` files, `report.md`
and plots. This module creates the folder and knows the file names; it must not train.

Example:

    from trainer.runs import create_run_dir
    run_dir = create_run_dir("fashion_mnist", config)   # runs/fashion_mnist-20261125-131500
"""

import datetime
import sys
from pathlib import Path
from typing import Any

from trainer.config import save_config

RUNS_ROOT = Path("runs")
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
MODEL_FILE = "model.keras"
LOGS_DIR = "logs"


def create_run_dir(recipe: str, config: Any, run_dir: str | Path | None = None) -> Path:
    """Makes the run directory and saves the resolved config into it.

    Args:
        recipe: recipe name, used in the default folder name.
        config: the recipe's dataclass config, saved as `config.yaml`.
        run_dir: explicit folder; default `runs/<recipe>-<YYYYmmdd-HHMMSS>`.

    Raises:
        FileExistsError: `run_dir` already holds a finished run (a `metrics.json`); pick
            another folder so an earlier result is never overwritten.
    """
    if run_dir:
        path = Path(run_dir)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = RUNS_ROOT / f"{recipe}-{stamp}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = RUNS_ROOT / f"{recipe}-{stamp}-{suffix}"
    if (path / METRICS_FILE).exists():
        raise FileExistsError(
            f"run directory {path} already holds a finished run ({METRICS_FILE}); "
            "choose another --run_dir or delete it"
        )
    path.mkdir(parents=True, exist_ok=True)
    save_config(config, path / CONFIG_FILE)
    # run.json names the recipe so that `trainer train --resume=RUN_DIR` can find it again.
    from trainer.checkpoint import write_run_info

    config_module = sys.modules.get(type(config).__module__)
    write_run_info(path, recipe, getattr(config_module, "__file__", None))
    return path


def fit_verbosity() -> int:
    """Keras `verbose` for `fit`: the progress bar in a terminal, silence otherwise.

    When output is not a terminal, `run_callbacks` adds an `EpochLogger` that prints one
    line per epoch instead of the progress bar's carriage-return noise.
    """
    return 1 if sys.stdout.isatty() else 0


def run_callbacks(run_dir: str | Path, tensorboard: bool = True, backup_every: int = 0) -> list:
    """The callbacks every run uses: learning rate in the logs, `history.csv`, TensorBoard
    logs, and one line per epoch when output is not a terminal.

    With `backup_every=N` a `ResumeBackup` (last in the list) saves the training state in
    `RUN_DIR/backup` every N batches and each epoch, and restores it when the same run
    directory is trained again (`trainer train --resume=RUN_DIR`)."""
    import tf_keras as keras

    from trainer.callbacks import EpochLogger, LearningRateLogger

    run_dir = Path(run_dir)
    callbacks = [
        LearningRateLogger(),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY_FILE), append=True),
    ]
    if tensorboard:
        callbacks.append(
            keras.callbacks.TensorBoard(
                str(run_dir / LOGS_DIR), update_freq="epoch", profile_batch=0
            )
        )
    if fit_verbosity() == 0:
        callbacks.append(EpochLogger())
    if backup_every:
        from trainer.checkpoint import BACKUP_DIR, ResumeBackup

        callbacks.append(ResumeBackup(run_dir / BACKUP_DIR, save_freq=backup_every))
    return callbacks
