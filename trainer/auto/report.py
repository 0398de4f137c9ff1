"""The end of `trainer auto`: the winner among the finalists' verified files, its files in the
auto folder, the picture of every candidate and `report.md`.

The winner is the most accurate file on validation among the finalists' files that fit both
limits; it is copied to `AUTO_DIR/model.tflite` with its sidecar `model.json` (and any file
the sidecar names, such as a text model's vocabulary) and its model card. When no file fits,
the report says which limit cannot be met and shows the closest file; when the winner misses
`--min_accuracy`, it says so. `accuracy_size_latency.png` shows validation accuracy against
size and against latency for every candidate: the search's trials at the cost model's
measurement of their shipped file (untrained: size and speed do not depend on the weights),
and every file the compression of a finalist made, with the budget lines and the winner.

This module must not train, search or convert models.
"""

import dataclasses
import json
import shutil
from pathlib import Path

from trainer.auto.cost import Budget, read_costs
from trainer.auto.options import COSTS_FILE, PLOT_FILE, WINNER_FILE, AutoOptions
from trainer.auto.state import AutoState


@dataclasses.dataclass
class AutoResult:
    """What `trainer auto` ended with."""

    directory: Path
    winner: dict | None  # the finalist whose verified file won (its `verified` holds the file)
    closest: dict | None  # when nothing fits: the file nearest the budget (a `Measured` dict)
    message: str  # one paragraph: the winner, or which limit cannot be met
    met: bool  # a file fits both limits and reaches --min_accuracy


def choose_winner(state: AutoState, budget: Budget) -> tuple[dict | None, dict | None]:
    """(the finalist whose chosen file fits and is most accurate on validation, or None;
    the file closest to the budget over every finalist, when none fits)."""
    done = [finalist for finalist in state.finalists if "verified" in finalist]
    fitting = [finalist for finalist in done if finalist["chosen"]["fits"]]
    if fitting:
        winner = max(
            fitting, key=lambda f: (f["chosen"]["val_accuracy"], -f["chosen"]["size_bytes"])
        )
        return winner, None
    measured = [entry for finalist in done for entry in finalist.get("measured", [])]
    if not measured:
        return None, None
    closest = min(measured, key=lambda e: budget.excess(e["size_bytes"] / 1024, e["latency_ms"]))
    return None, closest


def unmet_limits(state: AutoState, budget: Budget, directory: Path) -> list[str]:
    """The limits that every finalist's file breaks, with the best value reached, and whether
    a smaller architecture measured by the cost model would meet it."""
    files = [
        (e["size_bytes"] / 1024, e["latency_ms"])
        for f in state.finalists
        for e in f.get("measured", [])
    ]
    files = files or [(c.kib, c.latency_ms) for c in read_costs(directory / COSTS_FILE).values()]
    costs = list(read_costs(directory / COSTS_FILE).values())
    unmet = []
    for limit, name, index, unit in (
        (budget.max_kib, "max_kib", 0, "KiB"),
        (budget.max_ms, "max_ms", 1, "ms"),
    ):
        if not limit or not files or min(file[index] for file in files) <= limit:
            continue
        text = f"--{name}={limit:g} (best file {min(file[index] for file in files):.4g} {unit}"
        smaller = [c for c in costs if (c.kib, c.latency_ms)[index] <= limit]
        if state.finalists and smaller:
            text += (
                f"; smaller architectures measured meet it, e.g. {smaller[0].architecture}: "
                "a longer --time_budget may find an accurate one"
            )
        unmet.append(text + ")")
    return unmet


def _closest_cost(directory: Path, budget: Budget) -> str:
    costs = list(read_costs(directory / COSTS_FILE).values())
    if not costs:
        return ""
    cost = min(costs, key=lambda c: budget.excess(c.kib, c.latency_ms))
    return (
        f"closest measured: {cost.architecture} as {cost.format}, {cost.kib:.1f} KiB, "
        f"{cost.latency_ms:.4f} ms (untrained; compression removes at most about "
        f"{cost.compress_reach:g}x)"
    )


