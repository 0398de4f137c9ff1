"""What a search is: its options, the files it writes into the tuning folder, and the two
signals that end it between trials.

This module holds data only; it must not import keras-tuner or TensorFlow, so that `trainer tune
--help` and the command's option checks stay fast.
"""

import dataclasses
from pathlib import Path
from types import ModuleType

from trainer import outputs
from trainer.config import choice, limit

TUNERS = ("random", "grid", "bayesian", "hyperband")
OBJECTIVE = "val_accuracy"
TUNE_FILE = outputs.TUNE_FILE  # the search's options, recipe and space: what --resume reads
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


class BudgetSpent(Exception):
    """Raised between trials when the search's wall-clock budget is spent."""


class ProcessSpent(Exception):
    """Raised between trials when a worker has run its `trials_per_process`."""


def recipe_name(recipe: ModuleType) -> str:
    """The recipe's short name (`digits`, `my_recipe`), for folder names and reports."""
    return getattr(recipe, "__name__", "recipe").rsplit(".", 1)[-1]


def recipe_reference(recipe: ModuleType) -> str:
    """What `load_recipe` needs to find the recipe again: its name, or its file path."""
    name = getattr(recipe, "__name__", "")
    if name.startswith("recipes."):
        return name.split(".", 1)[1]
    return str(Path(getattr(recipe, "__file__", name)).resolve())


# Training batches averaged for the batch-norm statistics before each validation pass of a
# trial (`trainer.tuning.hypermodel.PreciseValidation`); `trainer train` uses 50 once, at the end.
PRECISE_BN_BATCHES = 20
