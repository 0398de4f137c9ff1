"""Tiny tracked bars (test recipe): a dense model on 10x10 bar images, float32 export only.

The cheapest full run folder (history, metrics, plots, report, model card, one .tflite file):
tests/test_tracking.py trains it with `--tracking=mlflow`, tunes its `learning_rate` and
compresses it with post-training quantization.
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from datagen import bar_images
from trainer import keras
from trainer.data.pipeline import image_dataset
from trainer.experiment import Experiment, finish, fit, start_run


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 2  # passes over the training set
    learning_rate: float = 0.01  # Adam's learning rate
    seed: int = 0  # seeds weights and shuffling


SEARCH_SPACE = "learning_rate=0.003,0.03"


def bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k has a bright bar in row k of a 10x10x1 noisy image."""
    images, labels = bar_images(count, seed, size=10, margin=1)
    return images[..., None], labels.astype(np.int64)


def build(config: Config) -> Experiment:
    keras.utils.set_random_seed(config.seed)
    x_train, y_train = bars(200, 1)
    x_val, y_val = bars(50, 3)
    x_test, y_test = bars(100, 2)
    train = image_dataset(
        x_train, y_train, num_classes=10, batch_size=32, training=True, seed=config.seed
    )
    inputs = keras.Input((10, 10, 1))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(config.learning_rate),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    return Experiment(
        model=model,
        train=train,
        x_test=scale(x_test),
        y_test=y_test,
        class_names=[f"row{k}" for k in range(10)],
        representative=scale(x_train[:50]),
        x_val=scale(x_val),
        y_val=y_val,
        epochs=config.epochs,
        batch_size=32,
        learning_rate=config.learning_rate,
        export_formats=("float32",),
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("tiny_tracked", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
