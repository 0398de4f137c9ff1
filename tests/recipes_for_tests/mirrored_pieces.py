"""Under MirroredStrategy over two logical CPUs: EMA, time budget, pruning, QAT and
distillation each train, and each does what it is for. Prints one JSON line of findings
(`FOUND {...}`). Run as a script by tests/test_distribute.py (-m slow).
"""

# ruff: noqa: E402  (two logical CPUs are set before anything else initializes TensorFlow)
import json

import numpy as np

import trainer.keras_path as path

path.import_tensorflow_quietly()
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tf_keras as keras

from trainer.callbacks import ExponentialMovingAverage, TimeBudget
from trainer.compression.prune import prune_low_magnitude
from trainer.compression.quantize import quantize_aware
from trainer.compression.saving import is_quantize_aware, strip
from trainer.distill import Distiller
from trainer.distribute import DistributeOptions, distributed

rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8, 8, 1)).astype("float32")
y = keras.utils.to_categorical(rng.integers(0, 4, 256), 4)
loss = keras.losses.CategoricalCrossentropy(from_logits=True)


def compiled():
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(4),
        ]
    )
    model.compile("adam", loss, metrics=["accuracy"])
    return model


found = {}
with distributed(DistributeOptions(strategy="mirrored")) as strategy:
    found["replicas"] = strategy.num_replicas_in_sync
    model = compiled()
    ema = ExponentialMovingAverage(0.9)
    raw = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: raw.__setitem__(slice(None), model.get_weights())
    )
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[record, ema])
    found["ema_differs_from_last_step"] = float(np.abs(model.get_weights()[0] - raw[0]).max())
    budget = TimeBudget(600)
    history = compiled().fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[budget])
    found["budget_epochs"] = len(history.history["loss"])
    pruned, callbacks = prune_low_magnitude(compiled(), 0.5, end_step=8, frequency=2)
    pruned.compile("adam", loss)
    pruned.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=callbacks)
    kernel = strip(pruned).layers[0].get_weights()[0]
    found["pruned_sparsity"] = float(np.mean(kernel == 0))
    qat, callbacks = quantize_aware(compiled())
    qat.compile("adam", loss)
    history = qat.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
    found["qat"] = is_quantize_aware(qat) and bool(np.isfinite(history.history["loss"][-1]))
    student = compiled()
    before = student.get_weights()[0].copy()
    distiller = Distiller(student, compiled(), temperature=4.0, alpha=0.5)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    found["student_moved"] = float(np.abs(student.get_weights()[0] - before).max())
print("FOUND " + json.dumps(found))
