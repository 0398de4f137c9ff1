"""Precision: mixed_float16 refused without a GPU; applied with loss scaling where one exists."""

import numpy as np
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
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, float32"):
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


def test_a_bfloat16_model_exports_as_its_float32_copy():
    from trainer.export import convert, predict_tflite
    from trainer.models import small_cnn

    precision.set_precision("mixed_bfloat16")
    model = precision.float32_outputs(small_cnn((12, 12, 1), 3, width=4))
    assert model.get_layer("stage1_conv").compute_dtype == "bfloat16"
    assert precision.is_mixed(model)
    rng = np.random.default_rng(0)
    x = rng.random((16, 12, 12, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 3, 16), 3)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.CategoricalCrossentropy(True))
    model.fit(x, y, epochs=2, verbose=0)  # weights and batch-norm statistics move

    copy = precision.float32_copy(model)
    assert not precision.is_mixed(copy)
    assert copy.get_layer("stage1_conv").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # left as it was
    for ours, theirs in zip(model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # bfloat16 keeps 8 significant bits: the float32 copy agrees to about 1%.
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), atol=0.1)
    # TFLite has no bfloat16 kernels: convert() goes through the copy, and the file runs.
    tflite = predict_tflite(convert(model, "float32"), x)
    np.testing.assert_allclose(tflite, copy.predict(x, verbose=0), atol=1e-4)
    precision.set_precision("float32")
    assert precision.float32_copy(copy) is copy


def test_a_mixed_subclassed_model_gets_a_clear_error():
    precision.set_precision("mixed_bfloat16")

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = Tiny()
    model(np.ones((1, 3), np.float32))
    with pytest.raises(
        TypeError, match="float32_copy.*functional or Sequential.*precision float32"
    ):
        precision.float32_copy(model)


def test_auto_picks_bfloat16_only_on_a_cpu_that_computes_it(monkeypatch):
    monkeypatch.setattr(precision, "gpu_names", lambda: [])
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.set_precision("auto") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.set_precision("auto") == "float32"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    monkeypatch.setattr(precision, "gpu_names", lambda: ["/physical_device:GPU:0"])
    assert precision.set_precision("auto") == "float32"


def test_the_cpu_flag_check_reads_proc_cpuinfo():
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        assert precision.cpu_has_bfloat16() is False
        return
    flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    expected = "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()
    assert precision.cpu_has_bfloat16() is expected
