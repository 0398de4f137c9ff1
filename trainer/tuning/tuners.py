"""keras-tuner's four tuners with a recording mixin: each trial is timed and logged, and the
search stops between trials when its budget is spent.

`Recording` times each trial, appends its epochs, seconds and error to the trial log (what the
tables read, and what a killed search leaves), prints one line when a trial starts and ends,
and raises `BudgetSpent` or `ProcessSpent` before a trial that should not start. The search
algorithms are keras-tuner's own; `TUNER_CLASSES` maps each `--tuner` name to its class.
Importing this module imports keras-tuner (through `keras_tuner()`) and TensorFlow.
"""

import json
import os
import time
from pathlib import Path

from trainer.tuning.keras_tuner_import import keras_tuner
from trainer.tuning.options import OBJECTIVE, BudgetSpent, ProcessSpent
from trainer.tuning.results import format_values, last_line

kt = keras_tuner()


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
        print(f"trial {trial.trial_id} started: {format_values(settings)}", flush=True)
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
            "error": last_line(trial.message) if status != "COMPLETED" else "",
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


class RandomSearch(Recording, kt.RandomSearch):
    """keras-tuner's random search, recording its trials."""


class GridSearch(Recording, kt.GridSearch):
    """keras-tuner's grid search, recording its trials."""


class BayesianOptimization(Recording, kt.BayesianOptimization):
    """keras-tuner's Bayesian optimization (a Gaussian process), recording its trials."""


class Hyperband(Recording, kt.Hyperband):
    """keras-tuner's Hyperband (successive halving over brackets), recording its trials."""


# `--tuner` name -> tuner class: the names `TuneOptions.tuner` accepts (`options.TUNERS`).
TUNER_CLASSES = {
    "random": RandomSearch,
    "grid": GridSearch,
    "bayesian": BayesianOptimization,
    "hyperband": Hyperband,
}


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
