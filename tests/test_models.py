"""Builders: the CIFAR ResNets have the published sizes, ResNet-9 its shape, test-time flip
averages both views."""

import numpy as np
import pytest

import trainer  # noqa: F401
from trainer import keras
from trainer.models import resnet, resnet9, small_cnn, with_test_time_flip, without_test_time_flip


@pytest.mark.parametrize("depth, published", [(20, 0.27e6), (32, 0.46e6), (56, 0.85e6)])
def test_cifar_resnets_have_the_published_parameter_counts(depth, published):
    model = resnet((32, 32, 3), 10, depth=depth)
    assert model.count_params() == pytest.approx(published, rel=0.03)  # He et al. 2016, Table 6
    assert model.output_shape == (None, 10)


def test_resnet_refuses_depths_that_are_not_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2.*received 21"):
        resnet(depth=21)


def test_resnet9_shape_and_size():
    model = resnet9((32, 32, 3), 10, width=64)
    assert model.count_params() == pytest.approx(6.57e6, rel=0.01)  # the DAWNBench network
    assert model.output_shape == (None, 10)
    assert resnet9(width=16).count_params() < model.count_params() / 10


def test_small_cnn_stages():
    three = small_cnn((28, 28, 1), 10)  # the original Fashion-MNIST model
    assert three.count_params() == 156_074
    assert three.get_layer("stage3_relu").output_shape == (None, 7, 7, 128)
    four = small_cnn((28, 28, 1), 10, stages=4)
    assert four.get_layer("stage4_relu").output_shape == (None, 4, 4, 256)  # "same" pooling 7->4
    assert four.count_params() == 430_250
    assert small_cnn((28, 28, 1), 10, stages=1).get_layer("flatten").output_shape == (None, 25088)
    with pytest.raises(ValueError, match="stages must be an int >= 1, received 0"):
        small_cnn(stages=0)


def test_test_time_flip_averages_the_image_and_its_mirror():
    model = small_cnn((8, 8, 3), num_classes=4, width=4, dropout=0.0)
    flipped = with_test_time_flip(model)
    images = np.random.default_rng(0).random((3, 8, 8, 3)).astype(np.float32)
    expected = (model(images).numpy() + model(images[:, :, ::-1]).numpy()) / 2
    np.testing.assert_allclose(flipped(images).numpy(), expected, atol=1e-5)
    assert not np.allclose(flipped(images).numpy(), model(images).numpy(), atol=1e-4)
    assert flipped.count_params() == model.count_params()  # shared weights
    assert without_test_time_flip(flipped) is model
    assert without_test_time_flip(model) is model


def test_a_saved_flip_averaged_model_unwraps(tmp_path):
    model = small_cnn((8, 8, 1), num_classes=3, width=2)
    with_test_time_flip(model).save(tmp_path / "flip.keras")
    loaded = keras.models.load_model(tmp_path / "flip.keras", compile=False)
    inner = without_test_time_flip(loaded)
    assert inner is not loaded and inner.name == "small_cnn"
    for ours, theirs in zip(inner.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_transfer_model_loads_a_weights_file_and_opens_only_the_top(tmp_path):
    from trainer.models.transfer import transfer_model, unfreeze_top

    scratch, base = transfer_model(
        "mobilenet_v2", (32, 32, 1), 3, "none", dropout=0.0, batch_norm_momentum=0.9
    )
    assert scratch.output_shape == (None, 3)
    # Nothing pretrained: the whole backbone learns, its batch norm in training mode.
    assert len(scratch.trainable_weights) > 100
    normalizations = [layer for layer in base.layers if "BatchNorm" in type(layer).__name__]
    assert normalizations and all(layer.momentum == 0.9 for layer in normalizations)
    images = np.random.default_rng(0).random((4, 32, 32, 1)).astype(np.float32)
    assert not np.allclose(scratch(images, training=True), scratch(images, training=False))

    path = tmp_path / "backbone.weights.h5"
    base.save_weights(str(path))
    model, again_base = transfer_model("mobilenet_v2", (32, 32, 1), 3, str(path), dropout=0.0)
    for mine, theirs in zip(base.get_weights(), again_base.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert model.weights_source == "weights file backbone.weights.h5"
    trainable_before = len(model.trainable_weights)
    assert trainable_before == 2  # pretrained: only the new head learns in the first phase
    opened = unfreeze_top(again_base, 0.2)
    assert 0 < opened < len(again_base.layers) * 0.2 + 1
    assert not any(
        layer.trainable
        for layer in again_base.layers
        if "BatchNormalization" in type(layer).__name__
    )
    assert len(model.trainable_weights) > trainable_before
    # Batch norm stays in inference mode after unfreezing: training=True changes nothing.
    np.testing.assert_allclose(
        model(images, training=False), model(images, training=True), atol=1e-5
    )


def test_transfer_from_a_run_keeps_its_features_and_replaces_its_last_layer(tmp_path):
    from trainer.models.transfer import transfer_from_run, unfreeze_top

    earlier = small_cnn((16, 16, 1), num_classes=5, width=4)
    earlier.save(tmp_path / "model.keras")
    model, features = transfer_from_run(str(tmp_path), (16, 16, 1), num_classes=3, dropout=0.0)
    assert model.output_shape == (None, 3)
    assert len(model.trainable_weights) == 2  # only the new head learns in the first phase
    images = np.random.default_rng(0).random((4, 16, 16, 1)).astype(np.float32)
    cut = keras.Model(earlier.inputs, earlier.get_layer("logits").input)
    np.testing.assert_allclose(features(images), cut(images), atol=1e-6)
    unfreeze_top(features, 0.5)  # the recipe's rule for a run's CNN: its last stage
    assert [layer.name for layer in features.layers if layer.trainable_weights] == ["stage3_conv"]
    np.testing.assert_allclose(
        model(images, training=False), model(images, training=True), atol=1e-5
    )
    with pytest.raises(ValueError, match=r"took images of shape \(16, 16, 1\)"):
        transfer_from_run(str(tmp_path), (32, 32, 1), 3)
    with pytest.raises(FileNotFoundError, match="A weights file needs --backbone"):
        transfer_from_run(str(tmp_path / "nowhere"), (16, 16, 1), 3)


def test_transfer_weights_that_do_not_exist_fail_fast(tmp_path):
    from trainer.models.transfer import transfer_model

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        transfer_model("resnet50", (32, 32, 3), 2, weights=str(tmp_path / "imagenet.h5"))
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        transfer_model("vgg16", (32, 32, 3), 2)
