"""Run folders: one folder per training run holding everything needed to repeat or resume it.

`runs/<recipe>-<timestamp>/` gets the resolved `config.yaml` and `run.json` (which recipe made
it, training seconds so far) first, then `history.csv`, TensorBoard logs under `logs/`, the
resume backup under `backup/`, `metrics.json`, the Keras model, `.tflite` files, `report.md`
and plots. This module owns those names (other modules import them from here), guards the
folder (a new run never reuses another run's folder, never writes inside its data source, and
never overwrites an unfinished run's config), checks a backup before a resume and reads the
history back. It must not train.

Example:

    from trainer.runs import create_run_dir
    run_dir = create_run_dir("fashion_mnist", config)   # runs/fashion_mnist-20261125-131500
"""

import contextlib
import csv
import datetime
import json
import math
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer.config import save_config, to_dict, validate
from trainer.files import atomic_write_json
from trainer.outputs import (
    CONFIG_FILE,
    METRICS_FILE,
    REPORT_FILE,
    RUN_INFO_FILE,
    OutputError,
    check_folder_path,
    check_foreign_files,
    check_outside_data,
    data_sources,
)

RUNS_ROOT = Path("runs")
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"
LOGS_DIR = "logs"
BACKUP_DIR = "backup"
BEST_MODEL_FILE = "best_epoch.keras"
# What a run writes while training; `--restart` removes these and keeps config.yaml and run.json.
TRAINING_STATE = (
    BACKUP_DIR,
    HISTORY_FILE,
    LOGS_DIR,
    BEST_MODEL_FILE,
    BEST_MODEL_FILE + ".best.json",
)


# What a run writes into its folder. A folder without run.json must be empty (the run would
# overwrite or append to the user's files), and none of these may be a device, FIFO or link.
RUN_WRITES = (
    CONFIG_FILE,
    RUN_INFO_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    REPORT_FILE,
    "model*.keras",
    "best_epoch.keras*",
    LOGS_DIR,
    BACKUP_DIR,
    "*.tflite",
    "model_*.json",
    "learning_curves.png",
    "confusion_matrix.png",
    "per_class_accuracy.png",
    "model_card.md",
    "data_report.*",
    "*vocabulary.txt",
    "export",
    "compression",
)


class RunFolderError(OutputError):
    """A run folder that cannot be used as asked (another run's folder, inside the data...)."""


class BrokenBackupError(RunFolderError):
    """A resume backup that is truncated, incomplete or points at a missing checkpoint."""


# The run folder `trainer train --resume` continues (set by `resuming`), and the folder the
# latest `create_run_dir` made, so that a failure before training can remove it again.
_resuming: Path | None = None
_created: dict[str, Any] = {}


@contextlib.contextmanager
def resuming(run_dir: str | Path) -> Iterator[None]:
    """Within this block `create_run_dir(..., run_dir)` continues that run instead of refusing
    it; `trainer train --resume=RUN_DIR` wraps the recipe's `main` in it."""
    global _resuming
    previous, _resuming = _resuming, Path(run_dir).resolve()
    try:
        yield
    finally:
        _resuming = previous


def check_run_dir(config: Any, run_dir: str | Path | None = None) -> None:
    """Checks, before any work, that a new run may write into `run_dir`, with the output
    guard every command shares (`trainer.outputs`) and the rules of run folders.

    `run_dir` defaults to `config.run_dir`; an empty value means a new timestamped folder.

    Raises:
        RunFolderError: the folder holds a finished run, another run's config.yaml or backup
            (continue that one with `trainer train --resume=RUN_DIR`), lies inside the data
            source named by a `data`, `data_dir` or `tfds_dir` field, or holds files trainer
            did not make that a run would overwrite (model.keras, report.md, history.csv...).
        NotADirectoryError: the path, or a folder above it, is a file, device or FIFO.
        PermissionError: the nearest existing folder is not writable.
    """
    run_dir = run_dir if run_dir is not None else getattr(config, "run_dir", "")
    path = Path(run_dir) if run_dir else RUNS_ROOT
    try:
        check_outside_data(path, "--run_dir", data_sources(config))
    except OutputError as error:
        raise RunFolderError(str(error)) from None
    check_folder_path(path, "--run_dir")
    if not run_dir or _resuming == path.resolve():
        return
    if (path / METRICS_FILE).exists():
        raise RunFolderError(
            f"run directory {path} already holds a finished run ({METRICS_FILE}); choose "
            "another --run_dir or delete it"
        )
    left_by_a_run = [
        name for name in (CONFIG_FILE, RUN_INFO_FILE, BACKUP_DIR) if (path / name).exists()
    ]
    if left_by_a_run:
        raise RunFolderError(
            f"run directory {path} holds another run ({', '.join(left_by_a_run)}), which a new "
            f"run would overwrite; continue it with `trainer train --resume={path}`, or choose "
            "another --run_dir"
        )
    try:
        check_foreign_files(path, "--run_dir", RUN_WRITES, marker=RUN_INFO_FILE)
    except OutputError as error:
        raise RunFolderError(str(error)) from None


