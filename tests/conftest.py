"""Shared fixtures: tiny generated data in the real on-disk formats."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import trainer  # noqa: F401  (Keras 2 path before TensorFlow loads)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("PYTHONHASHSEED", "0")


def make_class_images(count: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images where class k has a bright horizontal bar in row band k, plus noise.

    Easy enough that a small CNN learns it in a couple of epochs, so tests can assert
    accuracy well above chance.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, size, size), dtype=np.uint8)
    band = size // 10
    for index, label in enumerate(labels):
        images[index, label * band : label * band + band, 3 : size - 3] = 230
    return images, labels.astype(np.uint8)


def write_fashion_dir(directory: Path) -> Path:
    """Writes the four Fashion-MNIST IDX gzip files, 600 train / 200 test images, into
    `directory` and returns it."""
    from trainer.data.idx import write_idx

    x_train, y_train = make_class_images(600, seed=1)
    x_test, y_test = make_class_images(200, seed=2)
    write_idx(directory / "train-images-idx3-ubyte.gz", x_train)
    write_idx(directory / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", x_test)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", y_test)
    return directory


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    """A folder with the four Fashion-MNIST IDX gzip files, 600 train / 200 test images."""
    return write_fashion_dir(tmp_path / "fashion")


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """A recipe run sets Keras's global dtype policy (fashion_mnist picks mixed_bfloat16 on a CPU
    with native bfloat16); tests that build models afterwards in the same process get float32."""
    yield
    from trainer import keras

    keras.mixed_precision.set_global_policy("float32")
