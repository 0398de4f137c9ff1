"""Handwritten digits (scikit-learn's 8x8 set): the smallest complete recipe, one conv layer.

Data: the 1,797 digit images bundled with scikit-learn (no download): 25% test, 10% of the
rest held out for validation. Model: one convolution and a linear head. This file is the
example of the documentation's "Write your own recipe" page (docs/recipe.md): copy it, change
`build`, and every command works on your recipe (`trainer train`, `--resume`, `lr-find`,
`compress`, `export`).

Run:  trainer train digits            (or: trainer train path/to/my_recipe.py)
"""

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from trainer import keras  # tf_keras, the Keras 2 API that TF-MOT needs
from trainer.cli import run_recipe
from trainer.config import choice, count, limit, positive
from trainer.data.pipeline import image_dataset
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.export import IO_TYPES, OUTPUT_KINDS
from trainer.optimizers import scheduled_optimizer


@dataclass
class Config:
    run_dir: str = ""  # output folder; default runs/digits-<timestamp>
    epochs: int = count(20)  # passes over the training set
    batch_size: int = count(32)  # examples per step
    learning_rate: float = positive(3e-3)  # peak learning rate, reached after one epoch of warmup
    width: int = count(16)  # convolution filters (compress halves it for the distilled student)
    seed: int = limit(0)  # seeds the split, the weights and the shuffling
    backup_every: int = limit(0)  # steps between backups for `trainer train --resume`; 0 = off
    # int8 file input/output: float32, uint8 (MediaPipe) or int8
    io: str = choice("float32", *IO_TYPES)
    # what exported files return: probabilities or logits
    outputs: str = choice("probabilities", *OUTPUT_KINDS)


def build(config: Config) -> Experiment:
    # Data: 8x8 images scaled to [0, 1], split into train / validation / test.
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, stratify=digits.target, random_state=config.seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=0.1, stratify=y_train, random_state=config.seed
    )
    keras.utils.set_random_seed(config.seed)
    train = image_dataset(
        x_train,
        y_train,
        num_classes=10,
        batch_size=config.batch_size,
        training=True,
        seed=config.seed,
    )

    # Model: logits out; compiled with warmup + cosine decay.
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(config.width, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=scheduled_optimizer(
            "adamw", config.learning_rate, steps_per_epoch=len(train), epochs=config.epochs
        ),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return Experiment(
        model=model,
        train=train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        class_names=[str(digit) for digit in range(10)],
        representative=x_train[:300],
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        export_io=config.io,
        export_outputs=config.outputs,
        title="Digits, one convolution",
        # The 8x8 digits hold intensities 0..16, not 0..255: model input = (pixel - 0) / 16.
        input_spec={"shape": [8, 8, 1], "dtype": "float32", "mean": 0.0, "std": 16.0},
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("digits", config, config.run_dir)
    result = fit(experiment, run_dir, backup_every=config.backup_every)
    return finish(experiment, run_dir, result)


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/digits.py"))