def result_message(state: AutoState, options: AutoOptions, directory: Path) -> AutoResult:
    """The winner, or which limit cannot be met and the closest file, as one paragraph."""
    budget = Budget(options.max_kib, options.max_ms)
    winner, closest = choose_winner(state, budget)
    if winner is not None:
        verified = winner["verified"]
        text = (
            f"winner: {winner['chosen']['label']} of {Path(winner['run_dir']).name}: test "
            f"accuracy {verified['accuracy']:.2%} (LiteRT; MediaPipe Tasks agreement "
            f"{_share(verified['mediapipe_agreement'])}), {verified['size_bytes'] / 1024:.1f} KiB, "
            f"{verified['latency_ms']:.4f} ms median batch-1 latency; {directory / WINNER_FILE}"
        )
        met = verified["accuracy"] >= options.min_accuracy
        if not met:
            text += (
                f". --min_accuracy={options.min_accuracy:g} cannot be met within the size and "
                f"latency limits: the most accurate file that fits scores {verified['accuracy']:.2%}"
            )
        return AutoResult(directory, winner, None, text, met)
    failed = [f"{Path(f['run_dir']).name}: {f['failed']}" for f in state.finalists if "failed" in f]
    if failed and not any(f.get("measured") for f in state.finalists):
        text = "no finalist could be compressed: " + "; ".join(failed)
        return AutoResult(directory, None, None, text, False)
    limits = unmet_limits(state, budget, directory) or [
        "no single limit: each file breaks one or the other"
    ]
    text = f"no candidate fits the budget: {'; '.join(limits)} cannot be met"
    if state.cannot_meet:
        text += f" ({state.cannot_meet})"
    if closest is not None:
        text += (
            f". Closest file: {closest['label']}, val accuracy {closest['val_accuracy']:.2%}, "
            f"{closest['size_bytes'] / 1024:.1f} KiB, {closest['latency_ms']:.4f} ms: "
            f"{closest['path']}"
        )
    elif _closest_cost(directory, budget):
        text += f". {_closest_cost(directory, budget)}"
    if failed:
        text += ". Finalists left out: " + "; ".join(failed)
    return AutoResult(directory, None, closest, text, False)


def recipe_default_note(state: AutoState) -> str:
    """What became of the recipe's default model (the one `trainer train` followed by
    `trainer compress` would give): a finalist, for how many of its default epochs, or why
    not. "" when the run did not get that far.

    Example:

        >>> from trainer.auto.report import recipe_default_note
        >>> from trainer.auto.state import AutoState
        >>> state = AutoState(recipe_default={"architecture": "width=32, stages=3, image_size=32",
        ...     "epochs": 15, "added": False, "reason": "size 72.0 KiB > --max_kib=16"})
        >>> recipe_default_note(state)
        "The recipe's default model (width=32, stages=3, image_size=32, 15 epochs) is not a finalist: size 72.0 KiB > --max_kib=16."
    """
    default = state.recipe_default
    if not default:
        return ""
    text = f"The recipe's default model ({default['architecture']}, {default['epochs']} epochs)"
    if not default["added"]:
        return f"{text} is not a finalist: {default['reason']}."
    finalist = next((f for f in state.finalists if f.get("recipe_default")), {})
    text += f" is a finalist, {Path(finalist.get('run_dir', '')).name}"
    if "short_of_default" in finalist:
        text += f": {finalist['short_of_default']}"
    return text + "."


def _share(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2%}"


def copy_winner(winner: dict, directory: Path) -> None:
    """The winner's verified file as `AUTO_DIR/model.tflite`, its sidecar as `model.json`
    (naming the new file), the files the sidecar names, and its model card."""
    verified = winner["verified"]
    shutil.copyfile(verified["path"], directory / WINNER_FILE)
    sidecar = json.loads(Path(verified["sidecar"]).read_text(encoding="utf-8"))
    sidecar["model_file"] = WINNER_FILE
    source = Path(verified["path"]).parent
    for name in sidecar.get("files") or []:
        if (source / name).is_file():
            shutil.copyfile(source / name, directory / name)
    from trainer.files import atomic_write_json

    atomic_write_json(directory / Path(WINNER_FILE).with_suffix(".json"), sidecar)
    shutil.copyfile(verified["model_card"], directory / "model_card.md")


