"""Tiny bars (test recipe): a small model on noisy bar images, every size a Config field.

Class k has a bright bar in row band k of a noisy `size` x `size` image (tests/datagen.py's
`bar_images`), so a few epochs reach high accuracy. The defaults are a functional CNN of two
convolutions with batch norm on 20x20 images, exported to float32 and int8: the run that
tests/test_compress_command.py compresses and tests/test_run_failures.py diverges. Other tests
take the same recipe with other fields, on the command line or as a preset module that
changes the defaults: tests/test_mixed_precision_runs.py (`--precision=mixed_bfloat16`),
tiny_tensorboard.py (bfloat16, fewer images) and tiny_tracked.py (no convolution, 10x10).
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
    epochs: int = 5  # passes over the training set
    width: int = 8  # filters of the first convolution (doubled in each next one)
    convs: int = 2  # convolution blocks (0: one dense layer on the pixels)
    batch_norm: bool = True  # batch norm after each convolution (else the convolution's bias)
    learning_rate: float = 0.005  # Adam's learning rate
    size: int = 20  # image height and width (10 classes: at least 10)
    train: int = 400  # training images
    validation: int = 100  # validation images (0 = none)
    test: int = 200  # test images
    held_out: bool = True  # the validation examples were never trained on
    precision: str = "float32"  # Keras dtype policy (mixed_bfloat16 trains in bfloat16)
    export: str = "float32,int8"  # export formats, comma-separated
    seed: int = 0  # seeds weights and shuffling


def bars(count: int, seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` uint8 images (count, size, size, 1) and their int64 labels."""
    images, labels = bar_images(count, seed, size=size, margin=max(1, size // 10))
    return images[..., None], labels.astype(np.int64)


def model(config: Config) -> keras.Model:
    """`convs` blocks (convolution, batch norm or bias, ReLU, 2x2 pooling), then a dense
    layer to 10 logits; float32 logits under a mixed precision policy."""
    inputs = keras.Input((config.size, config.size, 1))
    x = inputs
    for block in range(config.convs):
        filters = config.width * 2**block
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not config.batch_norm)(x)
        if config.batch_norm:
            x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    return float32_outputs(keras.Model(inputs, outputs))


def build(config: Config) -> Experiment:
    keras.utils.set_random_seed(config.seed)
    set_precision(config.precision)
    x_train, y_train = bars(config.train, 1, config.size)
    x_test, y_test = bars(config.test, 2, config.size)
    x_val, y_val = bars(config.validation, 3, config.size) if config.validation else (None, None)
    train = image_dataset(
        x_train, y_train, num_classes=10, batch_size=32, training=True, seed=config.seed
    )
    network = model(config)
    network.compile(
        keras.optimizers.Adam(config.learning_rate),
        keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    return Experiment(
        model=network,
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
        export_formats=tuple(config.export.split(",")),
    )


def run(name: str, config: Config) -> dict:
    """Trains `config` into a run folder recorded as recipe `name` (a preset's own name)."""
    experiment = build(config)
    run_dir = start_run(name, config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))


def main(config: Config) -> dict:
    return run("tiny_bars", config)