def create_run_dir(recipe: str, config: Any, run_dir: str | Path | None = None) -> Path:
    """Makes the run directory and saves the resolved config (`config.yaml`) and `run.json`.

    Inside `resuming(run_dir)` (`trainer train --resume=RUN_DIR`) the existing folder is
    continued: its config.yaml is rewritten only with the resumed config, whose model and data
    options the command has already checked are unchanged.

    Args:
        recipe: recipe name, used in the default folder name and in run.json.
        config: the recipe's dataclass config, validated and saved as `config.yaml`.
        run_dir: explicit folder; default `runs/<recipe>-<YYYYmmdd-HHMMSS>`.

    Raises:
        ConfigError: an option outside its declared range (see `trainer.config.validate`).
        RunFolderError, NotADirectoryError, PermissionError: see `check_run_dir`.
    """
    validate(config)
    check_run_dir(config, run_dir or "")
    path = Path(run_dir) if run_dir else default_run_dir(recipe)
    resumed = _resuming == path.resolve()
    _created.clear()
    _created.update(path=path, new_folder=not path.exists(), resumed=resumed)
    path.mkdir(parents=True, exist_ok=True)
    save_config(config, path / CONFIG_FILE)
    config_module = sys.modules.get(type(config).__module__)
    info = read_run_info(path) if resumed and (path / RUN_INFO_FILE).is_file() else {}
    recipe_file = getattr(config_module, "__file__", None)
    info.update(
        recipe=recipe,
        recipe_file=str(Path(recipe_file).resolve()) if recipe_file else None,
        # What config.yaml said when this session started: `--resume` names a field edited
        # in config.yaml since, instead of failing on the backup's tensor shapes.
        config=json.loads(json.dumps(to_dict(config), default=str)),
    )
    info.setdefault("training_seconds", 0.0)
    atomic_write_json(path / RUN_INFO_FILE, info)
    return path


def default_run_dir(recipe: str) -> Path:
    """A new folder name for a run of `recipe`: `runs/<recipe>-<YYYYmmdd-HHMMSS>`."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RUNS_ROOT / f"{recipe}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = RUNS_ROOT / f"{recipe}-{stamp}-{suffix}"
    return path


def last_created_run_dir() -> Path | None:
    """The folder the latest `create_run_dir` made or continued in this process, if any."""
    return _created.get("path")


def forget_created_run_dir() -> None:
    """Forgets the latest run folder, so that `discard_unstarted_run` and the Ctrl-C hint only
    ever act on a folder the current run made."""
    _created.clear()


def discard_unstarted_run() -> Path | None:
    """Removes the run folder made by the latest `create_run_dir` if training never started
    in it (no history, no backup), so a run that failed early leaves no half-made folder.

    A folder that existed before keeps everything but the config.yaml and run.json written
    into it. Returns the path cleaned up, or None.
    """
    path = _created.get("path")
    if path is None or _created.get("resumed") or not path.is_dir():
        return None
    if any((path / name).exists() for name in (HISTORY_FILE, BACKUP_DIR, METRICS_FILE)):
        return None
    if _created.get("new_folder"):
        shutil.rmtree(path, ignore_errors=True)
    else:
        for name in (CONFIG_FILE, RUN_INFO_FILE):
            (path / name).unlink(missing_ok=True)
    _created.clear()
    return path


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The contents of `run.json`: recipe, recipe_file, training_seconds."""
    path = Path(run_dir) / RUN_INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path} is not valid JSON ({error}); it was damaged") from None
    if not isinstance(info, dict):
        raise RunFolderError(f"{path} must hold a JSON object, received {info!r}")
    return info


