"""Tiny bars in bfloat16 (test recipe): one convolution trained in mixed_bfloat16.

Used by tests/test_mixed_precision_runs.py: the run must be scored, saved, exported and
compressed as its float32 copy.
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
    epochs: int = 4  # passes over the training set
    width: int = 8  # filters of the convolution
    precision: str = "mixed_bfloat16"  # Keras dtype policy
    seed: int = 0  # seeds weights and shuffling


def bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k has a bright bar in rows 2k and 2k+1 of a 20x20x1 noisy image."""
    images, labels = bar_images(count, seed, size=20, margin=2)
    return images[..., None], labels.astype(np.int64)


def build(config: Config) -> Experiment:
    keras.utils.set_random_seed(config.seed)
    set_precision(config.precision)
    x_train, y_train = bars(400, 1)
    x_test, y_test = bars(200, 2)
    x_val, y_val = bars(100, 3)
    train = image_dataset(
        x_train, y_train, num_classes=10, batch_size=32, training=True, seed=config.seed
    )
    inputs = keras.Input((20, 20, 1))
    x = keras.layers.Conv2D(config.width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = float32_outputs(keras.Model(inputs, outputs))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    return Experiment(
        model=model,
        train=train,
        x_test=scale(x_test),
        y_test=y_test,
        class_names=[str(k) for k in range(10)],
        representative=scale(x_train[:100]),
        x_val=scale(x_val),
        y_val=y_val,
        epochs=config.epochs,
        batch_size=32,
        learning_rate=0.01,
        export_formats=("float32", "int8"),
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("tiny_bf16", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
