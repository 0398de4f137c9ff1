"""Structured pruning: a genuinely smaller model, the right weights copied, residuals and batch
norm handled, unknown layers left intact; and the FLOPs counter it is judged by."""

import numpy as np
import pytest
import tf_keras as keras

from trainer.compression.structured import channel_widths, prune_filters
from trainer.flops import count_flops, count_macs
from trainer.models import resnet, small_cnn

layers = keras.layers


def _randomize(model, seed=0):
    """Random weights with positive batch-norm variances, so every channel matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()]
        if isinstance(layer, layers.BatchNormalization):
            weights[-1] = np.abs(weights[-1]) + 0.5  # moving variance
        if weights:
            layer.set_weights(weights)
    return model


def _kill_first_half_of_channels(model):
    """Zero gamma and beta in every batch norm for its first half of channels: those channels
    output exactly 0, so removing them must not change any prediction."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            half = len(gamma) // 2
            gamma[:half] = 0.0
            beta[:half] = 0.0
            layer.set_weights([gamma, beta, mean, variance])


def _images(count=6, seed=1):
    return np.random.default_rng(seed).random((count, 28, 28, 1), dtype=np.float32)


def test_nothing_pruned_gives_identical_model():
    model = _randomize(small_cnn(width=8))
    same = prune_filters(model, ratio=0.0)
    assert same is not model
    assert same.count_params() == model.count_params()
    x = _images()
    np.testing.assert_array_equal(same.predict(x, verbose=0), model.predict(x, verbose=0))


def test_dead_channels_are_removed_without_changing_predictions():
    model = _randomize(small_cnn(width=8))
    _kill_first_half_of_channels(model)
    smaller = prune_filters(model, ratio=0.5, criterion="bn")
    assert channel_widths(smaller) == {
        "stage1_conv": 4,
        "stage2_conv": 8,
        "stage3_conv": 16,
        "logits": 10,
    }
    assert smaller.count_params() < 0.5 * model.count_params()
    assert count_flops(smaller) < 0.4 * count_flops(model)
    # Flatten -> Dense rows were cut to the kept channels at every spatial position.
    x = _images()
    np.testing.assert_allclose(
        smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )


def test_residual_groups_share_channels_and_predictions_survive():
    model = _randomize(resnet((28, 28, 1), 10, depth=8, width=8))
    _kill_first_half_of_channels(model)
    smaller = prune_filters(model, ratio=0.5, criterion="bn")
    widths = channel_widths(smaller)
    # Layers joined by an Add keep the same channels (and count).
    assert widths["stem_conv"] == widths["stage1_block1_b_conv"] == 4
    assert widths["stage2_block1_shortcut_conv"] == widths["stage2_block1_b_conv"] == 8
    assert widths["stage3_block1_a_conv"] == 16
    assert widths["logits"] == 10
    x = _images()
    np.testing.assert_allclose(
        smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4
    )


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_norm_criteria_drop_the_smallest_filters(criterion):
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    outputs = layers.Dense(2, name="head")(layers.GlobalAveragePooling2D()(x))
    model = _randomize(keras.Model(inputs, outputs))
    kernel, bias = model.get_layer("conv").get_weights()
    kernel[..., [1, 4, 6, 7]] *= 0.01  # four clearly weakest filters
    model.get_layer("conv").set_weights([kernel, bias])
    smaller = prune_filters(model, ratio=0.5, criterion=criterion, min_channels=1, round_to=1)
    kept = smaller.get_layer("conv").get_weights()[0]
    np.testing.assert_array_equal(kept, kernel[..., [0, 2, 3, 5]])
    np.testing.assert_array_equal(
        smaller.get_layer("head").get_weights()[0],
        model.get_layer("head").get_weights()[0][[0, 2, 3, 5]],
    )


def test_concatenate_and_outputs_are_left_intact():
    inputs = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(8, 3, padding="same", name="b")(inputs)
    c = layers.Conv2D(16, 3, name="c")(layers.Concatenate()([a, b]))
    outputs = layers.Dense(3, name="head")(layers.GlobalMaxPooling2D()(c))
    model = _randomize(keras.Model(inputs, outputs))
    smaller = prune_filters(model, ratio=0.5)
    assert channel_widths(smaller) == {"a": 8, "b": 8, "c": 8, "head": 3}
    assert smaller.predict(np.zeros((2, 8, 8, 3), np.float32), verbose=0).shape == (2, 3)


def test_sequential_models_and_per_layer_ratios():
    model = keras.Sequential(
        [
            keras.Input((16,)),
            layers.Dense(32, activation="relu", name="hidden"),
            layers.Dense(4, name="out"),
        ]
    )
    smaller = prune_filters(model, ratio=0.0, layer_ratios={"hidden": 0.75})
    assert channel_widths(smaller) == {"hidden": 8, "out": 4}


def test_bad_arguments_are_rejected_with_the_value():
    model = small_cnn(width=4)
    with pytest.raises(ValueError, match="1.2"):
        prune_filters(model, ratio=1.2)
    with pytest.raises(ValueError, match="magnitude"):
        prune_filters(model, ratio=0.5, criterion="magnitude")
    with pytest.raises(ValueError, match="missing_layer"):
        prune_filters(model, ratio=0.5, layer_ratios={"missing_layer": 0.5})

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="needs a functional or Sequential tf_keras model"):
        prune_filters(subclassed, ratio=0.5)


def test_flops_match_the_hand_count():
    model = small_cnn(width=32)
    expected = 28 * 28 * 32 * 9 + 14 * 14 * 64 * 9 * 32 + 7 * 7 * 128 * 9 * 64 + 7 * 7 * 128 * 10
    assert count_macs(model) == expected
    assert count_flops(model) == 2 * expected
    inputs = keras.Input((10, 10, 4))
    x = layers.DepthwiseConv2D(3, padding="same")(inputs)
    outputs = layers.SeparableConv2D(6, 3, padding="same")(x)
    depthwise = 10 * 10 * 4 * 9
    assert count_macs(keras.Model(inputs, outputs)) == depthwise + depthwise + 10 * 10 * 4 * 6