def add_training_seconds(run_dir: str | Path, seconds: float) -> float:
    """Adds one session's training time to `run.json` and returns the total over all sessions,
    so that a resumed run reports its whole training time."""
    info = read_run_info(run_dir) if (Path(run_dir) / RUN_INFO_FILE).is_file() else {}
    info["training_seconds"] = float(info.get("training_seconds") or 0.0) + float(seconds)
    atomic_write_json(Path(run_dir) / RUN_INFO_FILE, info)
    return info["training_seconds"]


def resume_arguments(run_dir: str | Path, restart: bool = False) -> tuple[str, list[str]]:
    """The recipe (name or file) and options that continue the run in `run_dir`.

    The options are the run's own `config.yaml` plus `--run_dir=RUN_DIR`, so the resumed run
    has the same config, writes into the same folder and restores its backup. A run that
    failed (diverged, or at chance level) can only be restarted (`restart`).

    Raises:
        FileNotFoundError: `run_dir` is missing, or lacks `config.yaml` or `run.json`, or the
            user recipe file that made the run is gone.
        RunFolderError: the run already finished (`metrics.json` exists) or failed and
            `restart` is False, run.json names no recipe, or it is damaged.
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
    failed = failed_run(run_dir)
    if (run_dir / METRICS_FILE).exists() and not (failed and restart):
        if failed:
            raise RunFolderError(
                f"the run in {run_dir} failed ({failed}); train it again from epoch 1 in the "
                f"same folder with `trainer train --resume={run_dir} --restart` (with a lower "
                "--learning_rate, for instance), or start a new run"
            )
        raise RunFolderError(f"the run in {run_dir} already finished ({METRICS_FILE} exists)")
    recipe = resume_recipe(run_dir)
    if not recipe:
        info = read_run_info(run_dir)
        raise RunFolderError(f"{run_dir / RUN_INFO_FILE} names no recipe, received {info!r}")
    if recipe_file_of(run_dir) and not Path(recipe).is_file():
        raise FileNotFoundError(
            f"{run_dir / RUN_INFO_FILE} names the recipe file {recipe}, which no longer "
            "exists; put the file back to continue this run (--resume never uses another "
            "recipe, even a built-in one of the same name)"
        )
    return recipe, [f"--config={run_dir / CONFIG_FILE}", f"--run_dir={run_dir}"]


def builtin_recipes_dir() -> Path | None:
    """The folder of the `recipes` package that recipe names load from, found without
    importing it (library modules never import `recipes`)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("recipes")
    except (ImportError, ValueError):
        return None
    locations = list(getattr(spec, "submodule_search_locations", None) or [])
    return Path(locations[0]).resolve() if locations else None


def is_builtin_recipe_file(path: str | Path) -> bool:
    """True when `path` is a module of the built-in `recipes` package (a user's recipe in a
    folder that happens to be named `recipes` is not)."""
    package = builtin_recipes_dir()
    return package is not None and Path(path).resolve().parent == package


def recipe_file_of(run_dir: str | Path) -> str:
    """The user recipe file (outside the built-in package) that made the run in `run_dir`,
    or "" for a built-in recipe."""
    recipe_file = read_run_info(run_dir).get("recipe_file")
    if not recipe_file or is_builtin_recipe_file(recipe_file):
        return ""
    return str(recipe_file)


def resume_recipe(run_dir: str | Path) -> str:
    """How to load the recipe that made the run in `run_dir`: a user recipe by its file path
    (even when that file is gone, so that the caller says so instead of loading another
    recipe of the same name), a built-in recipe by its name; "" when run.json names none.

    Raises:
        RunFolderError: run.json is damaged.
    """
    if not (Path(run_dir) / RUN_INFO_FILE).is_file():
        return ""
    return recipe_file_of(run_dir) or str(read_run_info(run_dir).get("recipe") or "")


def failed_run(run_dir: str | Path) -> str:
    """Why the run in `run_dir` failed (`metrics.json`'s `failed`: it diverged or scored at
    chance level), or "" for a run that did not fail or did not finish."""
    path = Path(run_dir) / METRICS_FILE
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    return str(metrics.get("failed") or "") if isinstance(metrics, dict) else ""


