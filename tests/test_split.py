import numpy as np
import pytest

from trainer.data.split import (
    check_balance_mode,
    class_weights,
    holdout_split,
    oversample_indices,
    stratified_split,
)


def test_stratified_split_keeps_class_shares_and_is_seeded():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    kept, held = stratified_split(labels, 0.2, seed=1)
    assert np.bincount(labels[held]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(100))
    again_kept, again_held = stratified_split(labels, 0.2, seed=1)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not np.array_equal(held, stratified_split(labels, 0.2, seed=2)[1])


def test_rare_classes_are_never_emptied():
    labels = np.array([0] * 40 + [1] * 2 + [2])
    kept, held = stratified_split(labels, 0.1, seed=0)
    assert np.bincount(labels[held], minlength=3).tolist() == [4, 1, 0]
    assert np.bincount(labels[kept], minlength=3).tolist() == [36, 1, 1]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match=f"received {fraction!r}"):
        stratified_split(np.zeros(10), fraction)


def test_class_weights_balance_the_loss():
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weights(labels, num_classes=3)
    assert weights[0] == pytest.approx(100 / (2 * 90)) and weights[1] == pytest.approx(5.0)
    assert weights[2] == 0.0
    total = sum(weights[label] for label in labels)
    assert total == pytest.approx(len(labels))  # weights average to one over the samples
    with pytest.raises(ValueError, match=r"0..1, received 0..2"):
        class_weights(np.array([0, 2]), num_classes=2)


def test_oversample_equalizes_classes_and_keeps_every_sample():
    labels = np.array([0] * 30 + [1] * 5)
    indices = oversample_indices(labels, seed=0)
    assert np.bincount(labels[indices]).tolist() == [30, 30]
    assert set(range(35)) <= set(indices.tolist())
    assert np.array_equal(indices, oversample_indices(labels, seed=0))


def test_balance_mode_names():
    assert check_balance_mode("oversample") == "oversample"
    with pytest.raises(ValueError, match="received 'smote'"):
        check_balance_mode("smote")


def test_holdout_split_is_repeatable_disjoint_and_checked():
    kept, held_out = holdout_split(50, 10, seed=4)
    assert len(kept) == 40 and len(held_out) == 10
    assert sorted([*kept, *held_out]) == list(range(50))
    again = holdout_split(50, 10, seed=4)
    np.testing.assert_array_equal(held_out, again[1])
    assert set(holdout_split(50, 10, seed=5)[1]) != set(held_out)
    with pytest.raises(ValueError, match="cannot hold out 50 of 50"):
        holdout_split(50, 50)
