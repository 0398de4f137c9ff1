"""Tiny token sequences (test recipe): Embedding + Conv1D, no `width` field.

Trained and compressed by tests/test_compress_command.py: a text model gets dynamic-range
candidates, and its distillation student is the original with half its filters.
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from trainer import keras
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.models import text_classifier


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 6  # passes over the training set
    seed: int = 0  # seeds weights and shuffling


def texts(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of 16 float32 token ids in [2, 40); class k always holds token 40 + k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 4
    ids = rng.integers(2, 40, size=(count, 16))
    ids[np.arange(count), rng.integers(0, 16, count)] = 40 + labels
    return ids.astype(np.float32), labels


def build(config: Config) -> Experiment:
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    x_train, y_train = texts(320, 1)
    x_val, y_val = texts(80, 2)
    x_test, y_test = texts(120, 3)
    train = tf.data.Dataset.from_tensor_slices((x_train, tf.one_hot(y_train, 4)))
    train = train.shuffle(320, seed=config.seed).batch(32)
    model = text_classifier(16, 48, 4, embedding_dim=16, width=32, dropout=0.0)
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
        class_names=list("abcd"),
        representative=x_train[:100],
        x_val=x_val,
        y_val=y_val,
        epochs=config.epochs,
        batch_size=32,
        learning_rate=0.01,
        export_formats=("float32", "dynamic"),
    )


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("tiny_text", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
