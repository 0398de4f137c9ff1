"""The data side of bench/transfer.py: disjoint classes, nested seeded subsets, renumbered labels."""

import numpy as np
import pytest

from bench.transfer import (
    SOURCE_CLASSES,
    TARGET_CLASSES,
    class_subset_arrays,
    per_class_subset,
    summarize,
)

LABELS = np.repeat(np.arange(10), 30)[np.random.default_rng(5).permutation(300)]


def test_subsets_are_per_class_nested_and_seeded():
    small = per_class_subset(LABELS, TARGET_CLASSES, 4, seed=1)
    large = per_class_subset(LABELS, TARGET_CLASSES, 12, seed=1)
    assert np.bincount(LABELS[small], minlength=10).tolist() == [0] * 5 + [4] * 5
    assert set(small) <= set(large)  # 10 per class lie inside 50, inside 200
    np.testing.assert_array_equal(small, per_class_subset(LABELS, TARGET_CLASSES, 4, seed=1))
    assert not np.array_equal(small, per_class_subset(LABELS, TARGET_CLASSES, 4, seed=2))
    pretrain = per_class_subset(LABELS, SOURCE_CLASSES, 30, seed=0)
    assert not set(pretrain) & set(large)  # pretraining sees no image of the target classes
    with pytest.raises(ValueError, match="fewer than the 31"):
        per_class_subset(LABELS, TARGET_CLASSES, 31, seed=0)


def test_labels_are_renumbered_in_class_order():
    images = np.arange(300)[:, None] * np.ones((1, 4), np.int64)
    indices = per_class_subset(LABELS, TARGET_CLASSES, 3, seed=0)
    x, y = class_subset_arrays(images, LABELS, TARGET_CLASSES, indices)
    np.testing.assert_array_equal(y, LABELS[indices] - 5)
    np.testing.assert_array_equal(x[:, 0], indices)  # each image travels with its label
    with pytest.raises(ValueError, match="outside"):
        class_subset_arrays(images, LABELS, SOURCE_CLASSES, indices)


def test_summary_averages_seeds_per_arm_and_size():
    rows = [
        {"arm": "scratch", "per_class": 10, "test_accuracy": a, "wall_seconds": 10, "epochs": 15}
        for a in (0.5, 0.7)
    ] + [{"arm": "transfer", "per_class": 10, "error": "exit code 1"}]
    summary = summarize(rows)
    assert list(summary) == [("scratch", 10)]
    mean, low, high, runs, _, _ = summary[("scratch", 10)]
    assert (round(mean, 6), low, high, runs) == (0.6, 0.5, 0.7, 2)
