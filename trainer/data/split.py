"""Deterministic stratified splits and the two cures for imbalanced classes.

`stratified_split` holds out the same share of every class, chosen by a seed, so that a run
can be repeated exactly and a rare class is never missing from validation. For imbalanced
data, `class_weights` gives Keras `fit(class_weight=...)` weights and `oversample_indices`
repeats samples of rare classes. This module works on label arrays only; it must not read
files or build datasets.

Example:

    >>> import numpy as np
    >>> from trainer.data.split import class_weights, stratified_split
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> train_index, val_index = stratified_split(y, fraction=0.2, seed=0)
    >>> len(val_index), int(y[val_index].sum())  # 20% of each class
    (20, 2)
    >>> class_weights(y[train_index], num_classes=2)  # the rare class weighs more
    {0: 0.5555555555555556, 1: 5.0}
"""

import numpy as np

BALANCE_MODES = ("none", "class_weights", "oversample")


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Splits sample indices into (kept, held_out) with `fraction` of every class held out.

    Each class with at least two samples gives round(fraction * count) samples, at least one
    and never all of them, to the held-out part; a class with a single sample stays in the
    kept part. Both index arrays are sorted, so the kept samples keep their original order.

    Args:
        labels: integer class ids, one per sample.
        fraction: share to hold out, strictly between 0 and 1.
        seed: the same seed and labels always give the same split.

    Raises:
        ValueError: `fraction` outside (0, 1) or `labels` not one-dimensional.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, received shape {labels.shape}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be strictly between 0 and 1, received {fraction!r}")
    rng = np.random.default_rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        count = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
        held_out.append(rng.permutation(members)[:count])
    held = np.sort(np.concatenate(held_out)) if held_out else np.zeros(0, np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept.astype(np.int64), held.astype(np.int64)


def holdout_split(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) indices of `count` samples, `size` of them held out at random.

    The same arguments always give the same split, so a later step (`trainer compress`) can
    rebuild exactly the slice a training run never saw.
    """
    if not 0 < size < count:
        raise ValueError(f"cannot hold out {size} of {count} samples; choose 1 to {count - 1}")
    order = np.random.default_rng(seed).permutation(count)
    return order[:-size], order[-size:]


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Keras `class_weight` that makes every class weigh the same in the loss.

    Weight of class k = total / (num_classes_present * count_k), scikit-learn's "balanced"
    rule, so the weights average to one over the samples. Classes without samples get 0.
    """
    labels = np.asarray(labels).astype(np.int64)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, received {num_classes}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, received {labels.min()}..{labels.max()}"
        )
    counts = np.bincount(labels, minlength=num_classes)
    present = int(np.count_nonzero(counts))
    return {
        k: (float(len(labels) / (present * counts[k])) if counts[k] else 0.0)
        for k in range(num_classes)
    }


def oversample_indices(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices that repeat samples of smaller classes until every class is as large as the
    largest; each original sample appears at least once. Shuffled with `seed`."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.max() if len(counts) else 0
    chosen = []
    for label, count in zip(classes, counts, strict=True):
        members = np.flatnonzero(labels == label)
        extra = rng.choice(members, size=target - count, replace=True)
        chosen.append(np.concatenate([members, extra]))
    if not chosen:
        return np.zeros(0, np.int64)
    return rng.permutation(np.concatenate(chosen)).astype(np.int64)


def check_balance_mode(mode: str) -> str:
    """Returns `mode` if it is one of BALANCE_MODES, else raises ValueError listing them."""
    if mode not in BALANCE_MODES:
        raise ValueError(f"balance must be one of {', '.join(BALANCE_MODES)}, received {mode!r}")
    return mode


def balance(
    x: np.ndarray, y: np.ndarray, mode: str, num_classes: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[int, float] | None]:
    """Applies a recipe's `balance` option to the training arrays.

    Returns (x, y, Keras `class_weight`): "oversample" repeats samples of smaller classes
    (`oversample_indices`), "class_weights" keeps the arrays and returns `class_weights`,
    "none" changes nothing.
    """
    check_balance_mode(mode)
    if mode == "oversample":
        chosen = oversample_indices(y, seed)
        return x[chosen], y[chosen], None
    if mode == "class_weights":
        return x, y, class_weights(y, num_classes)
    return x, y, None