def edited_config_fields(run_dir: str | Path, config: Any) -> list[tuple[str, Any, Any]]:
    """The fields of `config` (read from the run's config.yaml) whose values differ from
    those the run's last session started with (kept in run.json), as (name, before, now).

    `run_dir` is left out: `--resume` sets it to the folder (which may have moved, or was
    chosen by the run when the field was empty). Empty for a run whose run.json predates
    that record.
    """
    started = read_run_info(run_dir).get("config")
    if not isinstance(started, dict):
        return []
    now = json.loads(json.dumps(to_dict(config), default=str))
    return [
        (name, started[name], value)
        for name, value in now.items()
        if name != "run_dir" and name in started and started[name] != value
    ]


def changed_options(saved: Any, wanted: Any) -> list[str]:
    """The field names whose values differ between two configs of the same class."""
    before, after = to_dict(saved), to_dict(wanted)
    return [name for name in after if before.get(name) != after[name]]


def has_backup(run_dir: str | Path) -> bool:
    """True if `run_dir` holds a training backup that `ResumeBackup` will restore."""
    # tf_keras keeps the chief worker's checkpoint in a `chief/` subfolder.
    # A killed worker's `workertemp_N` scratch copy of a multi-worker backup is never restored.
    pointers = (Path(run_dir) / BACKUP_DIR).rglob("checkpoint")
    return any("workertemp_" not in str(pointer) for pointer in pointers)


def check_backup(run_dir: str | Path) -> None:
    """Checks the backup of the run in `run_dir` before `--resume` trains
    (`trainer.checkpoint.backup_problem`).

    Raises:
        BrokenBackupError: the `checkpoint` pointer is missing or garbage, a file it names is
            missing, or a file is truncated; the message offers `--restart`.
    """
    from trainer.checkpoint import backup_problem

    backup = Path(run_dir) / BACKUP_DIR
    problem = backup_problem(backup)
    if problem:
        raise BrokenBackupError(
            f"the training backup in {backup} is broken ({problem}), so the run cannot "
            f"continue from it; start it again from epoch 1 in the same folder with "
            f"`trainer train --resume={run_dir} --restart` (discards the backup and history)"
        )


def discard_training_state(run_dir: str | Path) -> None:
    """Removes the backup, history, logs and best-epoch model so the run in `run_dir` starts
    again from epoch 1 (`--restart`); config.yaml is kept and the training time reset. A
    failed run also loses its metrics, report and model, so that it reads as unfinished."""
    run_dir = Path(run_dir)
    outcome = (METRICS_FILE, REPORT_FILE, MODEL_FILE) if failed_run(run_dir) else ()
    for name in (*TRAINING_STATE, *outcome):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    if (run_dir / RUN_INFO_FILE).is_file():
        info = read_run_info(run_dir)
        info["training_seconds"] = 0.0
        atomic_write_json(run_dir / RUN_INFO_FILE, info)


def read_history(path: str | Path) -> dict[str, list[float]]:
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


def fit_verbosity() -> int:
    """Keras `verbose` for `fit`: the progress bar in a terminal, silence otherwise.

    When output is not a terminal, `run_callbacks` adds an `EpochLogger` that prints one
    line per epoch instead of the progress bar's carriage-return noise.
    """
    return 1 if sys.stdout.isatty() else 0


def run_callbacks(
    run_dir: str | Path, tensorboard: bool = True, backup_every: int = 0, histogram_freq: int = 0
) -> list:
    """The callbacks every run uses: learning rate in the logs, `history.csv`, TensorBoard
    logs, and one line per epoch when output is not a terminal.

    TensorBoard gets the epoch scalars, and weight histograms every `histogram_freq` epochs
    (0 = none); not the training graph, which under mixed precision is not the saved model's
    (`experiment.finish` logs the saved float32 model's graph, `trainer.tensorboard_logging`).

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
                str(run_dir / LOGS_DIR),
                update_freq="epoch",
                profile_batch=0,
                histogram_freq=histogram_freq,
                write_graph=False,
            )
        )
    if fit_verbosity() == 0:
        callbacks.append(EpochLogger())
    if backup_every:
        from trainer.checkpoint import ResumeBackup
        from trainer.distribute import shared_run_dir

        # Every worker of a multi-worker job restores the chief's backup in the shared folder.
        backup = shared_run_dir(run_dir) / BACKUP_DIR
        callbacks.append(ResumeBackup(backup, save_freq=backup_every))
    return callbacks
