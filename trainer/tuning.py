"""Hyperparameter search over any recipe with keras-tuner's own tuners and oracles.

A search varies fields of a recipe's `Config` (the search space), and each trial is the recipe
contract: `recipe.build(config_with_trial_values)`, then `model.fit` on `experiment.train` with
validation on `experiment.x_val/y_val` (held out of the training data; the test set is never
read here) for at most `max_epochs`, with early stopping. The objective is `val_accuracy`.
Results go to a tuning folder, `runs/tune-<recipe>-<timestamp>/`: `trials.csv` and
`trials.md` (sorted), `best.yaml` (the best config, which `trainer train RECIPE
--config=best.yaml` takes unchanged), `objective_vs_trial.png`, `objective_vs_parameters.png`
and `report.md`; keras-tuner's own state lives under `keras_tuner/` so a killed search resumes.

This module owns search spaces, the `HyperModel`, the search and its results. It must not parse
command lines (`trainer.cli.tune` does) nor write its own search algorithms: random, grid,
Bayesian and Hyperband are keras-tuner's.

Why keras-tuner 1.4.8 is imported with `sys.modules["keras"]` pointing at `tf_keras`
(`keras_tuner()` below) rather than pinning keras-tuner 1.3.5: keras-tuner 1.4 decides once, at
import, between Keras 3 and `tf.keras` by calling `keras.version()` on whatever `import keras`
returns; with `tf_keras` in that slot it takes its `tf.keras` path, which under
`TF_USE_LEGACY_KERAS=1` (set by `import trainer`) *is* `tf_keras`, so it accepts our models
with no change to keras-tuner itself. The swap lasts only for that import and the previous
`keras` module is put back, so a user's own Keras 3 code in the same process is unaffected.
It keeps the version the project already pins and installs in one step, and keeps 1.4's
`max_consecutive_failed_trials` (added in 1.4), which lets a search go on past failing trials.
`tests/test_tuning.py` runs RandomSearch, GridSearch, BayesianOptimization and Hyperband on
our models.

Example:

    import recipes.digits as digits
    from trainer.tuning import TuneOptions, search

    result = search(digits, digits.Config(), "learning_rate=log:1e-3:3e-2; width=8,16,32",
                    tuner="bayesian", options=TuneOptions(max_trials=6, max_epochs=5))
    print(result.best.objective, result.best.values, result.directory / "best.yaml")
"""

import csv
import dataclasses
import datetime
import functools
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from trainer.config import (
    ConfigError,
    choice,
    convert_value,
    field_types,
    limit,
    load_saved_config,
    save_config,
    validate,
)
from trainer.files import atomic_write_text

TUNERS = ("random", "grid", "bayesian", "hyperband")
OBJECTIVE = "val_accuracy"
TUNE_FILE = "tune.yaml"  # the search's options, recipe and space: what --resume reads
BASE_CONFIG_FILE = "base_config.yaml"  # the recipe options held fixed
BEST_CONFIG_FILE = "best.yaml"
TRIAL_LOG_FILE = "trial_log.jsonl"  # one line per finished trial: seconds, epochs, error
KERAS_TUNER_DIR = "keras_tuner"
PROJECT_NAME = "search"
# Fields a search must not vary: the output folder, resume backups, and epochs (the trial
# length is `max_epochs`; Hyperband spends epochs itself).
NOT_SEARCHABLE = ("run_dir", "backup_every", "epochs")


@dataclasses.dataclass
class TuneOptions:
    """The options of a search (`trainer tune`'s own options; the rest go to the recipe)."""

    tuner: str = choice("random", *TUNERS)  # keras-tuner's random, grid, bayesian or hyperband
    # trials to run (hyperband: its brackets decide; grid: at most the grid); 0 = until the
    # time budget is spent (random, bayesian) or the grid is done
    max_trials: int = limit(10)
    max_epochs: int = limit(0)  # epochs per trial at most; 0 = the recipe's epochs
    # search space, e.g. "learning_rate=log:1e-4:1e-2; width=16,32"; "" = the recipe's
    search: str = ""
    trial_patience: int = limit(3)  # early stopping: epochs without val_accuracy gain; 0 = off
    time_budget: float = limit(0.0, resumable=True)  # seconds for the whole search; 0 = none
    search_seed: int = limit(0)  # seeds keras-tuner's oracle: the same seed, the same trials
    tune_dir: str = ""  # output folder; default runs/tune-<recipe>-<timestamp>
    final: bool = False  # retrain the best config with the recipe's main (export, verify, test)
    workers: int = limit(0)  # run trials in N worker processes around one chief oracle; 0 = here
    # start a fresh worker process after this many trials (TensorFlow keeps about 3 MB per
    # model even after clear_session); 0 = never. Runs the trials in workers (at least one).
    trials_per_process: int = limit(0)
    resume: str = ""  # a tuning folder to continue (its options and space are reused)


