"""IDX files (the MNIST family's format), plain or gzip, read and written with checks.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values. This module owns that format, the
Fashion-MNIST layout on disk and the IDX folder as a data source (`load_idx_folder`); it
returns NumPy arrays and must not build `tf.data` pipelines.

Example:

    >>> from trainer.data.idx import load_fashion_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()  # Debian's package files
    >>> x_train.shape, x_train.dtype, x_test.shape
    ((60000, 28, 28), dtype('uint8'), (10000, 28, 28))
"""

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from trainer.data.types import LoadedData, SourceOptions, assemble
from trainer.files import atomic_write_bytes

# Type codes from the IDX specification (http://yann.lecun.com/exdb/mnist/).
_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip  # a table: rows read better than one item per line
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
_HOW_TO_GET = (
    "Install Debian's package (`sudo apt-get install dataset-fashion-mnist`, which `make setup` "
    f"does) to get them in {FASHION_MNIST_DIR}, or pass --data_dir=DIR pointing at a folder with "
    "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz (gzip or uncompressed)."
)


class IdxFormatError(ValueError):
    """An IDX file that is truncated, corrupt or not IDX at all."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise IdxFormatError(
            f"{path} is a truncated or corrupt gzip file ({error}). Download or reinstall it."
        ) from None


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (gzip or plain) into an array, checking header and size.

    Raises:
        FileNotFoundError: the file does not exist.
        IdxFormatError: bad magic number, unknown type, or data shorter/longer than the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{path} is not an IDX file: its magic number is {data[:4].hex() or 'missing'}, "
            "expected 0000 followed by a type code and the number of dimensions"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _DTYPES:
        raise IdxFormatError(f"{path} has unknown IDX type code 0x{type_code:02x}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxFormatError(f"{path} is truncated inside its header ({len(data)} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = _DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_size
    if actual != expected:
        raise IdxFormatError(
            f"{path} holds {actual} bytes of data but its header {tuple(shape)} needs "
            f"{expected}: the file is truncated or corrupt. Download or reinstall it."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Writes a uint8/int8 array as IDX, gzip-compressed when the name ends in `.gz`."""
    path = Path(path)
    array = np.asarray(array)
    if array.dtype not in _CODES:
        raise TypeError(f"write_idx supports uint8 and int8 arrays, received {array.dtype}")
    header = bytes([0, 0, _CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if path.suffix == ".gz" if compress is None else compress:
        payload = gzip.compress(payload, mtime=0)
    return atomic_write_bytes(path, payload)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{stem}(.gz) is missing from {directory}. {_HOW_TO_GET}")


def load_idx_split(
    directory: str | Path, images: str, labels: str, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reads one images/labels pair and checks they agree: counts, 2-D images, label range."""
    directory = Path(directory)
    image_path, label_path = _find(directory, images), _find(directory, labels)
    x, y = read_idx(image_path), read_idx(label_path)
    if x.ndim != 3:
        raise IdxFormatError(f"{image_path} should hold (count, rows, cols) images, has {x.shape}")
    if y.ndim != 1:
        raise IdxFormatError(f"{label_path} should hold one label per image, has {y.shape}")
    if len(x) != len(y):
        raise IdxFormatError(
            f"{image_path} has {len(x)} images but {label_path} has {len(y)} labels; "
            "the pair comes from different downloads"
        )
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise IdxFormatError(
            f"{label_path} has labels outside 0..{num_classes - 1} (e.g. {int(bad[0])})"
        )
    return x, y.astype(np.int64)


def load_fashion_mnist(
    data_dir: str | Path = FASHION_MNIST_DIR, check_counts: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Loads Fashion-MNIST from IDX files: ((x_train, y_train), (x_test, y_test)), uint8 images.

    Args:
        data_dir: folder with the four IDX files (gzip or not); Debian's package by default.
        check_counts: require the official 60000/10000 counts. Tests pass False to use
            small files in the same format.

    Raises:
        FileNotFoundError: the folder or a file is missing (says how to get them).
        IdxFormatError: a file is truncated, corrupt, or the files disagree.
    """
    directory = Path(data_dir)
    if not directory.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder {directory} does not exist. {_HOW_TO_GET}")
    splits = []
    for split, (images, labels, count) in _FASHION_FILES.items():
        x, y = load_idx_split(directory, images, labels, num_classes=10)
        if x.shape[1:] != (28, 28):
            raise IdxFormatError(f"Fashion-MNIST {split} images are {x.shape[1:]}, expected 28x28")
        if check_counts and len(x) != count:
            raise IdxFormatError(
                f"Fashion-MNIST {split} split in {directory} has {len(x)} images, expected "
                f"{count}. Reinstall the files, or pass check_counts=False for a subset."
            )
        splits.append((x, y))
    return splits[0], splits[1]


def is_idx_folder(path: Path) -> bool:
    """True for a folder holding MNIST-style training images (plain or gzip)."""
    return any(
        (Path(path) / name).is_file()
        for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")
    )


def load_idx_folder(path: str | Path, options: SourceOptions) -> LoadedData:
    """A folder of MNIST-style IDX files (train-images-idx3-ubyte[.gz], t10k-...) as a source.

    Labels are class ids 0..N-1 with N = `options.num_classes` (10 by default); a folder
    whose path names Fashion-MNIST gets its class names.
    """
    path = Path(path)
    num_classes = options.num_classes or 10
    x_train, y_train = load_idx_split(
        path, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", num_classes
    )
    x_test, y_test = load_idx_split(
        path, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", num_classes
    )
    is_fashion = "fashion" in str(path).lower() and num_classes == 10
    names = list(FASHION_MNIST_CLASSES) if is_fashion else [str(i) for i in range(num_classes)]
    # No ids: positions name the samples (train[12]), which is how IDX users refer to them.
    splits = {
        "train": (x_train[..., None], y_train, None),
        "test": (x_test[..., None], y_test, None),
    }
    return assemble("image", names, splits, str(path), [])
