"""Tiny regression (test recipe): a two-layer model on 64 rows, 4 batches per epoch, with
options to fail or stop on purpose. Used by tests/test_bad_input.py.

`--stop_after_batches=N` raises KeyboardInterrupt after N batches, leaving the run folder as a
killed run leaves it (config.yaml, run.json, history and a backup); `--fail_before_training`
and `--fail_after_training` raise a ValueError at those points.
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from trainer.config import choices, count, fraction, limit, option
from trainer.files import atomic_write_json
from trainer.runs import (
    HISTORY_FILE,
    METRICS_FILE,
    add_training_seconds,
    create_run_dir,
    read_history,
    run_callbacks,
)


@dataclass
class Config:
    run_dir: str = ""  # output folder
    data: str = ""  # folder of inputs; only its location is used here
    epochs: int = count(3)  # passes over the data
    width: int = count(4)  # hidden units
    dropout: float = fraction(0.0)  # unused; a fraction to validate
    train_limit: int = limit(0)  # unused; a limit to validate
    export: str = choices("float32", "float32", "int8", resumable=True)  # formats
    backup_every: int = limit(2, resumable=True)  # steps between backups
    stop_after_batches: int = limit(0, resumable=True)  # raise KeyboardInterrupt after N batches
    fail_before_training: bool = False  # raise before fit
    fail_after_training: bool = option(False, resumable=True)  # raise after fit (as an export)


def main(config: Config) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    run_dir = create_run_dir("tiny", config, config.run_dir)
    if config.fail_before_training:
        raise ValueError("failing on purpose before training")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x @ np.array([[1.0], [2.0], [3.0]])).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(config.width), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.SGD(0.01), "mse")

    class Stop(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            Stop.seen += 1
            if Stop.seen == config.stop_after_batches:
                raise KeyboardInterrupt

    callbacks = [*run_callbacks(run_dir, tensorboard=False, backup_every=config.backup_every)]
    model.fit(data, epochs=config.epochs, verbose=0, callbacks=[Stop(), *callbacks])
    total = add_training_seconds(run_dir, 1.5)
    if config.fail_after_training:
        raise ValueError("failing on purpose after training")
    metrics = {
        "epochs": len(read_history(run_dir / HISTORY_FILE)["loss"]),
        "iterations": int(model.optimizer.iterations),
        "export": config.export,
        "training_seconds": total,
    }
    atomic_write_json(run_dir / METRICS_FILE, metrics)
    return metrics