# ---------------------------------------------------------------------------------------------
# Search spaces


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One varied Config field: a list of choices, or a numeric range (log or linear).

    Written `name=a,b,c` (or `a|b|c` when values contain commas), `name=LOW:HIGH`,
    `name=LOW:HIGH:STEP` or `name=log:LOW:HIGH`.
    """

    name: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False

    def declare(self, hp) -> Any:
        """Declares this dimension on keras-tuner `HyperParameters` and returns its value."""
        if self.choices:
            return hp.Choice(self.name, list(self.choices), ordered=False)
        sampling = "log" if self.log else "linear"
        if self.integer:
            step = int(self.step) if self.step else None
            return hp.Int(self.name, int(self.low), int(self.high), step=step, sampling=sampling)
        return hp.Float(self.name, self.low, self.high, step=self.step, sampling=sampling)

    def text(self) -> str:
        if self.choices:
            separator = "|" if any("," in str(value) for value in self.choices) else ","
            return f"{self.name}={separator.join(str(value) for value in self.choices)}"
        bounds = f"{self.low:g}:{self.high:g}" + (f":{self.step:g}" if self.step else "")
        return f"{self.name}={'log:' if self.log else ''}{bounds}"


def parse_space(text: str, base_config: Any) -> list[Dimension]:
    """Parses a search space such as `"learning_rate=log:1e-4:1e-2; width=16,32,64;
    dropout=0.1:0.5; augment=none|crop:2,flip"` against a recipe's config.

    Entries are separated by `;` or new lines. Every value is converted to the field's type
    and checked against the field's rule (`validate`), so an impossible space fails here,
    before any data loads.

    Raises:
        ConfigError: an unknown or unsearchable field, a malformed entry, a value of the wrong
            type or outside the field's rule, quoting what was received.
    """
    types = field_types(type(base_config))
    searchable = [name for name, kind in types.items() if name not in NOT_SEARCHABLE]
    dimensions: dict[str, Dimension] = {}
    for entry in (part.strip() for part in text.replace("\n", ";").split(";")):
        if not entry:
            continue
        name, has_value, spec = (part.strip() for part in entry.partition("="))
        if not has_value or not spec:
            raise ConfigError(
                f"search entry {entry!r} has no values: write name=a,b,c, name=LOW:HIGH or "
                "name=log:LOW:HIGH"
            )
        if name in NOT_SEARCHABLE:
            raise ConfigError(
                f"{name} cannot be searched (epochs per trial is --max_epochs; run_dir and "
                f"backup_every do not change the model); searchable: {', '.join(searchable)}"
            )
        if name not in types:
            raise ConfigError(
                f"unknown field {name!r} in the search space; the recipe's fields are: "
                f"{', '.join(searchable)}"
            )
        if name in dimensions:
            raise ConfigError(f"{name} appears twice in the search space {text!r}")
        dimensions[name] = _dimension(name, types[name], spec)
        _check_dimension(dimensions[name], base_config)
    if not dimensions:
        raise ConfigError(f"the search space {text!r} varies no field")
    return list(dimensions.values())


def _dimension(name: str, kind: type, spec: str) -> Dimension:
    numeric = kind in (int, float)
    parts = spec.split(":")
    log = numeric and parts[0].strip().lower() == "log"
    if log:
        parts = parts[1:]
    if numeric and (log or len(parts) in (2, 3)):
        if len(parts) not in (2, 3):
            raise ConfigError(f"{name}={spec!r}: write log:LOW:HIGH")
        low, high, *step = (convert_value(name, kind, part) for part in parts)
        if not low < high:
            raise ConfigError(f"{name}={spec!r}: LOW must be below HIGH, received {low} and {high}")
        if log and low <= 0:
            raise ConfigError(f"{name}={spec!r}: a log range needs LOW > 0, received {low}")
        if step and step[0] <= 0:
            raise ConfigError(f"{name}={spec!r}: STEP must be > 0, received {step[0]}")
        return Dimension(
            name, low=low, high=high, step=step[0] if step else None, log=log, integer=kind is int
        )
    separator = "|" if "|" in spec else ","
    values = tuple(convert_value(name, kind, part.strip()) for part in spec.split(separator))
    if any(value == "" for value in values):
        raise ConfigError(f"{name}={spec!r} has an empty choice")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name}={spec!r} repeats a choice")
    return Dimension(name, choices=values)


def _check_dimension(dimension: Dimension, base_config: Any) -> None:
    ends = dimension.choices or (dimension.low, dimension.high)
    for value in ends:
        try:
            validate(dataclasses.replace(base_config, **{dimension.name: value}))
        except ConfigError as error:
            raise ConfigError(f"search space {dimension.text()!r}: {error}") from None


def default_space(recipe: ModuleType, base_config: Any) -> str:
    """The recipe's `SEARCH_SPACE` if it declares one, else `generic_space(base_config)`."""
    declared = getattr(recipe, "SEARCH_SPACE", None)
    if declared is not None:
        if not isinstance(declared, str):
            raise TypeError(
                f"{recipe.__name__}.SEARCH_SPACE must be a string such as "
                f"'learning_rate=log:1e-4:1e-2; width=16,32', received {type(declared).__name__}"
            )
        return declared
    return generic_space(base_config)


