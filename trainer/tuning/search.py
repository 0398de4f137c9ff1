"""The search: check it, open the tuning folder, run the trials with keras-tuner (here or in
worker processes) and write the results; resume a killed search; retrain the best config.

keras-tuner and TensorFlow are imported only when a search starts (`recipe_hypermodel`,
`make_tuner`), so `import trainer.tuning` stays fast for `trainer tune --help` and the
command's checks. This module must not parse command lines (`trainer.cli.tune` does).
"""

import dataclasses
import datetime
import logging
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from trainer.config import ConfigError, load_saved_config, save_config, validate
from trainer.files import atomic_write_text
from trainer.outputs import check_output_folder, data_sources
from trainer.tuning.options import (
    BASE_CONFIG_FILE,
    BEST_CONFIG_FILE,
    KERAS_TUNER_DIR,
    OBJECTIVE,
    PROJECT_NAME,
    TRIAL_LOG_FILE,
    TUNE_FILE,
    TUNERS,
    BudgetSpent,
    ProcessSpent,
    TuneOptions,
    recipe_name,
    recipe_reference,
)
from trainer.tuning.report import raise_interrupted, write_results
from trainer.tuning.results import SearchResult
from trainer.tuning.space import Dimension, default_space, parse_space
from trainer.tuning.workers import DEADLINE_VARIABLE, is_worker, search_with_workers


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
    _check_search(recipe, base_config, options)
    space_text = space or options.search or default_space(recipe, base_config)
    dimensions = parse_space(space_text, base_config)
    if options.max_epochs == 0:
        options.max_epochs = int(getattr(base_config, "epochs", 0) or 0) or 10
    directory = _tune_dir(recipe, base_config, options, space_text)
    print(f"tuning folder: {directory}", flush=True)
    print(f"search space: {'; '.join(d.text() for d in dimensions)}", flush=True)

    hypermodel = recipe_hypermodel(
        recipe, base_config, dimensions, options.max_epochs, options.trial_patience
    )
    in_workers = options.workers or options.trials_per_process
    if in_workers and not os.environ.get("KERASTUNER_ORACLE_IP"):
        return search_with_workers(
            lambda: make_tuner(hypermodel, options, directory, overwrite=False),
            recipe,
            base_config,
            directory,
            options,
        )
    return _search_here(hypermodel, recipe, base_config, directory, options)


def _check_search(recipe: ModuleType, base_config: Any, options: TuneOptions) -> None:
    """Fails before any data loads on a search that cannot run."""
    validate(options)
    if not hasattr(recipe, "build"):
        raise TypeError(
            f"recipe {recipe_name(recipe)!r} has no build(config) -> Experiment, which a search "
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


def _tune_dir(recipe: ModuleType, base_config: Any, options: TuneOptions, space: str) -> Path:
    """The tuning folder: `--tune_dir` or a new one. A new search writes its options, space and
    fixed config there (what `--resume` reads); a folder that holds a search is resumed."""
    directory = Path(options.tune_dir) if options.tune_dir else new_tune_dir(recipe_name(recipe))
    # The shared output guard (trainer.outputs): outside the recipe's data (the next trial
    # would read the folder as a class), not a run's folder, not a device or file, and a
    # folder that is not this search's own (tune.yaml) must be empty.
    check_output_folder(directory, "--tune_dir", data_sources(base_config), ("*",), TUNE_FILE)
    if (directory / TUNE_FILE).is_file():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    options.search, options.tune_dir = space, str(directory)
    saved = {"recipe": recipe_reference(recipe), **dataclasses.asdict(options)}
    saved.pop("resume")
    atomic_write_text(directory / TUNE_FILE, yaml.safe_dump(saved, sort_keys=False))
    save_config(base_config, directory / BASE_CONFIG_FILE)
    return directory


def _search_here(
    hypermodel, recipe: ModuleType, base_config: Any, directory: Path, options: TuneOptions
) -> SearchResult:
    """Runs the trials in this process: the whole search, or a worker's share of a chief's."""
    deadline = time.time() + options.time_budget if options.time_budget else None
    if os.environ.get(DEADLINE_VARIABLE):
        deadline = float(os.environ[DEADLINE_VARIABLE])
    _quiet_retracing_warnings()
    tuner_object = make_tuner(hypermodel, options, directory, overwrite=False)
    per_process = options.trials_per_process if is_worker() else 0
    tuner_object.setup_recording(directory / TRIAL_LOG_FILE, deadline, per_process)
    stopped = recycled = False
    try:
        tuner_object.search(verbose=0)
    except KeyboardInterrupt as interrupt:
        if is_worker():
            raise
        raise_interrupted(tuner_object.oracle, recipe, base_config, directory, options, interrupt)
    except BudgetSpent:
        stopped = True
        print(f"time budget of {options.time_budget:g}s spent: stopping the search", flush=True)
    except ProcessSpent:
        recycled = True
    if is_worker():
        result = SearchResult(directory, [], None, None, stopped, tuner_object.trials_run)
        result.recycled = recycled
        return result
    result = write_results(tuner_object.oracle, recipe, base_config, directory, options)
    result.stopped_by_budget, result.trials_run_here = stopped, tuner_object.trials_run
    return result


def new_tune_dir(recipe_name: str, root: str | Path = "runs") -> Path:
    """A new folder `ROOT/tune-<recipe>-<timestamp>` (with a suffix if that one exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"tune-{recipe_name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"tune-{recipe_name}-{stamp}-{suffix}"
    return path


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
    from trainer.tuning.hypermodel import RecipeHyperModel

    return RecipeHyperModel(recipe, base_config, dimensions, max_epochs, patience)


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


def make_tuner(hypermodel, options: TuneOptions, directory: Path, overwrite: bool):
    """The keras-tuner tuner `options.tuner` names, recording its trials, over `hypermodel`,
    with its state in the tuning folder (so a killed search resumes from it)."""
    from trainer.tuning.keras_tuner_import import keras_tuner
    from trainer.tuning.tuners import TUNER_CLASSES as classes

    kt = keras_tuner()
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


class _RetracingFilter:
    """Drops TensorFlow's "triggered tf.function retracing" warning: every trial builds a new
    model after `clear_session`, so its functions are traced anew by design."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing_warnings() -> None:
    logger = logging.getLogger("tensorflow")
    if not os.environ.get("TRAINER_DEBUG") and not any(
        isinstance(existing, _RetracingFilter) for existing in logger.filters
    ):
        logger.addFilter(_RetracingFilter())


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
    worker = os.environ.get("KERASTUNER_TUNER_ID", "") if is_worker() else ""
    print(f"{worker or 'resuming'}: the search in {directory}", flush=True)
    return search(recipe, base_config, options.search, options=options)


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
