"""Killable regression (test recipe): one Dense layer, 10 batches per epoch, a cosine schedule
with warmup, a backup every 3 steps. Used by tests/test_resume.py.

If the environment names a `PAUSE_MARKER` file that does not exist yet, training stops once
at step 15 (mid-epoch 2, after the backup at step 12), writes its pid to that file and waits
to be killed: the test kills it at this known point instead of racing a running epoch. The
resumed run finds the file and trains on to the end.
"""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import trainer  # noqa: F401
from trainer.cli import run_recipe
from trainer.runs import create_run_dir, run_callbacks
from trainer.schedules import build_schedule

PAUSE_AT_STEP = 15


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 4  # passes over the data
    learning_rate: float = 0.05  # peak learning rate


def main(config: Config) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    run_dir = create_run_dir("tiny", config, config.run_dir)
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(160, 3)).astype("float32")
    y = (x @ np.array([[1.0], [2.0], [3.0]])).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(160, seed=0).batch(16)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    steps = config.epochs * len(data)
    schedule = build_schedule("cosine", config.learning_rate, steps, warmup_steps=5)
    model.compile(keras.optimizers.SGD(schedule, momentum=0.9), "mse")

    class PauseOnce(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            marker = os.environ.get("PAUSE_MARKER")
            step = int(self.model.optimizer.iterations)
            if marker and step == PAUSE_AT_STEP and not Path(marker).exists():
                Path(marker + ".tmp").write_text(str(os.getpid()))
                Path(marker + ".tmp").rename(marker)
                while True:
                    time.sleep(1)

    callbacks = [PauseOnce(), *run_callbacks(run_dir, tensorboard=False, backup_every=3)]
    model.fit(data, epochs=config.epochs, verbose=0, callbacks=callbacks)
    metrics = {"iterations": int(model.optimizer.iterations), "epochs": config.epochs}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "tiny"))
