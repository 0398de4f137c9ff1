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
    largest output difference, sizes, latency (median / 90th percentile, batch 1)."""
    rows = [
        "| format | test accuracy | drop vs Keras (pp) | budget (pp) | top-1 agreement "
        "| max output diff | size | gzip size | latency / image (median / p90) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| Keras (reference) | {keras_accuracy * 100:.2f}% | - | - | - | - | "
        f"{format_size(keras_size) if keras_size else '-'} | - | - |",
    ]
    for result in results:
        verdict = "" if result.within_budget else " **over budget**"
        agreement = getattr(result, "agreement", None)
        difference = getattr(result, "max_abs_diff", None)
        p90 = getattr(result, "latency_p90_ms", None)
        rows.append(
            f"| TFLite {result.format} | {result.accuracy * 100:.2f}% "
            f"| {result.drop_pp:+.2f}{verdict} | {result.budget_pp:.1f} "
            f"| {'-' if agreement is None else f'{agreement * 100:.2f}%'} "
            f"| {'-' if difference is None else f'{difference:.3g}'} "
            f"| {format_size(result.size_bytes)} | {format_size(result.gzip_bytes)} "
            f"| {result.latency_ms:.3f}{'' if p90 is None else f' / {p90:.3f}'} ms "
            f"({result.latency_threads} thread) |"
        )
    return "\n".join(rows)


def write_report(
    run_dir: str | Path,
    title: str,
    sections: dict[str, str],
    metrics: dict[str, Any],
) -> Path:
    """Writes `report.md` (title, then each section) and `metrics.json` into `run_dir`."""
    run_dir = Path(run_dir)
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