def generic_space(base_config: Any) -> str:
    """A search space from the fields a config has, around their defaults: learning_rate,
    schedule, optimizer, weight_decay, dropout, augment, batch_size, width, depth, head_units,
    label_smoothing. For a recipe that declares no `SEARCH_SPACE`.

    Example:

        generic_space(digits.Config())
        # 'batch_size=16,32,64; learning_rate=log:0.0003:0.009; width=8,16,32'
    """
    values = dataclasses.asdict(base_config)
    entries = []
    rate = values.get("learning_rate")
    if isinstance(rate, float) and rate > 0:
        entries.append(f"learning_rate=log:{rate / 10:.2g}:{rate * 3:.2g}")
    if isinstance(values.get("schedule"), str):
        entries.append("schedule=cosine,one_cycle,constant")
    if isinstance(values.get("optimizer"), str):
        entries.append("optimizer=adamw,sgd")
    if isinstance(values.get("weight_decay"), float):
        entries.append("weight_decay=0,0.0001,0.0005,0.002")
    if isinstance(values.get("dropout"), float):
        entries.append("dropout=0.0:0.5")
    augment = values.get("augment")
    if isinstance(augment, str):
        stronger = augment + ",erase:0.25" if augment != "none" else "crop:2,erase:0.25"
        entries.append("augment=" + "|".join(dict.fromkeys(["none", augment, stronger])))
    batch = values.get("batch_size")
    if isinstance(batch, int) and not isinstance(batch, bool):
        sizes = (batch // 2, batch, batch * 2) if batch >= 2 else (16, 32, 64)
        entries.append("batch_size=" + ",".join(map(str, sizes)))
    for name in ("width", "depth"):
        size = values.get(name)
        if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            grown = (size // 2, size, size * 2) if name == "width" else (size - 1, size, size + 1)
            entries.append(f"{name}=" + ",".join(str(v) for v in dict.fromkeys(grown) if v >= 1))
    if isinstance(values.get("head_units"), int):
        entries.append("head_units=0,64,128")
    if isinstance(values.get("label_smoothing"), float):
        entries.append("label_smoothing=0.0:0.2")
    if not entries:
        raise ConfigError(
            f"{type(base_config).__name__} has none of the fields a generic search varies "
            '(learning_rate, dropout, width, batch_size, ...): pass --search="name=a,b; ..." '
            "or declare SEARCH_SPACE next to the recipe's Config"
        )
    return "; ".join(sorted(entries))


def _python_value(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds: Bayesian optimization's Gaussian process
    proposes `numpy.float64` values, which the YAML of best.yaml cannot hold."""
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def trial_config(base_config: Any, values: dict[str, Any], max_epochs: int) -> Any:
    """The base config with a trial's values, trained for `max_epochs`, without backups.

    Raises:
        ConfigError: the combination breaks a field's rule.
    """
    changes = {
        key: _python_value(value) for key, value in values.items() if not key.startswith("tuner/")
    }
    fields = {field.name for field in dataclasses.fields(base_config)}
    if "epochs" in fields and max_epochs:
        changes["epochs"] = max_epochs
    if "backup_every" in fields:
        changes["backup_every"] = 0
    if "run_dir" in fields:
        changes["run_dir"] = ""
    return validate(dataclasses.replace(base_config, **changes))


# ---------------------------------------------------------------------------------------------
# keras-tuner on tf_keras


@functools.cache
def keras_tuner() -> ModuleType:
    """keras-tuner, imported so that it builds and trains `tf_keras` models (see the module
    docstring for why). Call this instead of `import keras_tuner`.

    Raises:
        RuntimeError: keras-tuner was already imported on Keras 3 in this process.
    """
    import tf_keras

    if "keras_tuner" not in sys.modules:
        previous = sys.modules.get("keras")
        sys.modules["keras"] = tf_keras
        try:
            import keras_tuner as module
        finally:
            if previous is None:
                sys.modules.pop("keras", None)
            else:
                sys.modules["keras"] = previous
    module = sys.modules["keras_tuner"]
    from keras_tuner.src import config as tuner_config
    from keras_tuner.src.backend import config as backend_config

    # keras-tuner prints the traceback of every failed trial; the trials table keeps its last
    # line (and trial.json the whole of it). TRAINER_DEBUG=1 prints them.
    tuner_config.DEBUG = bool(os.environ.get("TRAINER_DEBUG"))

    if backend_config.multi_backend():
        raise RuntimeError(
            "keras_tuner was imported before trainer.tuning, on Keras 3, and would reject our "
            "tf_keras models: import trainer.tuning (or call trainer.tuning.keras_tuner()) "
            "before anything imports keras_tuner, in a new Python process"
        )
    return module


class BudgetSpent(Exception):
    """Raised between trials when the search's wall-clock budget is spent."""


class ProcessSpent(Exception):
    """Raised between trials when a worker has run its `trials_per_process`."""


# Training batches averaged for the batch-norm statistics before each validation pass of a
# trial (PreciseValidation below); `trainer train` uses 50 once, at the end.
PRECISE_BN_BATCHES = 20
# Exit code of a worker process that ran its `trials_per_process`: the chief starts another.
RECYCLE_EXIT_CODE = 3
# Set by the chief for its workers: the search's deadline (time.time()), so that a restarted
# worker does not start the budget again.
DEADLINE_VARIABLE = "TRAINER_TUNE_DEADLINE"


@functools.cache
def _classes() -> dict[str, type]:
    """The HyperModel and the recording tuners, defined once keras-tuner is importable."""
    kt = keras_tuner()
    import tf_keras as keras

    class DeadlineStop(keras.callbacks.Callback):
        """Stops the trial at the end of an epoch once the search's deadline has passed."""

        def __init__(self, deadline: float | None):
            super().__init__()
            self.deadline = deadline

        def on_epoch_end(self, epoch, logs=None):
            if self.deadline is not None and time.time() >= self.deadline:
                self.model.stop_training = True

    class PreciseValidation(keras.callbacks.Callback):
        """Re-estimates the batch-norm statistics on training batches before each validation
        pass (`trainer.batch_norm.recalibrate_batch_norm`), so that a trial is scored the way
        `trainer train` scores its final model. Without it a short trial validates with moving
        statistics that still hold the initial weights' (measured: Fashion-MNIST, 10,000
        images, 1 epoch: 10% to 24% validation accuracy for configurations that reach 73% to
        84% at 3 epochs), and Hyperband's 1-epoch round ranks noise."""

        def __init__(self, train, batches: int):
            super().__init__()
            self.train, self.batches = train, batches

        def on_test_begin(self, logs=None):
            from trainer.batch_norm import recalibrate_batch_norm

            recalibrate_batch_norm(self.model, self.train, batches=self.batches)

    class RecipeHyperModel(kt.HyperModel):
        """A keras-tuner `HyperModel` over a recipe: `build(hp)` is `recipe.build(config)` with
        the trial's values; `fit` trains on the recipe's own data (pass no x or y).

        Example:

            hypermodel = recipe_hypermodel(digits, digits.Config(), "width=8,16", max_epochs=3)
            tuner = keras_tuner().RandomSearch(hypermodel, objective="val_accuracy",
                                               max_trials=2, directory="/tmp/kt")
            tuner.search()
        """

        def __init__(self, recipe, base_config, space, max_epochs=0, patience=3):
            super().__init__(name=getattr(recipe, "__name__", "recipe"))
            self.recipe, self.base_config, self.space = recipe, base_config, list(space)
            self.max_epochs, self.patience = max_epochs, patience
            self.deadline: float | None = None
            self.declare_only = False  # keras-tuner's space exploration: skip recipe.build
            self.experiment = None
            self.epochs_run = 0

        def declare_hyperparameters(self, hp):
            for dimension in self.space:
                dimension.declare(hp)

        def build(self, hp):
            values = {dimension.name: dimension.declare(hp) for dimension in self.space}
            if self.declare_only:
                return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
            config = trial_config(self.base_config, values, self.max_epochs)
            experiment = self.recipe.build(config)
            if experiment.x_val is None or len(experiment.x_val) == 0:
                raise ValueError(
                    f"recipe {self.name!r} returned no validation set from build(config): a "
                    "search scores trials on validation data held out of the training data "
                    "(never the test set); set Experiment.x_val/y_val"
                )
            if not experiment.validation_held_out:
                raise ValueError(
                    f"recipe {self.name!r} validates on data it also trains on "
                    "(validation_held_out=False): a search needs a held-out validation set"
                )
            self.experiment = experiment
            return experiment.model

        def fit(self, hp, model, *args, **kwargs):
            from trainer.experiment import validation_dataset

            if args or "x" in kwargs:
                raise TypeError("RecipeHyperModel trains on the recipe's data: pass no x or y")
            experiment, self.experiment = self.experiment, None  # release the data after
            if experiment is None or experiment.model is not model:
                raise RuntimeError("RecipeHyperModel.fit needs the model its build() returned")
            callbacks = list(kwargs.pop("callbacks", []))
            callbacks.append(keras.callbacks.TerminateOnNaN())
            if self.patience:
                callbacks.append(
                    keras.callbacks.EarlyStopping(OBJECTIVE, patience=self.patience, mode="max")
                )
            callbacks.append(DeadlineStop(self.deadline))
            callbacks.append(PreciseValidation(experiment.train, PRECISE_BN_BATCHES))
            history = model.fit(
                experiment.train,
                validation_data=validation_dataset(experiment),
                epochs=kwargs.pop("epochs", self.max_epochs or experiment.epochs),
                initial_epoch=kwargs.pop("initial_epoch", 0),
                class_weight=experiment.class_weight,
                callbacks=callbacks,
                verbose=kwargs.pop("verbose", 0),
            )
            losses = history.history.get("loss", [])
            self.epochs_run = len(losses)
            for epoch, loss in enumerate(losses, start=1):
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} in epoch {epoch} (learning rate too "
                        "high for this combination?)"
                    )
            if OBJECTIVE not in history.history:
                raise ValueError(
                    f"the model reports no {OBJECTIVE}: compile it with metrics=['accuracy'] "
                    f"(it reported: {', '.join(history.history)})"
                )
            return history

    class Recording:
        """Mixed into keras-tuner's tuners: times each trial, appends its epochs, seconds and
        error to the trial log, and stops between trials when the budget is spent."""

        def setup_recording(self, log_path: Path, deadline: float | None, per_process: int = 0):
            self.log_path, self.deadline, self.per_process = log_path, deadline, per_process
            self.hypermodel.deadline = deadline
            self.trials_run: list[str] = []

        def pre_create_trial(self):
            super().pre_create_trial()
            if self.deadline is not None and time.time() >= self.deadline:
                raise BudgetSpent()
            if self.per_process and len(self.trials_run) >= self.per_process:
                raise ProcessSpent()

        def on_trial_begin(self, trial):
            self.trial_started = time.perf_counter()
            self.hypermodel.epochs_run = 0
            settings = {
                k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
            }
            print(f"trial {trial.trial_id} started: {_format_values(settings)}", flush=True)
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            self.hypermodel.experiment = None
            super().on_trial_end(trial)
            status = str(trial.status).rsplit(".", 1)[-1]
            record = {
                "trial": trial.trial_id,
                "status": status,
                "epochs": self.hypermodel.epochs_run,
                "seconds": round(time.perf_counter() - self.trial_started, 2),
                "error": _last_line(trial.message) if status != "COMPLETED" else "",
                "worker": self.tuner_id,
                "rss_mb": _resident_megabytes(),
                "process": os.getpid(),
            }
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.trials_run.append(trial.trial_id)
            score = record["error"] or (
                f"{OBJECTIVE} {trial.score:.4f}" if trial.score is not None else "done"
            )
            print(f"trial {trial.trial_id} {status.lower()}: {score}", flush=True)

    tuner_classes = {
        "random": type("RandomSearch", (Recording, kt.RandomSearch), {}),
        "grid": type("GridSearch", (Recording, kt.GridSearch), {}),
        "bayesian": type("BayesianOptimization", (Recording, kt.BayesianOptimization), {}),
        "hyperband": type("Hyperband", (Recording, kt.Hyperband), {}),
    }
    return {"hypermodel": RecipeHyperModel, **tuner_classes}


def _resident_megabytes() -> float | None:
    """This process's resident memory (VmRSS) in MB, or None where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _last_line(message: str | None) -> str:
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _format_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in values.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def recipe_hypermodel(
    recipe: ModuleType,
    base_config: Any,
    space: str | list[Dimension] | None = None,
    max_epochs: int = 0,
    patience: int = 3,
):
    """A plain keras-tuner `HyperModel` over a recipe, for keras-tuner's own API.

    `build(hp)` declares the space and returns `recipe.build(config).model`; `fit(hp, model)`
    trains on the recipe's training pipeline and validates on its held-out split. Use tuners
    from `keras_tuner()` (keras-tuner imported for tf_keras), and call `tuner.search()` with
    no data.

    Example:

        from trainer.tuning import keras_tuner, recipe_hypermodel
        hypermodel = recipe_hypermodel(digits, digits.Config(), "width=8,16", max_epochs=3)
        tuner = keras_tuner().GridSearch(hypermodel, objective="val_accuracy",
                                         directory="/tmp/grid")
        tuner.search()
        print(tuner.get_best_hyperparameters()[0].values)
    """
    if space is None:
        space = default_space(recipe, base_config)
    dimensions = parse_space(space, base_config) if isinstance(space, str) else list(space)
    return _classes()["hypermodel"](recipe, base_config, dimensions, max_epochs, patience)


def bayesian_initial_points(max_trials: int | None, dimensions: int) -> int | None:
    """Random trials before Bayesian optimization fits its Gaussian process: a third of
    `max_trials` (at least 2), at most keras-tuner's own default of 3 per dimension; None
    (keras-tuner's default) when the trials are unbounded.

    keras-tuner's default alone would make a 10-dimension search of up to 30 trials pure
    random search: its Gaussian process would never be used.
    """
    if not max_trials:
        return None
    return min(max(3 * dimensions, 3), max(2, max_trials // 3))


def _make_tuner(hypermodel, options: TuneOptions, directory: Path, overwrite: bool):
    classes, kt = _classes(), keras_tuner()
    common = {
        "objective": kt.Objective(OBJECTIVE, direction="max"),
        "directory": str(directory / KERAS_TUNER_DIR),
        "project_name": PROJECT_NAME,
        "overwrite": overwrite,
        # keras-tuner takes seed 0 for "no seed" and draws one from Python's `random` (which a
        # recipe's set_seed may have seeded, or not): shift by one so that 0 is a seed too.
        "seed": options.search_seed + 1,
        # Failed trials are recorded and the search goes on, however many fail in a row.
        "max_consecutive_failed_trials": 10**9,
    }
    max_trials = options.max_trials or None
    hypermodel.declare_only = True  # keras-tuner builds once at start to learn the space
    try:
        if options.tuner == "random":
            return classes["random"](hypermodel, max_trials=max_trials, **common)
        if options.tuner == "grid":
            return classes["grid"](hypermodel, max_trials=max_trials, **common)
        if options.tuner == "bayesian":
            return classes["bayesian"](
                hypermodel,
                max_trials=max_trials,
                num_initial_points=bayesian_initial_points(max_trials, len(hypermodel.space)),
                **common,
            )
        if options.tuner == "hyperband":
            return classes["hyperband"](
                hypermodel,
                max_epochs=max(hypermodel.max_epochs, 2),
                factor=3,
                hyperband_iterations=1,
                **common,
            )
    finally:
        hypermodel.declare_only = False
    raise ConfigError(f"tuner must be one of {', '.join(TUNERS)}, received {options.tuner!r}")


# ---------------------------------------------------------------------------------------------
# The search


@dataclasses.dataclass
class TrialRecord:
    """One trial as the tables show it."""

    trial_id: str
    values: dict[str, Any]
    objective: float | None  # best val_accuracy over the trial's epochs; None if it failed
    epochs: int
    seconds: float
    status: str  # COMPLETED, FAILED, INVALID, RUNNING (killed)
    error: str = ""


@dataclasses.dataclass
class SearchResult:
    """What a search left: the folder, every trial (best first), the best trial and config."""

    directory: Path
    trials: list[TrialRecord]
    best: TrialRecord | None
    best_config: Any
    stopped_by_budget: bool = False
    trials_run_here: list[str] = dataclasses.field(default_factory=list)
    recycled: bool = False  # a worker that ran its trials_per_process and should be replaced


def new_tune_dir(recipe_name: str, root: str | Path = "runs") -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"tune-{recipe_name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"tune-{recipe_name}-{stamp}-{suffix}"
    return path


def _recipe_name(recipe: ModuleType) -> str:
    return getattr(recipe, "__name__", "recipe").rsplit(".", 1)[-1]


def _recipe_reference(recipe: ModuleType) -> str:
    """What `load_recipe` needs to find the recipe again: its name, or its file path."""
    name = getattr(recipe, "__name__", "")
    if name.startswith("recipes."):
        return name.split(".", 1)[1]
    return str(Path(getattr(recipe, "__file__", name)).resolve())


def search(
    recipe: ModuleType,
    base_config: Any,
    space: str | None = None,
    tuner: str | None = None,
    options: TuneOptions | None = None,
) -> SearchResult:
    """Searches a recipe's hyperparameters with keras-tuner and writes the tuning folder.

    Args:
        recipe: a recipe module (`Config`, `build`, `main`), e.g. `recipes.digits` or one
            loaded with `trainer.recipe_loader.load_recipe("my_recipe.py")`.
        base_config: the recipe's `Config` with the options held fixed.
        space: the search space text (see `parse_space`); None = the recipe's `SEARCH_SPACE`
            or `generic_space`.
        tuner: random, grid, bayesian or hyperband (overrides `options.tuner`).
        options: budgets and the folder (`TuneOptions`); `options.resume` continues a folder.

    Returns:
        The `SearchResult`; `trials.csv`, `trials.md`, `best.yaml`, plots and `report.md` are
        written even when the wall-clock budget stops the search.
    """
    options = dataclasses.replace(options or TuneOptions(), **({"tuner": tuner} if tuner else {}))
    validate(options)
    if not hasattr(recipe, "build"):
        raise TypeError(
            f"recipe {_recipe_name(recipe)!r} has no build(config) -> Experiment, which a search "
            "calls once per trial (see README, 'Write your own recipe')"
        )
    validate(base_config)
    if (
        not options.max_trials
        and options.tuner in ("random", "bayesian")
        and not (options.time_budget)
    ):
        raise ConfigError(
            f"max_trials=0 (no limit) needs a --time_budget=SECONDS for the {options.tuner} "
            "tuner, which would otherwise run forever; set one, or a --max_trials"
        )
    space_text = space or options.search or default_space(recipe, base_config)
    dimensions = parse_space(space_text, base_config)
    if options.max_epochs == 0:
        options.max_epochs = int(getattr(base_config, "epochs", 0) or 0) or 10
    directory = Path(options.tune_dir) if options.tune_dir else new_tune_dir(_recipe_name(recipe))
    resuming = (directory / TUNE_FILE).is_file()
    if not resuming:
        if directory.exists() and any(directory.iterdir()):
            raise ConfigError(
                f"--tune_dir={directory} exists and holds no search to resume; choose an empty "
                "or new folder"
            )
        directory.mkdir(parents=True, exist_ok=True)
        options.search, options.tune_dir = space_text, str(directory)
        saved = {"recipe": _recipe_reference(recipe), **dataclasses.asdict(options)}
        saved.pop("resume")
        atomic_write_text(directory / TUNE_FILE, yaml.safe_dump(saved, sort_keys=False))
        save_config(base_config, directory / BASE_CONFIG_FILE)
    print(f"tuning folder: {directory}", flush=True)
    print(f"search space: {'; '.join(d.text() for d in dimensions)}", flush=True)

    hypermodel = recipe_hypermodel(
        recipe, base_config, dimensions, options.max_epochs, options.trial_patience
    )
    deadline = time.time() + options.time_budget if options.time_budget else None
    if os.environ.get(DEADLINE_VARIABLE):
        deadline = float(os.environ[DEADLINE_VARIABLE])
    in_workers = options.workers or options.trials_per_process
    if in_workers and not os.environ.get("KERASTUNER_ORACLE_IP"):
        return _search_with_workers(hypermodel, recipe, base_config, directory, options)
    _quiet_retracing_warnings()
    tuner_object = _make_tuner(hypermodel, options, directory, overwrite=False)
    per_process = options.trials_per_process if _is_worker() else 0
    tuner_object.setup_recording(directory / TRIAL_LOG_FILE, deadline, per_process)
    stopped = recycled = False
    try:
        tuner_object.search(verbose=0)
    except KeyboardInterrupt as interrupt:
        if _is_worker():
            raise
        _interrupted(tuner_object.oracle, recipe, base_config, directory, options, interrupt)
    except BudgetSpent:
        stopped = True
        print(f"time budget of {options.time_budget:g}s spent: stopping the search", flush=True)
    except ProcessSpent:
        recycled = True
    if _is_worker():
        result = SearchResult(directory, [], None, None, stopped, tuner_object.trials_run)
        result.recycled = recycled
        return result
    result = write_results(tuner_object.oracle, recipe, base_config, directory, options)
    result.stopped_by_budget, result.trials_run_here = stopped, tuner_object.trials_run
    return result


# What each worker process runs: the search of the tuning folder, as a client of the chief.
WORKER_CODE = (
    "import sys, trainer.keras_path as path, trainer.tuning as tuning; "
    "path.import_tensorflow_quietly(); "
    f"sys.exit({RECYCLE_EXIT_CODE} if tuning.resume(sys.argv[1]).recycled else 0)"
)


def _search_with_workers(hypermodel, recipe, base_config, directory: Path, options: TuneOptions):
    """keras-tuner's distributed mode on this machine: the oracle serves from a thread of this
    process (the chief) and `options.workers` processes run the trials, each asking the chief
    for its next trial, so no trial runs twice. A worker that has run `trials_per_process`
    trials exits and the chief starts a fresh one under the same id, which frees the memory
    TensorFlow keeps per model. Returns when every worker has finished.

    On several machines, run the same search on each with the environment variables set by
    hand: KERASTUNER_TUNER_ID=chief on one (it only serves the oracle) and worker0, worker1, ...
    on the others, all with KERASTUNER_ORACLE_IP=<the chief's address> and
    KERASTUNER_ORACLE_PORT=<a free port>, and a shared --tune_dir (see README).
    """
    import threading

    from trainer import processes

    address = {
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(processes.free_port()),
    }
    previous = {name: os.environ.get(name) for name in [*address, "KERASTUNER_TUNER_ID"]}
    os.environ.update(address, KERASTUNER_TUNER_ID="chief")
    try:
        chief = _make_tuner(hypermodel, options, directory, overwrite=False)
        # keras-tuner's chief blocks serving until every worker has asked for a trial and
        # been told to stop; a thread lets this process collect the results however the
        # workers end (done, budget spent, crashed).
        threading.Thread(target=chief.search, kwargs={"verbose": 0}, daemon=True).start()
        count = max(options.workers, 1)
        deadline = {DEADLINE_VARIABLE: str(time.time() + options.time_budget)}

        def start(index: int):
            from trainer.keras_path import child_environment

            environment = {**child_environment(), **address}
            environment["KERASTUNER_TUNER_ID"] = f"worker{index}"
            environment.update(deadline if options.time_budget else {})
            return processes.start([sys.executable, "-c", WORKER_CODE, str(directory)], environment)

        running = {index: start(index) for index in range(count)}
        port = address["KERASTUNER_ORACLE_PORT"]
        print(f"chief oracle on port {port}, {count} worker processes", flush=True)
        failed = []
        try:
            _wait_for_workers(running, start, failed)
        except KeyboardInterrupt as interrupt:
            _interrupted(chief.oracle, recipe, base_config, directory, options, interrupt)
        finally:
            # Interrupted or failed: stop the workers this search started, none outliving it.
            processes.stop(running.values(), grace=5.0)
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if failed:
        print(
            f"warning: worker(s) {', '.join(map(str, failed))} exited with an error; the "
            "results below hold the trials that finished",
            flush=True,
        )
    return write_results(chief.oracle, recipe, base_config, directory, options)


def _interrupted(oracle, recipe, base_config, directory: Path, options, interrupt) -> None:
    """Ctrl-C: writes the results of the trials that finished, then raises KeyboardInterrupt
    with how to continue (the CLI prints it)."""
    try:
        result = write_results(oracle, recipe, base_config, directory, options)
        finished = sum(trial.objective is not None for trial in result.trials)
        kept = f"{finished} finished trial(s) are in {directory / 'trials.md'}; "
    except Exception:  # noqa: BLE001 (the hint matters more than a partial table)
        kept = ""
    raise KeyboardInterrupt(
        f"The tuning folder {directory} is kept: {kept}continue the search with "
        f"`trainer tune --resume={directory}`."
    ) from interrupt


def _wait_for_workers(running: dict, start, failed: list) -> None:
    """Waits until every worker has finished, starting a fresh process for each worker that
    exits after its `trials_per_process` trials; `running` holds the live ones."""
    from trainer.processes import exits

    for index, code in exits(running):
        if code == RECYCLE_EXIT_CODE:
            running[index] = start(index)
        elif code != 0:
            failed.append(index)


class _RetracingFilter:
    """Drops TensorFlow's "triggered tf.function retracing" warning: every trial builds a new
    model after `clear_session`, so its functions are traced anew by design."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing_warnings() -> None:
    import logging

    logger = logging.getLogger("tensorflow")
    if not os.environ.get("TRAINER_DEBUG") and not any(
        isinstance(existing, _RetracingFilter) for existing in logger.filters
    ):
        logger.addFilter(_RetracingFilter())


def _is_worker() -> bool:
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and (
        os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
    )


def load_search(directory: str | Path) -> tuple[ModuleType, Any, TuneOptions]:
    """The recipe, fixed config and options of a tuning folder, for `--resume`.

    Raises:
        FileNotFoundError: the folder holds no tune.yaml.
    """
    from trainer.recipe_loader import load_recipe

    directory = Path(directory)
    if not (directory / TUNE_FILE).is_file():
        raise FileNotFoundError(
            f"{directory} is not a tuning folder (no {TUNE_FILE}): pass the folder a "
            "`trainer tune` printed as 'tuning folder: ...'"
        )
    saved = yaml.safe_load((directory / TUNE_FILE).read_text(encoding="utf-8"))
    recipe = load_recipe(saved.pop("recipe"))
    known = {field.name for field in dataclasses.fields(TuneOptions)}
    options = TuneOptions(**{key: value for key, value in saved.items() if key in known})
    options.tune_dir = str(directory)
    base_config = load_saved_config(recipe.Config, directory / BASE_CONFIG_FILE)
    return recipe, base_config, options


def resume(directory: str | Path, time_budget: float | None = None) -> SearchResult:
    """Continues a killed or budget-stopped search; completed trials are not run again (the
    trial that was running when the search was killed runs again from its start)."""
    recipe, base_config, options = load_search(directory)
    if time_budget is not None:
        options.time_budget = time_budget
    worker = os.environ.get("KERASTUNER_TUNER_ID", "") if _is_worker() else ""
    print(f"{worker or 'resuming'}: the search in {directory}", flush=True)
    return search(recipe, base_config, options.search, options=options)


# ---------------------------------------------------------------------------------------------
# Results


def _read_trial_log(path: Path) -> dict[str, dict]:
    records: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill -9
                continue
            records[record["trial"]] = record
    return records


def collect_trials(oracle, log_path: Path) -> list[TrialRecord]:
    """Every trial of the oracle with its log record, best objective first, failures last."""
    log = _read_trial_log(log_path)
    records = []
    for trial_id, trial in oracle.trials.items():
        status = str(trial.status).rsplit(".", 1)[-1]
        entry = log.get(trial_id, {})
        score = float(trial.score) if status == "COMPLETED" and trial.score is not None else None
        if score is not None and not math.isfinite(score):
            score = None
        values = {
            k: _python_value(v)
            for k, v in trial.hyperparameters.values.items()
            if not k.startswith("tuner/")
        }
        error = entry.get("error", "") or (_last_line(trial.message) if score is None else "")
        records.append(
            TrialRecord(
                trial_id,
                values,
                score,
                int(entry.get("epochs", 0)),
                float(entry.get("seconds", 0.0)),
                status,
                error,
            )
        )
    records.sort(key=lambda r: (r.objective is None, -(r.objective or 0.0), r.trial_id))
    return records


def write_results(
    oracle, recipe: ModuleType, base_config: Any, directory: Path, options: TuneOptions
) -> SearchResult:
    """Writes trials.csv, trials.md, best.yaml, the two plots and report.md."""
    trials = collect_trials(oracle, directory / TRIAL_LOG_FILE)
    names = sorted({name for trial in trials for name in trial.values})
    atomic_write_text(directory / "trials.csv", trials_csv(trials, names))
    atomic_write_text(directory / "trials.md", trials_markdown(trials, names))
    completed = [trial for trial in trials if trial.objective is not None]
    best = completed[0] if completed else None
    best_config = None
    if best is not None:
        best_config = trial_config(base_config, best.values, options.max_epochs)
        save_config(best_config, directory / BEST_CONFIG_FILE)
    influence = parameter_influence(completed, names)
    if trials:
        plot_objective_vs_trial(trials, directory / "objective_vs_trial.png")
    if completed:
        top = [name for name, _ in influence[:3]] or names[:3]
        plot_objective_vs_parameters(completed, top, directory / "objective_vs_parameters.png")
    write_report(directory, recipe, options, trials, best, influence)
    return SearchResult(directory, trials, best, best_config)


def trials_csv(trials: list[TrialRecord], names: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "status", OBJECTIVE, "epochs", "seconds", *names, "error"])
    for trial in trials:
        objective = "" if trial.objective is None else f"{trial.objective:.6f}"
        writer.writerow(
            [
                trial.trial_id,
                trial.status,
                objective,
                trial.epochs,
                f"{trial.seconds:.1f}",
                *(trial.values.get(n, "") for n in names),
                trial.error,
            ]
        )
    return buffer.getvalue()


def trials_markdown(trials: list[TrialRecord], names: list[str]) -> str:
    header = ["trial", *names, OBJECTIVE, "epochs", "seconds", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for trial in trials:
        objective = "failed" if trial.objective is None else f"{trial.objective:.4f}"
        status = trial.status.lower() + (f": {trial.error}" if trial.error else "")
        cells = [
            trial.trial_id,
            *(_short(trial.values.get(n, "")) for n in names),
            objective,
            str(trial.epochs),
            f"{trial.seconds:.1f}",
            status.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parameter_influence(trials: list[TrialRecord], names: list[str]) -> list[tuple[str, float]]:
    """Ranks parameters by the share of the objective's variance they explain (0-1) over the
    completed trials: the squared rank correlation for numbers, the between-group share (eta
    squared) for choices. A rough guide for a few trials, not a causal estimate."""
    import numpy as np

    objectives = np.array([trial.objective for trial in trials], dtype=float)
    if len(trials) < 3 or np.ptp(objectives) == 0:
        return []
    ranked = []
    for name in names:
        values = [trial.values.get(name) for trial in trials]
        if len({str(value) for value in values}) < 2:
            continue
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            x = np.argsort(np.argsort(np.array(values, dtype=float))).astype(float)
            y = np.argsort(np.argsort(objectives)).astype(float)
            score = float(np.corrcoef(x, y)[0, 1] ** 2) if np.ptp(x) else 0.0
        else:
            groups: dict[str, list[float]] = {}
            for value, objective in zip(values, objectives, strict=True):
                groups.setdefault(str(value), []).append(objective)
            mean = objectives.mean()
            between = sum(len(g) * (np.mean(g) - mean) ** 2 for g in groups.values())
            score = float(between / ((objectives - mean) ** 2).sum())
        ranked.append((name, 0.0 if math.isnan(score) else round(score, 3)))
    return sorted(ranked, key=lambda item: -item[1])


def plot_objective_vs_trial(trials: list[TrialRecord], path: str | Path) -> Path:
    """Each trial's objective in the order the trials started, the best so far as a line, and
    failed trials as red crosses on the axis."""
    from trainer.plots import pyplot, save_figure

    ordered = sorted(trials, key=lambda trial: trial.trial_id)
    figure, axis = pyplot().subplots(figsize=(7, 4))
    best_so_far, best = [], float("nan")
    for index, trial in enumerate(ordered):
        if trial.objective is not None:
            best = trial.objective if math.isnan(best) else max(best, trial.objective)
            axis.scatter(index, trial.objective * 100, color="tab:blue", s=25)
        else:
            axis.scatter(index, 0, color="tab:red", marker="x", s=35)
        best_so_far.append(best * 100)
    axis.plot(range(len(ordered)), best_so_far, color="tab:green", lw=1.5, label="best so far")
    axis.set_xlabel("trial (start order)")
    axis.set_ylabel("validation accuracy (%)")
    axis.set_title("objective vs trial (red x: failed)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return save_figure(figure, path)


def plot_objective_vs_parameters(
    trials: list[TrialRecord], names: list[str], path: str | Path
) -> Path:
    """The objective against each of `names` (the most influential parameters), one panel each;
    numbers on a log axis when they span a factor of 9 or more."""
    from trainer.plots import pyplot, save_figure

    names = names or ["(none)"]
    figure, axes = pyplot().subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        values = [trial.values.get(name) for trial in trials]
        objectives = [trial.objective * 100 for trial in trials]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            axis.scatter(values, objectives, color="tab:blue", s=25)
            positive = [v for v in values if v > 0]
            if positive and len(positive) == len(values) and max(values) / min(values) >= 9:
                axis.set_xscale("log")
        else:
            labels = list(dict.fromkeys(str(v) for v in values))
            axis.scatter([labels.index(str(v)) for v in values], objectives, s=25)
            axis.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
        axis.set_xlabel(name)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy (%)")
    figure.suptitle("objective vs the most influential parameters")
    figure.tight_layout()
    return save_figure(figure, path)


def write_report(
    directory: Path,
    recipe: ModuleType,
    options: TuneOptions,
    trials: list[TrialRecord],
    best: TrialRecord | None,
    influence: list[tuple[str, float]],
) -> Path:
    name = _recipe_name(recipe)
    completed = sum(trial.objective is not None for trial in trials)
    epochs = sum(trial.epochs for trial in trials)
    seconds = sum(trial.seconds for trial in trials)
    lines = [
        f"# Hyperparameter search: {name}",
        "",
        f"keras-tuner `{options.tuner}`, {len(trials)} trials ({completed} completed, "
        f"{len(trials) - completed} failed), at most {options.max_epochs} epochs each, "
        f"{epochs} epochs and {seconds:.0f} s of trials in all. Objective: `{OBJECTIVE}` on the "
        "validation split the recipe holds out of its training data; the test set was not used.",
        "",
        f"Search space: `{options.search}`",
        "",
        "## Best",
        "",
    ]
    if best is None:
        lines.append("No trial completed: see the errors in the table below.")
    else:
        lines += [
            f"Trial {best.trial_id}: {OBJECTIVE} **{best.objective * 100:.2f}%** with "
            f"{_format_values(best.values)}.",
            "",
            f"Train it: `trainer train {_recipe_reference(recipe)} "
            f"--config={directory / BEST_CONFIG_FILE}` (or `trainer tune --resume={directory} "
            "--final=true`: retrain, export and verify, test accuracy scored once).",
        ]
    if influence:
        lines += [
            "",
            "## Most influential parameters",
            "",
            "Share of the objective's variance each explains over the completed trials "
            "(squared rank correlation, or between-group share for choices): a rough "
            "guide.",
            "",
            *(f"- {param}: {score:.2f}" for param, score in influence),
        ]
    lines += [
        "",
        "## Trials (best first)",
        "",
        trials_markdown(trials, sorted({key for trial in trials for key in trial.values})),
    ]
    if trials:
        lines += ["![objective vs trial](objective_vs_trial.png)", ""]
    if best is not None:
        lines += ["![objective vs parameters](objective_vs_parameters.png)", ""]
    return atomic_write_text(directory / "report.md", "\n".join(lines))


def final_run(directory: str | Path) -> dict:
    """Retrains the best config of a tuning folder through the recipe's own `main` into
    `<folder>/final` (fit, export, TFLite verification, test accuracy scored once) and adds
    the result to `report.md`."""
    recipe, _, _ = load_search(directory)
    directory = Path(directory)
    best_file = directory / BEST_CONFIG_FILE
    if not best_file.is_file():
        raise FileNotFoundError(f"{best_file} does not exist: no trial of this search completed")
    from trainer.config import parse_args

    arguments = [f"--config={best_file}"]
    if "run_dir" in {field.name for field in dataclasses.fields(recipe.Config)}:
        arguments.append(f"--run_dir={directory / 'final'}")
    metrics = recipe.main(parse_args(recipe.Config, arguments))
    report = directory / "report.md"
    text = report.read_text(encoding="utf-8") if report.is_file() else ""
    if "## Final model" not in text:
        accuracy = metrics.get("test_accuracy")
        scored = f"{accuracy * 100:.2f}%" if isinstance(accuracy, float) else "not reported"
        text += (
            f"\n## Final model\n\nThe best config retrained by the recipe's own main: test "
            f"accuracy **{scored}** (the only time this search scored the test set). Run "
            "folder: [final](final/report.md).\n"
        )
        atomic_write_text(report, text)
    return metrics
