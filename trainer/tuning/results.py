"""The trials of a search as records and tables: what keras-tuner's oracle and the trial log
hold, read into `TrialRecord`s (best first), `trials.csv`, the Markdown table and a rough
ranking of the parameters by influence.

Pure data: this module must not import keras-tuner or TensorFlow (the oracle it reads is passed
in) and writes no files; `trainer.tuning.report` writes them.
"""

import csv
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

from trainer.tuning.options import OBJECTIVE
from trainer.tuning.space import python_value


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


def read_trial_log(path: Path) -> dict[str, dict]:
    """The trial log's records by trial id (the last record of a trial wins)."""
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
    log = read_trial_log(log_path)
    records = []
    for trial_id, trial in oracle.trials.items():
        status = str(trial.status).rsplit(".", 1)[-1]
        entry = log.get(trial_id, {})
        score = float(trial.score) if status == "COMPLETED" and trial.score is not None else None
        if score is not None and not math.isfinite(score):
            score = None
        values = {
            k: python_value(v)
            for k, v in trial.hyperparameters.values.items()
            if not k.startswith("tuner/")
        }
        error = entry.get("error", "") or (last_line(trial.message) if score is None else "")
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
            *(short(trial.values.get(n, "")) for n in names),
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


def last_line(message: str | None) -> str:
    """The last non-empty line of an error message (a traceback's own message), cut to 300."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def format_values(values: dict[str, Any]) -> str:
    """A trial's values as `name=value, ...`, floats to 3 significant digits."""
    return ", ".join(f"{key}={short(value)}" for key, value in values.items())


def short(value: Any) -> str:
    """A value for a table cell: a float to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)
