"""Hyperparameter search over any recipe with keras-tuner's own tuners and oracles.

A search varies fields of a recipe's `Config` (the search space), and each trial is the recipe
contract: `recipe.build(config_with_trial_values)`, then `model.fit` on `experiment.train` with
validation on `experiment.x_val/y_val` (held out of the training data; the test set is never
read here) for at most `max_epochs`, with early stopping. The objective is `val_accuracy`.
Results go to a tuning folder, `runs/tune-<recipe>-<timestamp>/`: `trials.csv` and
`trials.md` (sorted), `best.yaml` (the best config, which `trainer train RECIPE
--config=best.yaml` takes unchanged), `objective_vs_trial.png`, `objective_vs_parameters.png`
and `report.md`; keras-tuner's own state lives under `keras_tuner/` so a killed search resumes.

This package owns search spaces, the `HyperModel`, the search and its results, one module
each: `options` (`TuneOptions`, file names), `space` (parsing and checking a space),
`keras_tuner_import` (the one import of keras-tuner, for tf_keras), `hypermodel` (the recipe as
a keras-tuner `HyperModel` and the trial callbacks), `tuners` (keras-tuner's four tuners with
trial recording), `search` (a search from start to results, resume, the final run), `workers`
(the chief and its worker processes), `results` (trial records and tables) and `report`
(files, plots, report.md). It must not parse command lines (`trainer.cli.tune` does) nor write
its own search algorithms: random, grid, Bayesian and Hyperband are keras-tuner's.
`import trainer.tuning` does not import keras-tuner or TensorFlow; a search does, when it
starts. The tuner classes live in `trainer.tuning.tuners` and the `HyperModel` in
`trainer.tuning.hypermodel`, which import keras-tuner.

Example:

    import recipes.digits as digits
    from trainer.tuning import TuneOptions, search

    result = search(digits, digits.Config(), "learning_rate=log:1e-3:3e-2; width=8,16,32",
                    tuner="bayesian", options=TuneOptions(max_trials=6, max_epochs=5))
    print(result.best.objective, result.best.values, result.directory / "best.yaml")
"""

from trainer.tuning.keras_tuner_import import keras_tuner
from trainer.tuning.options import (
    BASE_CONFIG_FILE,
    BEST_CONFIG_FILE,
    KERAS_TUNER_DIR,
    NOT_SEARCHABLE,
    OBJECTIVE,
    PRECISE_BN_BATCHES,
    PROJECT_NAME,
    TRIAL_LOG_FILE,
    TUNE_FILE,
    TUNERS,
    BudgetSpent,
    ProcessSpent,
    TuneOptions,
)
from trainer.tuning.report import (
    plot_objective_vs_parameters,
    plot_objective_vs_trial,
    write_report,
    write_results,
)
from trainer.tuning.results import (
    SearchResult,
    TrialRecord,
    collect_trials,
    parameter_influence,
    trials_csv,
    trials_markdown,
)
from trainer.tuning.search import (
    bayesian_initial_points,
    final_run,
    load_search,
    make_tuner,
    new_tune_dir,
    recipe_hypermodel,
    resume,
    search,
)
from trainer.tuning.space import Dimension, default_space, generic_space, parse_space, trial_config
from trainer.tuning.workers import DEADLINE_VARIABLE, RECYCLE_EXIT_CODE, WORKER_CODE

__all__ = [
    "BASE_CONFIG_FILE",
    "BEST_CONFIG_FILE",
    "DEADLINE_VARIABLE",
    "KERAS_TUNER_DIR",
    "NOT_SEARCHABLE",
    "OBJECTIVE",
    "PRECISE_BN_BATCHES",
    "PROJECT_NAME",
    "RECYCLE_EXIT_CODE",
    "TRIAL_LOG_FILE",
    "TUNERS",
    "TUNE_FILE",
    "WORKER_CODE",
    "BudgetSpent",
    "Dimension",
    "ProcessSpent",
    "SearchResult",
    "TrialRecord",
    "TuneOptions",
    "bayesian_initial_points",
    "collect_trials",
    "default_space",
    "final_run",
    "generic_space",
    "keras_tuner",
    "load_search",
    "make_tuner",
    "new_tune_dir",
    "parameter_influence",
    "parse_space",
    "plot_objective_vs_parameters",
    "plot_objective_vs_trial",
    "recipe_hypermodel",
    "resume",
    "search",
    "trial_config",
    "trials_csv",
    "trials_markdown",
    "write_report",
    "write_results",
]
