"""The cost model of `trainer auto`: what a candidate architecture costs on a device, measured
before it trains, and whether the compress search could still bring it within the budget.

A candidate's cost is its parameters, its FLOPs (`trainer.flops`) and the file it would ship
as, converted from the untrained model (size and speed do not depend on the weights' values):
for images the faster of the int8 and dynamic-range files (the compress search's
post-training quantization makes both, and which one is faster depends on the CPU: int8
kernels need AVX-512 VNNI to beat dynamic range, measured here on AVX2 at 1.4-2x slower), for
texts dynamic range, whose token ids must not be quantized. The file's latency is the median
batch-1 LiteRT time on one thread, as the verification table measures it
(`trainer.export.latency_percentiles`). Measurements are kept per architecture in
`costs.json`, so a search that proposes an architecture again pays nothing.

This module must not train models or choose candidates.
"""

import dataclasses
import json
from pathlib import Path

from trainer.files import atomic_write_json

# How far over the budget a candidate's shipped file may be and still be trained, by kind of
# data: for an image CNN, the compress search's strongest step removes half the filters of
# every convolution (structured pruning at ratio 0.5) or distils into half the width, which
# leaves about a quarter of the weights and MACs; a text model's size is its word table,
# which neither step shrinks, and its dynamic-range file is already the quantized one.
IMAGE_REACH, TEXT_REACH = 4.0, 1.0
# The same by format, for a cost that does not record its reach (an image file measured as
# int8 only, a text file as dynamic range).
COMPRESS_REACH = {"int8": IMAGE_REACH, "dynamic": TEXT_REACH}


@dataclasses.dataclass
class Cost:
    """What one architecture costs, measured on its shipped file."""

    architecture: str  # e.g. "width=16, stages=3, image_size=28"
    parameters: int
    flops: int
    format: str  # int8 (images) or dynamic (texts)
    size_bytes: int
    latency_ms: float  # median batch-1 LiteRT time, one thread
    # how many times over the budget compression can still bring it back; 0 = from its format
    # (`COMPRESS_REACH`)
    reach: float = 0.0

    @property
    def kib(self) -> float:
        return self.size_bytes / 1024

    @property
    def compress_reach(self) -> float:
        """How many times over the budget the compress search can still bring this file."""
        return self.reach or COMPRESS_REACH.get(self.format, 1.0)


@dataclasses.dataclass(frozen=True)
class Budget:
    """The device limits: the .tflite size in KiB and the median latency in ms (0 = none).

    Example:

        >>> from trainer.auto.cost import Budget
        >>> budget = Budget(max_kib=64, max_ms=0.1)
        >>> budget.fits(35.8, 0.015), budget.excess(128, 0.05)
        (True, 2.0)
        >>> budget.broken_limits(80, 0.2)
        ['size 80.0 KiB > --max_kib=64', 'latency 0.200 ms > --max_ms=0.1']
    """

    max_kib: float = 0.0
    max_ms: float = 0.0

    def excess(self, kib: float, latency_ms: float) -> float:
        """How many times over the tighter limit a file is (<= 1: within both)."""
        ratios = [0.0]
        if self.max_kib:
            ratios.append(kib / self.max_kib)
        if self.max_ms:
            ratios.append(latency_ms / self.max_ms)
        return max(ratios)

    def fits(self, kib: float, latency_ms: float) -> bool:
        return self.excess(kib, latency_ms) <= 1.0

    def broken_limits(self, kib: float, latency_ms: float) -> list[str]:
        """The limits a file breaks, in words, e.g. `["size 80.1 KiB > --max_kib=64"]`."""
        broken = []
        if self.max_kib and kib > self.max_kib:
            broken.append(f"size {kib:.1f} KiB > --max_kib={self.max_kib:g}")
        if self.max_ms and latency_ms > self.max_ms:
            broken.append(f"latency {latency_ms:.3f} ms > --max_ms={self.max_ms:g}")
        return broken

    def reachable(self, cost: Cost) -> bool:
        """Whether the compress search could still bring `cost` within the budget."""
        return self.excess(cost.kib, cost.latency_ms) <= cost.compress_reach


def fastest_file(measured: dict[str, tuple[int, float]]) -> str:
    """The format whose file is fastest (then smallest), from `{format: (bytes, ms)}`.

    Example:

        >>> from trainer.auto.cost import fastest_file
        >>> fastest_file({"int8": (61_440, 0.12), "dynamic": (59_700, 0.061)})
        'dynamic'
    """
    if not measured:
        raise ValueError("no file was measured: pass at least one format")
    return min(measured, key=lambda name: (measured[name][1], measured[name][0]))


def measure_cost(
    model,
    architecture: str,
    representative,
    sample,
    formats: str | tuple[str, ...],
    reach: float = 0.0,
    embedded_bytes: int = 0,
) -> Cost:
    """Converts the untrained `model` to each of `formats` and keeps the fastest file (then
    the smallest): its size, median batch-1 latency on one thread (best of three medians:
    other processes only ever add time), with the model's parameters and FLOPs. `reach` is
    how far over the budget compression can still bring it (0: from the format);
    `embedded_bytes` what the shipped file holds beyond the converted graph (a text model's
    tokenizer vocabulary, in its metadata).

    Example (not run: converts a model twice, about 4 s):

        from trainer.models import small_cnn
        cost = measure_cost(small_cnn(), "width=32", x_train[:50], x_train[0], ("int8", "dynamic"))
        print(cost.format, cost.kib, cost.latency_ms)
    """
    from trainer.export import convert, latency_percentiles
    from trainer.flops import count_flops

    measured = {}
    for format in (formats,) if isinstance(formats, str) else formats:
        content = convert(model, format, representative[:64] if format == "int8" else None)
        latency = min(latency_percentiles(content, sample, runs=100)[0] for _ in range(3))
        measured[format] = (len(content) + embedded_bytes, latency)
    fastest = fastest_file(measured)
    size_bytes, latency = measured[fastest]
    return Cost(
        architecture=architecture,
        parameters=int(model.count_params()),
        flops=int(count_flops(model)),
        format=fastest,
        size_bytes=size_bytes,
        latency_ms=round(latency, 5),
        reach=reach,
    )


def read_costs(path: str | Path) -> dict[str, Cost]:
    """The measured costs by architecture (empty when the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # cut by a kill: measure again
        return {}
    return {key: Cost(**value) for key, value in saved.items()}


def remember_cost(path: str | Path, cost: Cost) -> None:
    """Adds `cost` to the costs file (re-read first: worker processes share the file)."""
    costs = read_costs(path)
    costs[cost.architecture] = cost
    atomic_write_json(Path(path), {key: dataclasses.asdict(value) for key, value in costs.items()})


class CandidateTooCostly(ValueError):
    """Raised by a candidate's build when the cost model says it cannot fit the budget, so the
    search records the trial as failed with the reason and moves on without training it."""


def refuse_unreachable(cost: Cost, budget: Budget) -> None:
    """Raises `CandidateTooCostly` when not even the compress search could fit `cost`."""
    if budget.reachable(cost):
        return
    broken = "; ".join(budget.broken_limits(cost.kib, cost.latency_ms))
    raise CandidateTooCostly(
        f"skipped by the cost model: {cost.architecture} as {cost.format} is {broken}, more "
        f"than the {cost.compress_reach:g}x that compression can remove"
    )
