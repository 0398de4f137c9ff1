"""One measured compressed model (`Candidate`), the choice of the best, and their table.

This module owns how candidates are compared and shown; it must not train or export models.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass
class Candidate:
    """One exported, measured compressed model."""

    technique: str
    settings: str
    format: str
    path: str
    val_accuracy: float
    val_drop_pp: float
    test_accuracy: float
    test_drop_pp: float
    size_bytes: int
    gzip_bytes: int
    latency_ms: float
    parameters: int
    nonzero_parameters: int
    flops: int
    seconds: float
    within_budget: bool = False
    finite_outputs: bool = True  # False when the file returned NaN or inf: never within budget

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def label(self) -> str:
        """`prune sparsity=0.5 (int8)`: how the report names the candidate."""
        parts = (self.technique, self.settings)
        return " ".join(part for part in parts if part) + f" ({self.format})"


def best_candidate(candidates: Sequence[Candidate], prefer: str = "size") -> Candidate:
    """The smallest (gzip) or fastest candidate within budget; the first (the original) if
    none is."""
    eligible = [candidate for candidate in candidates if candidate.within_budget]
    if not eligible:
        return candidates[0]
    if prefer == "latency":
        return min(eligible, key=lambda candidate: (candidate.latency_ms, candidate.gzip_bytes))
    return min(eligible, key=lambda candidate: (candidate.gzip_bytes, candidate.latency_ms))


def kibibytes(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.1f} KiB"


def candidates_table(candidates: Sequence[Candidate], best: Candidate | None = None) -> str:
    """Markdown table of every candidate with ratios against the first (the original)."""
    reference = candidates[0]
    lines = [
        "| candidate | val acc | val drop (pp) | test acc | test drop (pp) | size | gzip size "
        "| latency | params (non-zero) | MFLOPs | budget | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for candidate in candidates:
        mark = " **best**" if best is not None and candidate is best else ""
        size_ratio = candidate.size_bytes / reference.size_bytes
        gzip_ratio = candidate.gzip_bytes / reference.gzip_bytes
        speed = reference.latency_ms / candidate.latency_ms
        lines.append(
            f"| {candidate.label}{mark} "
            f"| {candidate.val_accuracy:.2%} | {candidate.val_drop_pp:+.2f} "
            f"| {candidate.test_accuracy:.2%} | {candidate.test_drop_pp:+.2f} "
            f"| {kibibytes(candidate.size_bytes)} ({size_ratio:.2f}x) "
            f"| {kibibytes(candidate.gzip_bytes)} ({gzip_ratio:.2f}x) "
            f"| {candidate.latency_ms:.3f} ms ({speed:.2f}x faster) "
            f"| {candidate.parameters:,} ({candidate.nonzero_parameters:,}) "
            f"| {candidate.flops / 1e6:.2f} | {'within' if candidate.within_budget else 'over'} "
            f"| {candidate.seconds:.0f} s |"
        )
    return "\n".join(lines)
