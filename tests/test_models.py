"""Builders: the CIFAR ResNets have the published sizes, ResNet-9 its shape, test-time flip
averages both views."""

import numpy as np
import pytest

import trainer  # noqa: F401
from trainer.models import resnet, resnet9, small_cnn, with_test_time_flip


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


def test_test_time_flip_averages_the_image_and_its_mirror():
    model = small_cnn((8, 8, 3), num_classes=4, width=4, dropout=0.0)
    flipped = with_test_time_flip(model)
    images = np.random.default_rng(0).random((3, 8, 8, 3)).astype(np.float32)
    expected = (model(images).numpy() + model(images[:, :, ::-1]).numpy()) / 2
    np.testing.assert_allclose(flipped(images).numpy(), expected, atol=1e-5)
    assert not np.allclose(flipped(images).numpy(), model(images).numpy(), atol=1e-4)
    assert flipped.count_params() == model.count_params()  # shared weights
