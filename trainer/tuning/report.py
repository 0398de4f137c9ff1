"""The tuning folder's outputs: `trials.csv`, `trials.md`, `best.yaml`, the two plots,
`report.md` and the trials as TensorBoard HParams sessions in `logs/`, written after every
search (also one stopped by its budget or by Ctrl-C).

This module writes files from the records `trainer.tuning.results` reads; it must not run
trials or import keras-tuner.
"""

import math
from pathlib import Path
from types import ModuleType
from typing import Any

from trainer.config import save_config
from trainer.files import atomic_write_text
from trainer.runs import LOGS_DIR
from trainer.tensorboard_logging import log_trials
from trainer.tuning.options import (
    BEST_CONFIG_FILE,
    OBJECTIVE,
    TRIAL_LOG_FILE,
    TuneOptions,
    recipe_name,
    recipe_reference,
)
from trainer.tuning.results import (
    SearchResult,
    TrialRecord,
    collect_trials,
    format_values,
    parameter_influence,
    trials_csv,
    trials_markdown,
)
from trainer.tuning.space import trial_config


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
    log_trials(directory / LOGS_DIR, trials, OBJECTIVE)  # TensorBoard's HParams dashboard
    return SearchResult(directory, trials, best, best_config)


def raise_interrupted(oracle, recipe, base_config, directory: Path, options, interrupt) -> None:
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
    """Writes `report.md`: the search, the best trial and how to train it, the parameters'
    influence, every trial and the plots."""
    name = recipe_name(recipe)
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
            f"{format_values(best.values)}.",
            "",
            f"Train it: `trainer train {recipe_reference(recipe)} "
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