def plot_candidates(
    state: AutoState, options: AutoOptions, directory: Path, winner: dict | None
) -> Path:
    """Validation accuracy against size and against latency for every candidate, with the
    budget lines and the winner marked."""
    from trainer.plots import pyplot, save_figure

    costs = read_costs(directory / COSTS_FILE)
    searched = [
        (costs[t["architecture"]].kib, costs[t["architecture"]].latency_ms, t["val_accuracy"])
        for t in state.trials
        if t["val_accuracy"] is not None and t["architecture"] in costs
    ]
    files = [
        (e["size_bytes"] / 1024, e["latency_ms"], e["val_accuracy"], e["fits"])
        for f in state.finalists
        for e in f.get("measured", [])
    ]
    figure, axes = pyplot().subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, index, limit, unit in (
        (axes[0], 0, options.max_kib, "size (KiB)"),
        (axes[1], 1, options.max_ms, "median batch-1 latency (ms)"),
    ):
        if searched:
            axis.scatter(
                [p[index] for p in searched],
                [p[2] * 100 for p in searched],
                color="tab:gray",
                s=18,
                label="search trials (cost model)",
            )
        for fits in (True, False):
            chosen = [p for p in files if p[3] == fits]
            if chosen:
                axis.scatter(
                    [p[index] for p in chosen],
                    [p[2] * 100 for p in chosen],
                    color="tab:green" if fits else "tab:red",
                    s=30,
                    label=f"finalist files ({'fit' if fits else 'over'})",
                )
        if winner is not None:
            point = winner["chosen"]
            x = point["size_bytes"] / 1024 if index == 0 else point["latency_ms"]
            axis.scatter(
                [x],
                [point["val_accuracy"] * 100],
                marker="*",
                s=260,
                color="gold",
                edgecolor="black",
                zorder=5,
                label="winner",
            )
        if limit:
            axis.axvline(limit, color="tab:red", ls="--", lw=1, label="budget")
        if options.min_accuracy:
            axis.axhline(
                options.min_accuracy * 100, color="tab:purple", ls=":", lw=1, label="min accuracy"
            )
        axis.set_xscale("log")
        axis.set_xlabel(f"{unit}, log scale")
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("validation accuracy (%)")
    axes[1].legend(fontsize=7, loc="lower right")
    figure.suptitle("trainer auto: every candidate, the budget and the winner")
    figure.tight_layout()
    return save_figure(figure, directory / PLOT_FILE)


def _candidates_table(state: AutoState) -> str:
    rows = [
        "| finalist | file | val acc | test acc | size | latency | fits |",
        "|---|---|---|---|---|---|---|",
    ]
    for finalist in state.finalists:
        for entry in finalist.get("measured", []):
            rows.append(
                f"| {Path(finalist['run_dir']).name} | {entry['label']} | {entry['val_accuracy']:.2%} "
                f"| {entry['test_accuracy']:.2%} | {entry['size_bytes'] / 1024:.1f} KiB "
                f"| {entry['latency_ms']:.4f} ms | {'yes' if entry['fits'] else 'no'} |"
            )
    return "\n".join(rows)


def write_auto_report(state: AutoState, options: AutoOptions, directory: Path) -> AutoResult:
    """Chooses the winner, copies its files, draws the picture and writes report.md and
    metrics.json; returns the result."""
    from trainer.report import write_report

    result = result_message(state, options, directory)
    if result.winner is not None:
        copy_winner(result.winner, directory)
    if state.trials or state.finalists:
        plot_candidates(state, options, directory, result.winner)
    completed = sum(t["val_accuracy"] is not None for t in state.trials)
    sections = {
        "Result": result.message,
        "Search": f"{len(state.trials)} trials, {completed} completed, the others refused by "
        f"the cost model or failed: [search/trials.md](search/trials.md). Finalists: "
        + ", ".join(Path(f["run_dir"]).name for f in state.finalists)
        + (f". {recipe_default_note(state)}" if state.recipe_default else ""),
        "Files of the finalists": _candidates_table(state),
        "Every candidate": f"![accuracy vs size vs latency]({PLOT_FILE})",
    }
    if result.winner is not None:
        sections["The winner, verified on the whole test set"] = result.winner["verified"]["table"]
    metrics = {
        "options": dataclasses.asdict(options),
        "met": result.met,
        "message": result.message,
        "winner": result.winner,
        "closest": result.closest,
        "spent_seconds": state.spent_seconds,
        "trials": state.trials,
    }
    write_report(directory, f"trainer auto on {options.data}", sections, metrics)
    return result
