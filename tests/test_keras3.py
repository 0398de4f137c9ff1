"""Keras 3 users: to_tf_keras round trips, the JAX/PyTorch refusals, backups.

The schedule, callback, LR finder, diagnosis and distillation tests run with both Kerases in
their own files; here is what only Keras 3 has. Import order (Keras 3 loaded before or after
trainer, in fresh interpreters) is tests/test_keras_path.py's and
tests/test_keras_import_order.py's.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from kerases import keras3 as keras

from trainer import keras_compat
from trainer.callbacks import (
    EpochLogger,
    ExponentialMovingAverage,
    FitDiagnosis,
    LearningRateWarmup,
    TimeBudget,
)
from trainer.checkpoint import BestModelCheckpoint, ResumeBackup
from trainer.distill import Distiller
from trainer.keras_path import to_tf_keras
from trainer.lr_finder import find_learning_rate
from trainer.schedules import Warmup


def small_cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.DepthwiseConv2D(3, padding="same"),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(5),
        ]
    )


def text_model():
    """Token ids -> embedding -> LSTM and pooled branches joined -> logits (functional)."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((10,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(40, 8)(tokens)
    recurrent = keras.layers.LSTM(6)(embedded)
    pooled = keras.layers.GlobalAveragePooling1D()(embedded)
    joined = keras.layers.Concatenate()([recurrent, pooled])
    hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer="l2")(joined)
    return keras.Model(tokens, keras.layers.Dense(3)(hidden), name="text")


@pytest.mark.parametrize(
    ("build", "batch"),
    [
        (small_cnn, np.random.default_rng(1).normal(size=(6, 12, 12, 3)).astype(np.float32)),
        (text_model, np.random.default_rng(1).integers(0, 40, (6, 10)).astype(np.int32)),
    ],
    ids=["cnn", "text"],
)
def test_to_tf_keras_rebuilds_the_model_with_its_weights(build, batch):
    model = build()
    model.compile("sgd", "mse")
    # Non-default batch-norm statistics, so copying them is checked too.
    model.fit(batch, np.zeros((6, model.outputs[0].shape[-1])), epochs=1, verbose=0)
    legacy = to_tf_keras(model)
    assert type(legacy).__module__.startswith("tf_keras.")
    assert [type(layer).__name__ for layer in legacy.layers if layer.weights] == [
        type(layer).__name__ for layer in model.layers if layer.weights
    ]
    for old, new in zip(model.get_weights(), legacy.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    # A batch the conversion's own check did not see (ids up to 39, not only 0 and 1).
    np.testing.assert_allclose(
        legacy(batch, training=False).numpy(),
        np.asarray(model(batch, training=False)),
        atol=1e-5,
    )


def test_a_converted_model_can_be_pruned_and_a_keras3_one_says_how():
    from trainer.compression import prune_low_magnitude

    model = small_cnn()
    with pytest.raises(TypeError, match=r"Keras 3 object.*to_tf_keras\(model\)"):
        prune_low_magnitude(model, target_sparsity=0.5, end_step=10)
    pruned, callbacks = prune_low_magnitude(to_tf_keras(model), target_sparsity=0.5, end_step=4)
    pruned.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(16, 12, 12, 3)).astype(np.float32)
    pruned.fit(x, np.zeros((16, 5)), batch_size=4, epochs=1, verbose=0, callbacks=callbacks)
    dense_kernel = [w for w in pruned.weights if "dense" in w.name and "kernel" in w.name][0]
    assert np.mean(dense_kernel.numpy() == 0) == pytest.approx(0.5, abs=0.02)


def test_to_tf_keras_refuses_what_it_cannot_rebuild():
    class Custom(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    inputs = keras.Input((4,))
    with pytest.raises(TypeError, match="layer 'custom' is .*Custom, which has no tf_keras"):
        to_tf_keras(keras.Model(inputs, Custom(name="custom")(inputs)))
    with pytest.raises(TypeError, match="'relu' is a Relu \\(a keras.ops call"):
        to_tf_keras(keras.Model(inputs, keras.ops.relu(keras.layers.Dense(2)(inputs))))

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 4), np.float32))
    with pytest.raises(TypeError, match="no input graph|subclassed"):
        to_tf_keras(subclassed)
    import tf_keras

    with pytest.raises(TypeError, match="converts Keras 3 models, received tf_keras"):
        to_tf_keras(tf_keras.Sequential([tf_keras.Input((2,)), tf_keras.layers.Dense(1)]))


def test_jax_or_pytorch_backend_refusals_name_the_backend(monkeypatch):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")  # JAX is not installed here
    for make in (ExponentialMovingAverage, lambda: LearningRateWarmup(10)):
        with pytest.raises(RuntimeError, match="Keras 3 here uses the 'jax' backend"):
            make()
    data = tf.data.Dataset.from_tensor_slices((np.zeros((8, 3)), np.zeros((8, 2)))).batch(4)
    with pytest.raises(RuntimeError, match="find_learning_rate runs TensorFlow ops.*'jax'"):
        find_learning_rate(model, data)
    with pytest.raises(RuntimeError, match="Distiller runs TensorFlow ops.*'jax'"):
        Distiller(model, teacher)
    # What reads only the logs works on any backend; schedules compute with keras.ops there.
    FitDiagnosis(), TimeBudget(60), EpochLogger()
    assert keras_compat.math_ops(5) is keras.ops
    assert keras_compat.math_ops(tf.constant(5)) is not keras.ops  # a TensorFlow step stays in TF
    schedule = Warmup(keras.optimizers.schedules.CosineDecay(0.1, 100), warmup_steps=10)
    assert float(np.asarray(schedule(5))) == pytest.approx(0.05)


def test_resume_backup_and_best_checkpoint_in_a_keras3_fit(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=(32, 1))
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")

    def crash(epoch, logs):
        if epoch == 2:
            raise KeyboardInterrupt  # killed at the start of the third epoch

    best = BestModelCheckpoint(tmp_path / "best.keras", monitor="val_loss")
    callbacks = [best, ResumeBackup(tmp_path / "backup", save_freq=3)]
    crashing = keras.callbacks.LambdaCallback(on_epoch_begin=crash)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=4,
            validation_data=(x, y),
            verbose=0,
            callbacks=[crashing, *callbacks],
        )
    weights_at_crash = model.get_weights()
    fresh = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    fresh.compile(keras.optimizers.SGD(0.01), "mse")
    history = fresh.fit(
        x, y, batch_size=8, epochs=4, validation_data=(x, y), verbose=0, callbacks=callbacks
    )
    assert history.epoch == [2, 3]  # the two epochs that were left
    assert int(fresh.optimizer.iterations) == 16  # 8 restored + 8 run
    assert not np.allclose(fresh.get_weights()[0], weights_at_crash[0])
    state = json.loads((tmp_path / "best.keras.best.json").read_text())
    assert state["monitor"] == "val_loss" and state["epoch"] in (1, 2, 3, 4)
    reloaded = keras.models.load_model(tmp_path / "best.keras")
    assert reloaded.evaluate(x, y, verbose=0) == pytest.approx(state["best"], rel=1e-4)
