"""Tiny bars in bfloat16 for tests/test_tensorboard_logging.py (test recipe): tiny_bf16's
convolution trained in mixed_bfloat16 on fewer images, exported to one file (float32), so the
module's one shared run costs little CPU while its training graph is bfloat16 and the saved
model float32.
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from datagen import bar_images
from trainer import keras
from trainer.data.pipeline import image_dataset
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.precision import float32_outputs, set_precision


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 3  # passes over the training set
    width: int = 4  # filters of the convolution
    precision: str = "mixed_bfloat16"  # Keras dtype policy
    seed: int = 0  # seeds weights and shuffling


def bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k has a bright bar in rows 2k and 2k+1 of a 20x20x1 noisy image, as float32 in [0, 1]."""
    images, labels = bar_images(count, seed, size=20, margin=2)
    return images[..., None].astype(np.float32) / 255.0, labels.astype(np.int64)


def build(config: Config) -> Experiment:
    keras.utils.set_random_seed(config.seed)
    set_precision(config.precision)
    x_train, y_train = bars(160, 1)
    x_test, y_test = bars(60, 2)
    x_val, y_val = bars(40, 3)
    train = image_dataset(
        x_train, y_train, num_classes=10, batch_size=32, training=True, seed=config.seed
    )
    inputs = keras.Input((20, 20, 1))
    x = keras.layers.Conv2D(config.width, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = float32_outputs(keras.Model(inputs, outputs))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return Experiment(
        model=model,
        train=train,
        x_test=x_test,
        y_test=y_test,
        class_names=[str(k) for k in range(10)],
        representative=x_train[:50],
        x_val=x_val,
        y_val=y_val,
        epochs=config.epochs,
        learning_rate=0.01,
        export_formats=("float32",),
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("tiny_tensorboard", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
