"""One entry point for every data source: `load_source(spec)` returns a `LoadedData`.

A spec is a folder of class subfolders (images or `.txt` files, `aclImdb` included), a `.csv`,
a `.npz`, a CIFAR-10/100 python tarball or its extracted folder, a folder of IDX files, or
`tfds:NAME`. Every loader returns arrays in memory plus the list of problems it met per item
(skipped, fixed or only reported), so that `trainer.data.check` can report them by path. This
module owns the result types and picks the loader with a plain `if` chain; the formats live in
`folders`, `tabular`, `cifar`, `tfds_source`. It must never write into a source.

Example:

    from trainer.data.sources import SourceOptions, load_source
    data = load_source("path/to/photos", SourceOptions(image_size=64))
    print(data.kind, data.class_names, data.x_train.shape, len(data.problems))
"""

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEXT_EXTENSIONS = (".txt",)


@dataclasses.dataclass
class Problem:
    """One thing wrong with one item (a file, a CSV row, an array row) or with a whole split."""

    check: str  # what kind: undecodable, empty_file, duplicate, leak, label_out_of_range...
    item: str  # a path, "data.csv:row 7", "data.npz:y_train[3]", or a split/class name
    detail: str  # what was found, in words, with the values involved
    split: str = ""  # train, val or test, when the item belongs to one
    action: str = "reported"  # skipped (not loaded), fixed (loaded after a repair), reported

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SourceOptions:
    """How to read a source. Every field has a default that suits most sources."""

    image_size: int = 0  # resize images to image_size x image_size; 0 = the most common size
    channels: int = 0  # 1 or 3 image channels; 0 = 3 if any image has colour, else 1
    test_fraction: float = 0.2  # share held out as test when the source has no test split
    seed: int = 0  # seeds the stratified train/test split
    label_column: str = "label"  # CSV column holding the labels
    text_column: str = ""  # CSV column holding text; "" = a column named "text" if any
    num_classes: int = 0  # declared class count for integer labels; 0 = largest label + 1
    download: bool = False  # TFDS: allow downloading and preparing a missing dataset
    tfds_dir: str = ""  # TFDS data directory; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    md5: str = ""  # expected md5 of a CIFAR tarball; "" = the one the CIFAR site publishes


@dataclasses.dataclass
class LoadedData:
    """A labelled data set in memory, split into train, optional val, and test.

    `x_*` are uint8 NHWC images (kind "image"), object arrays of str (kind "text") or float32
    rows (kind "tabular"); `y_*` are int64 class ids into `class_names`. `ids` names every
    sample per split (its path or row) in the same order, and `problems` lists what loading
    skipped or fixed.
    """

    kind: str
    class_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    source: str = ""
    ids: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split_names(self) -> list[str]:
        """The splits present, in the order train, val, test."""
        return [name for name in SPLITS if getattr(self, f"x_{name}") is not None]

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of one split."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, received {split!r}")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def split_ids(self, split: str) -> list[str]:
        """The name of each sample of `split`; `split[index]` where the loader gave none."""
        x, _ = self.arrays(split)
        names = self.ids.get(split)
        return list(names) if names is not None else [f"{split}[{i}]" for i in range(len(x))]

    def without(self, split: str, indices) -> "LoadedData":
        """A copy with the samples at `indices` removed from `split` (the source is untouched)."""
        x, y = self.arrays(split)
        keep = np.ones(len(x), dtype=bool)
        keep[np.asarray(list(indices), dtype=np.int64)] = False
        ids = dict(self.ids)
        ids[split] = [name for name, kept in zip(self.split_ids(split), keep, strict=True) if kept]
        return dataclasses.replace(self, **{f"x_{split}": x[keep], f"y_{split}": y[keep]}, ids=ids)


def class_counts(labels: np.ndarray, class_names: list[str]) -> dict[str, int]:
    """Samples per class name, zero for classes that have none."""
    counts = Counter(int(label) for label in np.asarray(labels))
    return {name: counts.get(index, 0) for index, name in enumerate(class_names)}


