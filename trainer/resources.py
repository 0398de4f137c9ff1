"""Memory estimates checked before a large allocation, refused with the option to lower.

An option can ask for more memory than any machine has: `--image_size=100000` stacks images of
10^10 pixels each, `--stages=12` builds a CNN of billions of weights, a label of 100000 makes a
100,001-class model and a confusion matrix of 10^10 cells. Each of those places estimates its
bytes first and calls `check_memory`, which compares them with the machine's physical memory
and raises a `ValueError` naming the option, instead of a `MemoryError` traceback or an
out-of-memory kill minutes later. The limit is the total memory, not what is free now: only
a request that can never fit is refused. This module must not know about data, models or runs.

Example:

    >>> from trainer.resources import check_memory, format_bytes
    >>> format_bytes(2 * 1024**4)
    '2.00 TiB'
    >>> check_memory(1024, "a tiny array", "lower nothing")  # fits anywhere: no error
"""

import os

# Bytes a float32 weight costs in training: itself, its gradient and an optimizer's two slots.
TRAINING_BYTES_PER_WEIGHT = 16
# Set by tests (and by a user who wants a lower ceiling than the machine's memory).
MEMORY_LIMIT_VARIABLE = "TRAINER_MEMORY_LIMIT_BYTES"


def format_bytes(count: float) -> str:
    """`count` bytes in binary units: '512 B', '3.50 GiB', '1.96 TiB'."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    value, unit = float(count), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.0f} {units[unit]}" if unit == 0 else f"{value:.2f} {units[unit]}"


def memory_limit() -> int | None:
    """The machine's physical memory in bytes (or `TRAINER_MEMORY_LIMIT_BYTES`), None if unknown."""
    override = os.environ.get(MEMORY_LIMIT_VARIABLE, "").strip()
    if override:
        try:
            return int(override)
        except ValueError:
            raise ValueError(
                f"{MEMORY_LIMIT_VARIABLE} must be a number of bytes, received {override!r}"
            ) from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(needed: float, what: str, advice: str) -> None:
    """Raises ValueError if `needed` bytes can never fit in this machine's memory.

    Args:
        needed: the estimated bytes of the allocation (a lower bound is enough).
        what: what would be allocated, e.g. "3,000 images of 100000x100000x3 pixels".
        advice: what to do instead, naming the option, e.g. "lower --image_size".

    Raises:
        ValueError: "3,000 images of 100000x100000x3 pixels would need 83.83 TiB of memory,
            more than this machine's 15.6 GiB; lower --image_size".
    """
    limit = memory_limit()
    if limit is not None and needed > limit:
        raise ValueError(
            f"{what} would need {format_bytes(needed)} of memory, more than this machine's "
            f"{format_bytes(limit)}; {advice}"
        )
