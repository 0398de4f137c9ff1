"""Precision: mixed_float16 refused without a GPU; applied with loss scaling where one exists."""

import pytest
import tf_keras as keras

from trainer import precision


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_float16_is_refused_without_a_gpu(monkeypatch):
    monkeypatch.setattr(precision, "gpu_names", lambda: [])
    with pytest.raises(ValueError, match="needs a GPU.*100x slower.*precision=float32"):
        precision.set_precision("mixed_float16")
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing changed
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of float32"):
        precision.set_precision("fp16")


def test_mixed_float16_on_a_gpu_gets_loss_scaling(monkeypatch):
    # The GPU is simulated: only the device check is replaced; Keras does the rest for real.
    monkeypatch.setattr(precision, "gpu_names", lambda: ["/physical_device:GPU:0"])
    assert precision.set_precision("mixed_float16") == "mixed_float16"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert model.layers[0].compute_dtype == "float16"
    model = precision.float32_outputs(model)
    assert model.output.dtype == "float32"
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert model.optimizer.dynamic
    wrapped = precision.loss_scaled(keras.optimizers.SGD(0.1))
    assert isinstance(wrapped, keras.mixed_precision.LossScaleOptimizer)
    assert precision.loss_scaled(wrapped) is wrapped


def test_float32_is_the_default_and_leaves_optimizers_alone():
    assert precision.set_precision() == "float32"
    optimizer = keras.optimizers.SGD(0.1)
    assert precision.loss_scaled(optimizer) is optimizer
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert precision.float32_outputs(model) is model
    assert precision.gpu_names() == [] or all("GPU" in name for name in precision.gpu_names())
