"""Run reports: the verification table, `report.md` and `metrics.json` (plots: `trainer.plots`).

This module turns numbers that other modules measured into files a person reads; it must not
train, convert or evaluate anything itself.

Example:

    from trainer.report import write_report
    write_report("runs/demo", "Demo", {"Result": "92% test accuracy"}, {"test_accuracy": 0.92})
"""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.files import atomic_write_json, atomic_write_text
from trainer.runs import METRICS_FILE, REPORT_FILE


def format_size(num_bytes: int) -> str:
    return (
        f"{num_bytes / 1024:.1f} KiB" if num_bytes < 1024 * 1024 else f"{num_bytes / 2**20:.2f} MiB"
    )


def export_table(keras_accuracy: float, keras_size: int | None, results: Sequence) -> str:
    """The Markdown verification table: format, accuracy, drop vs Keras, agreement with Keras,
    largest output difference, sizes, latency (median / 90th percentile, batch 1).

    A file checked with a mobile runtime (`result.mediapipe`) gets a second row: the same file
    through MediaPipe Tasks, its accuracy, and its agreement and score difference against
    LiteRT on the same images; a note under the table says which labels it returned, or the
    runtime's message when it refused the file.
    """
    rows = [
        "| format | test accuracy | drop vs Keras (pp) | budget (pp) | top-1 agreement "
        "| max output diff | size | gzip size | latency / image (median / p90) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| Keras (reference) | {keras_accuracy * 100:.2f}% | - | - | - | - | "
        f"{format_size(keras_size) if keras_size else '-'} | - | - |",
    ]
    checked = []
    for result in results:
        rows.append(_litert_row(result))
        check = getattr(result, "mediapipe", None)
        if check is not None:
            rows.append(_runtime_row(check, keras_accuracy))
            checked.append((result.format, check))
    if not checked:
        return "\n".join(rows)
    return "\n".join(rows) + "\n\n" + _runtime_notes(checked)


def _file_name(result) -> str:
    io = getattr(result, "io", "float32")
    return f"TFLite {result.format}" + ("" if io == "float32" else f", {io} in/out")


def _litert_row(result) -> str:
    verdict = "" if result.within_budget else " **over budget**"
    agreement = getattr(result, "agreement", None)
    difference = getattr(result, "max_abs_diff", None)
    p90 = getattr(result, "latency_p90_ms", None)
    return (
        f"| {_file_name(result)} | {result.accuracy * 100:.2f}% "
        f"| {result.drop_pp:+.2f}{verdict} | {result.budget_pp:.1f} "
        f"| {'-' if agreement is None else f'{agreement * 100:.2f}%'} "
        f"| {'-' if difference is None else f'{difference:.3g}'} "
        f"| {format_size(result.size_bytes)} | {format_size(result.gzip_bytes)} "
        f"| {result.latency_ms:.3f}{'' if p90 is None else f' / {p90:.3f}'} ms "
        f"({result.latency_threads} thread) |"
    )


def _runtime_row(check, keras_accuracy: float) -> str:
    """The runtime's row under a file's row."""
    if not check.loaded:
        verdict = "**refused the file**" if check.checked else "not checked"
        return f"| ↳ {check.runtime} | {verdict} | - | - | - | - | - | - | - |"
    ties = f" ({check.ties} exact ties)" if check.ties else ""
    return (
        f"| ↳ {check.runtime} | {check.accuracy * 100:.2f}% "
        f"| {(keras_accuracy - check.accuracy) * 100:+.2f} | - "
        f"| {check.agreement * 100:.2f}% with LiteRT{ties} | {check.max_score_diff:.3g} "
        "| - | - | - |"
    )


def _runtime_notes(checked: Sequence) -> str:
    """What the runtime rows mean, which labels each runtime returned, and any refusal."""
    notes = [
        "Runtime rows: the same file classified as an app runs it (raw RGB pixels or raw "
        "texts in; normalization or tokenizer, and labels, from the file's metadata); "
        "agreement and score difference are against LiteRT on the same images, or on the ids "
        "our pipeline made of the same texts, an exact tie in LiteRT's top two scores "
        "counting as agreement."
    ]
    matched = [format for format, check in checked if check.loaded and check.labels_match]
    if matched:
        notes.append(f"Labels returned: the class names, in order ({', '.join(matched)}).")
    for format, check in checked:
        if not check.checked:
            notes.append(f"{check.runtime} did not check the {format} file: {check.error}.")
        elif not check.loaded:
            notes.append(
                f"**{check.runtime} refused the {format} file**: {check.error.rstrip('.')}."
            )
        elif not check.labels_match:
            notes.append(
                f"**{check.runtime} returned other labels for {format}**: "
                f"{', '.join(check.labels)}."
            )
    return " ".join(notes)


def write_report(
    run_dir: str | Path,
    title: str,
    sections: dict[str, str],
    metrics: dict[str, Any],
) -> Path:
    """Writes `report.md` (title, then each section) and `metrics.json` into `run_dir`.

    When `metrics` lists exported files, the report ends with how to run one of them in an app
    (`trainer.snippets.usage_snippet`).
    """
    from trainer.snippets import USE_HEADING, usage_snippet

    run_dir = Path(run_dir)
    if metrics.get("exports") and USE_HEADING not in sections:
        sections = {**sections, USE_HEADING: usage_snippet(list(_json_safe(metrics["exports"])))}
    parts = [f"# {title}", ""]
    for heading, body in sections.items():
        parts += [f"## {heading}", "", body.rstrip(), ""]
    atomic_write_json(run_dir / METRICS_FILE, _json_safe(metrics))
    return atomic_write_text(run_dir / REPORT_FILE, "\n".join(parts))


def _json_safe(value):
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # NumPy scalars
        return _json_safe(value.item())
    return value


def confident_errors_section(
    errors: int, picture: str = "", texts: Sequence[tuple[str, str, str, float]] = ()
) -> str:
    """The report section on the test errors the model was surest of: a link to their picture
    (images), or a table of (text, true class, predicted class, probability) rows (texts).

    Example:
        >>> print(confident_errors_section(7, texts=[("dull | film", "pos", "neg", 0.91)]))
        The model's 7 test errors, surest first: often a wrong test label, or a look-alike class.
        <BLANKLINE>
        | text | true | predicted | probability |
        |---|---|---|---|
        | dull \\| film | pos | neg | 91% |
    """
    lines = [
        f"The model's {errors} test errors, surest first: often a wrong test label, or a "
        "look-alike class.",
        "",
    ]
    if picture:
        return "\n".join([*lines, f"![most confident test errors]({picture})"])
    lines += ["| text | true | predicted | probability |", "|---|---|---|---|"]
    for text, true, predicted, probability in texts:
        shown = " ".join(text.split())[:160].replace("|", "\\|")
        lines.append(f"| {shown} | {true} | {predicted} | {probability:.0%} |")
    return "\n".join(lines)
