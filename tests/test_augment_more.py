"""Augmentations beyond crop/flip: geometry, colour, erasing, MixUp, CutMix, RandAugment."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer.augment import (
    AUGMENTATION_NAMES,
    Compose,
    CutMix,
    MixUp,
    RandAugment,
    RandomBrightness,
    RandomContrast,
    RandomCropWithPadding,
    RandomErasing,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    augmentations_from_config,
    describe_spec,
    ops,
)
from trainer.data.pipeline import image_dataset

SEED = tf.constant([5, 6], tf.int64)
OTHER_SEED = tf.constant([7, 8], tf.int64)

ALL = [
    RandomRotation(20),
    RandomZoom(0.2),
    RandomTranslation(0.2),
    RandomBrightness(0.3),
    RandomContrast(0.5),
    RandomErasing(0.8),
    RandomErasing(1.0, value="random"),
    MixUp(0.4),
    CutMix(1.0),
    RandAugment(2, 9),
]


def _batch(batch=16, size=15, channels=1):
    images = tf.random.stateless_uniform([batch, size, size, channels], seed=[1, 2])
    labels = tf.one_hot(tf.range(batch) % 10, 10)
    return images, labels


def _unique_class_batch(size=12):
    """Ten images, one per class, each a different constant grey: pixels name their source."""
    values = (np.arange(10, dtype=np.float32) + 0.5) / 10.0
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (10, size, size, 1)))
    return images, tf.one_hot(tf.range(10), 10), values


@pytest.mark.parametrize("augmentation", ALL, ids=lambda a: type(a).__name__)
def test_shape_range_label_mass_and_seed(augmentation):
    images, labels = _batch(channels=3)
    out, out_labels = augmentation(images, labels, SEED)
    assert out.shape == images.shape and out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_allclose(tf.reduce_sum(out_labels, axis=1), np.ones(16), atol=1e-5)
    assert float(tf.reduce_min(out_labels)) >= 0.0
    again, again_labels = augmentation(images, labels, SEED)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(out_labels, again_labels)
    assert not np.array_equal(out, augmentation(images, labels, OTHER_SEED)[0])
    assert not np.array_equal(out, images)


@pytest.mark.parametrize(
    "augmentation",
    [
        RandomRotation(0),
        RandomZoom(0),
        RandomTranslation(0),
        RandomBrightness(0),
        RandomContrast(0),
        RandomErasing(0.0),
    ],
    ids=lambda a: type(a).__name__,
)
def test_zero_strength_is_identity(augmentation):
    images, labels = _batch()
    np.testing.assert_allclose(augmentation(images, labels, SEED)[0], images, atol=1e-6)


def test_transform_convention_matches_numpy_rotation():
    images, _ = _batch(batch=2, size=9)
    transforms = ops.affine_transforms(
        images, ops.rotation_matrix(tf.constant([math.pi / 2] * 2)), tf.zeros([2, 2])
    )
    rotated = ops.apply_transforms(images, transforms, 0.0).numpy()
    expected = [np.rot90(images.numpy(), k, axes=(1, 2)) for k in (1, -1)]
    assert any(np.allclose(rotated, candidate, atol=1e-5) for candidate in expected)


@pytest.mark.parametrize("augmentation", [RandomRotation(40), RandomZoom(0.3)])
def test_rotation_and_zoom_keep_the_centre_pixel(augmentation):
    images, labels = _batch(size=15)
    out = augmentation(images, labels, SEED)[0].numpy()
    np.testing.assert_allclose(out[:, 7, 7], images.numpy()[:, 7, 7], atol=1e-5)


def test_zoom_out_shrinks_content_and_zoom_in_keeps_it():
    images = tf.ones([32, 20, 20, 1])
    out = RandomZoom(0.4)(images, tf.one_hot(tf.zeros(32, tf.int32), 2), SEED)[0].numpy()
    means = out.mean(axis=(1, 2, 3))
    assert means.min() >= 0.6**2 - 0.05  # smallest scale 0.6 keeps 0.36 of the area
    assert (means < 0.95).sum() >= 4 and (means > 0.999).sum() >= 4


def test_translation_is_an_integer_shift_within_bounds():
    images, labels = _batch(batch=8, size=10)
    out = RandomTranslation(0.2)(images, labels, SEED)[0].numpy()
    source = images.numpy()
    padded = np.pad(source, [(0, 0), (2, 2), (2, 2), (0, 0)])
    shifts = []
    for index in range(8):
        found = [
            (r - 2, c - 2)
            for r in range(5)
            for c in range(5)
            if np.allclose(out[index], padded[index, r : r + 10, c : c + 10], atol=1e-5)
        ]
        assert found, f"image {index} is not a whole-pixel shift of at most 2"
        shifts.append(found[0])
    assert len(set(shifts)) > 1


def test_brightness_adds_one_offset_per_image():
    images = tf.random.stateless_uniform([16, 8, 8, 1], seed=[1, 2], minval=0.3, maxval=0.7)
    out = RandomBrightness(0.2)(images, tf.one_hot(tf.range(16) % 2, 2), SEED)[0].numpy()
    deltas = (out - images.numpy()).reshape(16, -1)
    np.testing.assert_allclose(deltas, deltas[:, :1].repeat(64, axis=1), atol=1e-6)
    assert np.abs(deltas).max() <= 0.2 + 1e-6 and np.ptp(deltas[:, 0]) > 0.05


def test_contrast_keeps_the_mean_and_scales_the_spread():
    images = tf.random.stateless_uniform([16, 8, 8, 1], seed=[1, 2], minval=0.4, maxval=0.6)
    out = RandomContrast(0.3)(images, tf.one_hot(tf.range(16) % 2, 2), SEED)[0].numpy()
    source = images.numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), source.mean(axis=(1, 2, 3)), atol=1e-5)
    ratios = out.std(axis=(1, 2, 3)) / source.std(axis=(1, 2, 3))
    assert ratios.min() >= 0.7 - 1e-4 and ratios.max() <= 1.3 + 1e-4 and np.ptp(ratios) > 0.1


def test_erasing_cuts_one_rectangle_of_the_requested_area():
    images = tf.ones([24, 20, 20, 1])
    eraser = RandomErasing(1.0, area=(0.05, 0.2), aspect_ratio=(0.5, 2.0))
    out = eraser(images, tf.one_hot(tf.zeros(24, tf.int32), 2), SEED)[0].numpy()[..., 0]
    for image in out:
        rows, cols = np.nonzero(image == 0.0)
        assert len(rows) > 0
        box = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert np.all(box == 0.0)  # the erased pixels form one filled rectangle
        assert 0.03 * 400 <= len(rows) <= 0.25 * 400  # area range, allowing for rounding
    some = RandomErasing(0.5)(images, tf.one_hot(tf.zeros(24, tf.int32), 2), SEED)[0].numpy()
    erased = (some.reshape(24, -1) == 0).any(axis=1).sum()
    assert 4 <= erased <= 20


def test_mixup_blends_images_and_labels_with_the_same_ratio():
    images, labels, values = _unique_class_batch()
    out, mixed = MixUp(0.4)(images, labels, SEED)
    out, mixed = out.numpy(), mixed.numpy()
    blended = 0
    for index in range(10):
        weights = mixed[index]
        # The pixel is the label-weighted mean of the two source greys: same ratio for both.
        np.testing.assert_allclose(out[index, 0, 0, 0], weights @ values, atol=1e-5)
        np.testing.assert_allclose(out[index], out[index, 0, 0, 0], atol=1e-6)
        blended += int(np.count_nonzero(weights > 1e-6) == 2)
    assert blended >= 5


def test_mixed_labels_work_in_categorical_crossentropy():
    import tf_keras as keras

    images, labels, _ = _unique_class_batch()
    _, mixed = MixUp(1.0)(images, labels, SEED)
    logits = tf.random.stateless_normal([10, 10], seed=[3, 3])
    loss = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="none")
    per_class = -tf.nn.log_softmax(logits).numpy()  # loss for each one-hot target
    expected = (mixed.numpy() * per_class).sum(axis=1)
    np.testing.assert_allclose(loss(mixed, logits).numpy(), expected, rtol=1e-5)


def test_cutmix_label_weight_is_the_pasted_area():
    images, labels, values = _unique_class_batch(size=16)
    out, mixed = CutMix(1.0)(images, labels, SEED)
    out, mixed = out.numpy()[..., 0], mixed.numpy()
    pasted_any = 0
    for index in range(10):
        own = np.isclose(out[index], values[index])
        np.testing.assert_allclose(mixed[index, index], own.mean(), atol=1e-6)
        if not own.all():
            pasted_any += 1
            rows, cols = np.nonzero(~own)
            assert not own[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].any()
            partner = int(np.argmax(np.where(np.arange(10) == index, -1, mixed[index])))
            assert np.allclose(out[index][~own], values[partner])
    assert pasted_any >= 5


@pytest.mark.parametrize("mixer", [MixUp(), CutMix()], ids=["MixUp", "CutMix"])
def test_mixing_needs_one_hot_labels(mixer):
    images, _ = _batch()
    with pytest.raises(ValueError, match="needs one-hot labels"):
        mixer(images, tf.range(16), SEED)


def test_randaugment_strength_grows_with_magnitude_and_ops_differ_per_image():
    # Smooth images on the uint8 grid, so that a small shift changes pixels only a little.
    coarse = np.random.default_rng(0).uniform(0.1, 0.9, (64, 4, 4, 1))
    images = tf.round(tf.image.resize(coarse, [16, 16]) * 255.0) / 255.0
    labels = tf.one_hot(tf.range(64) % 10, 10)
    weak = RandAugment(1, 2)(images, labels, SEED)[0].numpy()
    strong = RandAugment(1, 9)(images, labels, SEED)[0].numpy()
    change = np.abs(strong - images.numpy()).mean(axis=(1, 2, 3))
    assert change.mean() > 2 * np.abs(weak - images.numpy()).mean()
    unchanged = int((change < 1e-6).sum())  # identity is 1 of 12 operations
    assert 1 <= unchanged <= 20 and len(np.unique(np.round(change, 4))) > 8


def test_config_string_builds_the_listed_augmentations_in_order():
    augment = augmentations_from_config(
        "crop:3, flip:both, rotate:10, zoom, translate:0.05, brightness:0.1, contrast:0.3,"
        " erase:0.25, randaugment:3:5, mixup:0.3, cutmix"
    )
    config = augment.get_config()["augmentations"]
    assert [item["class_name"] for item in config] == [
        "RandomCropWithPadding", "RandomFlip", "RandomRotation", "RandomZoom",
        "RandomTranslation", "RandomBrightness", "RandomContrast", "RandomErasing",
        "RandAugment", "MixUp", "CutMix",
    ]  # fmt: skip  # a table: rows read better than one item per line
    assert config[0]["config"] == {"padding": 3}
    assert config[1]["config"] == {"horizontal": True, "vertical": True}
    assert config[2]["config"]["degrees"] == 10.0 and config[3]["config"]["factor"] == 0.1
    assert config[7]["config"]["probability"] == 0.25
    assert config[8]["config"]["num_ops"] == 3 and config[8]["config"]["magnitude"] == 5.0
    assert config[9]["config"] == {"alpha": 0.3} and config[10]["config"] == {"alpha": 1.0}
    assert len(augmentations_from_config("")) == 0 and len(augmentations_from_config("none")) == 0


def test_config_string_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown augmentation 'blur'") as error:
        augmentations_from_config("crop,blur:2")
    for name in AUGMENTATION_NAMES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="expected a number after ':', received 'lots'"):
        augmentations_from_config("rotate:lots")
    with pytest.raises(ValueError, match="expected an integer after ':', received '2.5'"):
        augmentations_from_config("crop:2.5")
    with pytest.raises(ValueError, match="flip takes horizontal, vertical or both"):
        augmentations_from_config("flip:diagonal")
    with pytest.raises(ValueError, match="has 2 arguments"):
        augmentations_from_config("mixup:0.2:3")
    with pytest.raises(ValueError, match="degrees must be in \\[0, 180\\], received 200"):
        augmentations_from_config("rotate:200")


def test_bad_constructor_arguments_quote_the_value():
    with pytest.raises(ValueError, match="zoom factor must be in \\[0, 1\\), received 1.5"):
        RandomZoom(1.5)
    with pytest.raises(ValueError, match="MixUp alpha must be positive, received 0"):
        MixUp(0)
    with pytest.raises(ValueError, match="area must be"):
        RandomErasing(area=(0.5, 0.1))
    with pytest.raises(ValueError, match="magnitude must be in \\[0, 10\\], received 12"):
        RandAugment(magnitude=12)
    with pytest.raises(ValueError, match='value must be in \\[0, 1\\] or "random"'):
        RandomErasing(value="noise")


def test_pipeline_with_config_string_is_reproducible_and_keeps_label_mass():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 16, 16), dtype=np.uint8)
    y = np.arange(96) % 10
    augment = augmentations_from_config("rotate:10,erase,cutmix")

    def first_epoch(seed):
        dataset = image_dataset(
            x, y, num_classes=10, batch_size=32, training=True, augment=augment, seed=seed
        )
        return [(images.numpy(), labels.numpy()) for images, labels in dataset]

    batches = first_epoch(0)
    assert [images.shape for images, _ in batches] == [(32, 16, 16, 1)] * 3
    for images, labels in batches:
        assert images.min() >= 0.0 and images.max() <= 1.0
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert any((labels.max(axis=1) < 1.0).any() for _, labels in batches)  # CutMix mixed some
    for (images, labels), (again, again_labels) in zip(batches, first_epoch(0), strict=True):
        np.testing.assert_array_equal(images, again)
        np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(batches[0][0], first_epoch(1)[0][0])


def test_compose_config_names_every_step():
    config = Compose([RandomCropWithPadding(2), RandomFlip()]).get_config()
    assert config == {
        "augmentations": [
            {"class_name": "RandomCropWithPadding", "config": {"padding": 2}},
            {"class_name": "RandomFlip", "config": {"horizontal": True, "vertical": False}},
        ]
    }


def test_every_augmentation_class_is_reachable_from_the_spec_string():
    # A class added to trainer.augment but not to the spec parser could never be used from
    # a recipe's --augment or `trainer data preview --augment`.
    import inspect

    import trainer.augment as module

    defined = {
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and value.__module__.startswith(module.__name__)
        and "__call__" in vars(value)
        and hasattr(value, "get_config")
        and name != "Compose"
    }
    built = augmentations_from_config(",".join(AUGMENTATION_NAMES)).get_config()["augmentations"]
    assert {item["class_name"] for item in built} == defined
    assert len(defined) == len(AUGMENTATION_NAMES) == 11


def test_describe_spec_names_each_class_with_its_arguments():
    text = describe_spec("crop:2,flip:vertical,mixup:0.4")
    assert text == (
        "RandomCropWithPadding(padding=2), RandomFlip(horizontal=False, vertical=True), "
        "MixUp(alpha=0.4)"
    )
    assert describe_spec("none") == "no augmentation"
    with pytest.raises(ValueError, match="unknown augmentation 'warp' in 'warp:3'"):
        describe_spec("flip,warp:3")
