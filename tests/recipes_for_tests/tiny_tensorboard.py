"""Tiny bars in bfloat16 for tests/test_tensorboard_logging.py (test recipe): tiny_bars.py with
one convolution trained in mixed_bfloat16 on fewer images and exported to one file (float32),
so the module's one shared run costs little CPU while its training graph is bfloat16 and the
saved model float32.
"""

from dataclasses import dataclass

from recipes_for_tests import tiny_bars
from recipes_for_tests.tiny_bars import build  # noqa: F401  (the recipe contract)


@dataclass
class Config(tiny_bars.Config):
    epochs: int = 3  # passes over the training set
    width: int = 4  # filters of the convolution
    convs: int = 1  # convolution blocks
    batch_norm: bool = False  # the convolution's bias instead
    learning_rate: float = 0.01  # Adam's learning rate
    train: int = 160  # training images
    validation: int = 40  # validation images
    test: int = 60  # test images
    precision: str = "mixed_bfloat16"  # Keras dtype policy
    export: str = "float32"  # export formats


def main(config: Config) -> dict:
    return tiny_bars.run("tiny_tensorboard", config)
