"""Tiny bars (test recipe): a functional CNN sized by `width` on 20x20 bar images.

Trained and compressed by tests/test_compress_command.py through the recipe contract
(`build` rebuilds the run's data and model, `main` trains it).
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
    epochs: int = 5  # passes over the training set
    width: int = 8  # filters of the first convolution (doubled in the second)
    learning_rate: float = 0.005  # peak learning rate
    held_out: bool = True  # the validation examples were never trained on
    validation: int = 100  # validation examples (0 = none)
    seed: int = 0  # seeds weights and shuffling


def bars(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class k has a bright bar in rows 2k and 2k+1 of a 20x20x1 noisy image."""
    images, labels = bar_images(count, seed, size=20, margin=2)
    return images[..., None], labels.astype(np.int64)


def build(config: Config) -> Experiment:
    keras.utils.set_random_seed(config.seed)
    x_train, y_train = bars(400, 1)
    x_test, y_test = bars(200, 2)
    x_val, y_val = bars(config.validation, 3) if config.validation else (None, None)
    train = image_dataset(
        x_train, y_train, num_classes=10, batch_size=32, training=True, seed=config.seed
    )
    inputs = keras.Input((20, 20, 1))
    x = keras.layers.Conv2D(config.width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(config.width * 2, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
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
        class_names=[str(k) for k in range(10)],
        representative=scale(x_train[:100]),
        x_val=None if x_val is None else scale(x_val),
        y_val=y_val,
        validation_held_out=config.held_out,
        epochs=config.epochs,
        batch_size=32,
        learning_rate=config.learning_rate,
        export_formats=("float32", "int8"),
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("tiny_bars", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
