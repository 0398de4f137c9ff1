"""Tiny tracked bars (test recipe): tiny_bars.py as one dense layer on 10x10 bar images,
float32 export only.

The cheapest full run folder (history, metrics, plots, report, model card, one .tflite file):
tests/test_tracking.py trains it with `--tracking=mlflow`, tunes its `learning_rate` and
compresses it with post-training quantization.
"""

from dataclasses import dataclass

from recipes_for_tests import tiny_bars
from recipes_for_tests.tiny_bars import build  # noqa: F401  (the recipe contract)

SEARCH_SPACE = "learning_rate=0.003,0.03"


@dataclass
class Config(tiny_bars.Config):
    epochs: int = 2  # passes over the training set
    convs: int = 0  # no convolution: a dense layer on the pixels
    learning_rate: float = 0.01  # Adam's learning rate
    size: int = 10  # image height and width
    train: int = 200  # training images
    validation: int = 50  # validation images
    test: int = 100  # test images
    export: str = "float32"  # export formats


def main(config: Config) -> dict:
    return tiny_bars.run("tiny_tracked", config)