def require_two_classes(class_names: list[str], where: str) -> None:
    """Raises ValueError if fewer than two classes were found: nothing to classify."""
    if len(class_names) < 2:
        found = f"only {class_names[0]!r}" if class_names else "none"
        raise ValueError(
            f"{where} has {len(class_names)} class(es) with data ({found}); a classifier needs "
            "at least two. Add a subfolder (or label value) per class."
        )


def split_off_test(
    x: np.ndarray, y: np.ndarray, ids: list[str], options: SourceOptions
) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Seeded stratified split of one pool into train and test (for sources without a test)."""
    from trainer.data.split import stratified_split

    train_index, test_index = stratified_split(y, options.test_fraction, options.seed)
    return {
        "train": (x[train_index], y[train_index], [ids[i] for i in train_index]),
        "test": (x[test_index], y[test_index], [ids[i] for i in test_index]),
    }


def assemble(
    kind: str,
    class_names: list[str],
    splits: dict[str, tuple[np.ndarray, np.ndarray, list[str] | None]],
    source: str,
    problems: list[Problem],
) -> LoadedData:
    """Builds a LoadedData from {split: (x, y, ids)}; train and test are required."""
    for required in ("train", "test"):
        if required not in splits or len(splits[required][0]) == 0:
            raise ValueError(
                f"{source} has no usable {required} samples after skipping bad items "
                f"({len(problems)} problems, e.g. {problems[0].detail if problems else 'none'})"
            )
    arrays: dict = {}
    for split, (x, y, _) in splits.items():
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = np.asarray(y, dtype=np.int64)
    return LoadedData(
        kind=kind,
        class_names=list(class_names),
        source=source,
        ids={split: list(names) for split, (_, _, names) in splits.items() if names is not None},
        problems=list(problems),
        **arrays,
    )


def _is_idx_folder(path: Path) -> bool:
    return any(
        (path / name).is_file()
        for name in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")
    )


def load_idx_folder(path: Path, options: SourceOptions) -> LoadedData:
    """A folder of MNIST-style IDX files (train-images-idx3-ubyte[.gz], t10k-...)."""
    from trainer.data.idx import FASHION_MNIST_CLASSES, load_idx_split

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


def load_source(spec: str | Path, options: SourceOptions | None = None) -> LoadedData:
    """Loads any supported source into memory (see the module docstring for the forms).

    Args:
        spec: a folder, a .csv, a .npz, a CIFAR .tar.gz, or "tfds:NAME".
        options: how to read it; `SourceOptions()` by default.

    Raises:
        FileNotFoundError: the path does not exist, or a TFDS dataset is not prepared.
        ValueError: the source cannot be used as a whole (no classes, one class, a CSV without
            its label column, a tarball with the wrong checksum...). Single bad items never
            raise: they are skipped and listed in `LoadedData.problems`.
    """
    options = options or SourceOptions()
    spec = str(spec)
    if spec.startswith("tfds:"):
        from trainer.data.tfds_source import load_tfds

        return load_tfds(spec[len("tfds:") :], options)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"data source {spec!r} does not exist. Pass a folder (one subfolder per class, or "
            "train/ and test/ folders of them), a .csv, a .npz, a CIFAR python tarball or "
            "folder, a folder of IDX files, or tfds:NAME."
        )
    name = path.name.lower()
    if path.is_file():
        if name.endswith(".csv"):
            from trainer.data.tabular import load_csv

            return load_csv(path, options)
        if name.endswith(".npz"):
            from trainer.data.tabular import load_npz

            return load_npz(path, options)
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            from trainer.data.cifar import load_cifar

            return load_cifar(path, options)
        raise ValueError(
            f"cannot read {spec!r}: a file source must end in .csv, .npz, .tar.gz, .tgz or .tar"
        )
    from trainer.data.cifar import is_cifar_folder, load_cifar

    if is_cifar_folder(path):
        return load_cifar(path, options)
    if _is_idx_folder(path):
        return load_idx_folder(path, options)
    from trainer.data.folders import load_folder

    return load_folder(path, options)
