"""Paused worker (test recipe): 4 Gaussian classes of 16 features, one hidden layer; small
enough to start fast (numpy data, no scikit-learn, one float32 export). Under
`--local_workers=2`, worker 1 stops once at the start of epoch 2, after epoch 1's backup,
writes its pid to $PAUSE_MARKER and waits to be killed: tests/test_distribute.py kills it at
that known point instead of racing epochs of a few hundred ms.
"""

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.distribute import is_chief
from trainer.experiment import Experiment, finish, fit, start_run


@dataclasses.dataclass
class Config:
    run_dir: str = ""
    epochs: int = 3
    batch_size: int = 32


class PauseOnce(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        marker = Path(os.environ["PAUSE_MARKER"])
        if epoch == 1 and not is_chief() and not marker.exists():
            marker.with_suffix(".tmp").write_text(str(os.getpid()))
            marker.with_suffix(".tmp").rename(marker)
            while True:
                time.sleep(1)


def main(config):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 768)
    x = (rng.normal(0, 2, (4, 16))[labels] + rng.normal(size=(768, 16))).astype("float32")
    keras.utils.set_random_seed(0)
    train = tf.data.Dataset.from_tensor_slices((x[:512], tf.one_hot(labels[:512], 4)))
    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(1e-2), loss, metrics=["accuracy"])
    experiment = Experiment(
        model=model,
        train=train.shuffle(512, seed=0).batch(config.batch_size),
        x_val=x[512:640],
        y_val=labels[512:640],
        x_test=x[640:],
        y_test=labels[640:],
        class_names=list("abcd"),
        representative=x[:64],
        epochs=config.epochs,
        export_formats=("float32",),
    )
    run_dir = start_run("paused", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, callbacks=[PauseOnce()]))
