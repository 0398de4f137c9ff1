import numpy as np
import pytest
import tensorflow as tf

from trainer.augment import Compose, RandomCropWithPadding, RandomFlip
from trainer.data.pipeline import image_dataset

SEED = tf.constant([3, 4], tf.int64)


def _batch():
    images = tf.random.stateless_uniform([16, 12, 12, 1], seed=[1, 2])
    labels = tf.one_hot(tf.range(16) % 10, 10)
    return images, labels


def test_crop_keeps_shape_values_and_labels():
    images, labels = _batch()
    out, out_labels = RandomCropWithPadding(2)(images, labels, SEED)
    assert out.shape == images.shape
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_array_equal(out_labels, labels)
    # each crop is a shifted window of the zero-padded image: its pixels come from the image
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)])
    for index in range(16):
        found = any(
            np.array_equal(out[index], padded[index, r : r + 12, c : c + 12])
            for r in range(5)
            for c in range(5)
        )
        assert found
    assert not np.array_equal(out.numpy(), images.numpy())


def test_crop_without_padding_is_identity():
    images, labels = _batch()
    np.testing.assert_array_equal(RandomCropWithPadding(0)(images, labels, SEED)[0], images)


def test_flip_flips_about_half_and_nothing_else():
    images, labels = _batch()
    out, _ = RandomFlip()(images, labels, SEED)
    flipped = [np.array_equal(out[i], images[i, :, ::-1]) for i in range(16)]
    kept = [np.array_equal(out[i], images[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 2 <= sum(flipped) <= 14


def test_same_seed_same_batch_other_seed_differs():
    images, labels = _batch()
    augment = Compose([RandomCropWithPadding(3), RandomFlip()])
    first = augment(images, labels, SEED)[0]
    np.testing.assert_array_equal(first, augment(images, labels, SEED)[0])
    assert not np.array_equal(first, augment(images, labels, tf.constant([9, 9], tf.int64))[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="padding must be a non-negative int, received -1"):
        RandomCropWithPadding(-1)
    with pytest.raises(ValueError, match="horizontal=True or vertical=True"):
        RandomFlip(horizontal=False)


def test_pipeline_scales_one_hots_and_keeps_order_for_eval():
    x = np.arange(10 * 4 * 4, dtype=np.uint8).reshape(10, 4, 4)
    y = np.arange(10) % 3
    batches = list(image_dataset(x, y, num_classes=3, batch_size=4, training=False))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.shape == (10, 4, 4, 1) and images.dtype == np.float32
    np.testing.assert_allclose(images[..., 0], x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(labels.argmax(1), y)
    assert labels.sum() == 10


def test_training_pipeline_is_reproducible_and_reshuffles_each_epoch():
    x = np.random.default_rng(0).integers(0, 255, (64, 8, 8), dtype=np.uint8)
    y = np.arange(64) % 10

    def epochs(seed):
        dataset = image_dataset(
            x,
            y,
            num_classes=10,
            batch_size=16,
            training=True,
            augment=Compose([RandomFlip()]),
            seed=seed,
        )
        return [np.concatenate([b[0] for b in dataset]) for _ in range(2)]

    first, again = epochs(0), epochs(0)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], first[1])  # new shuffle/augmentation each epoch
    assert not np.array_equal(first[0], epochs(1)[0])


def test_pipeline_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="10 images but 9 labels"):
        image_dataset(
            np.zeros((10, 4, 4), np.uint8), np.zeros(9), num_classes=2, batch_size=4, training=False
        )


def test_pipelines_run_without_tf_data_autotune():
    # With autotune on, Keras fit stalled up to 60 s between epochs while the finished
    # iterator waited for the autotune thread (see trainer/data/pipeline.py).
    from trainer.data.text import token_dataset

    x, y = np.zeros((8, 28, 28), np.uint8), np.arange(8) % 2
    datasets = [
        image_dataset(x, y, num_classes=2, batch_size=4, training=True, augment=RandomFlip()),
        image_dataset(x, y, num_classes=2, batch_size=4, training=False),
        token_dataset(np.zeros((8, 5)), y, num_classes=2, batch_size=4, training=True),
    ]
    for dataset in datasets:
        assert dataset.options().autotune.enabled is False
        assert len(list(dataset)) == 2


def test_pipelines_take_their_options_by_keyword_only():
    # A bare `True` in a call cannot say what it switches on (issue 12): the signature refuses it.
    from trainer.data.text import token_dataset

    x, y = np.zeros((4, 4, 4), np.uint8), np.arange(4) % 2
    with pytest.raises(TypeError, match="positional"):
        image_dataset(x, y, 2, 4, True)
    with pytest.raises(TypeError, match="positional"):
        token_dataset(np.zeros((4, 3)), y, 2, 4, True)
    with pytest.raises(ValueError, match="batch_size must be positive, received 0"):
        token_dataset(np.zeros((4, 3)), y, num_classes=2, batch_size=0, training=False)
