"""The shared vocabulary of the data package: what a loader returns and how it reports.

`LoadedData` (arrays per split, class names, sample ids, problems), `Problem` (one thing wrong
with one item), `SourceOptions` (how to read a source), the split and file-extension names,
and the small helpers every loader uses to build its result. Every other module of
`trainer.data` imports from here and this module imports none of them (only `split` for the
stratified split), so the imports run one way. It must not read files.

Example:

    >>> import numpy as np
    >>> from trainer.data.types import LoadedData
    >>> data = LoadedData("tabular", ["a", "b"], np.zeros((4, 2)), np.array([0, 1, 0, 1]),
    ...                   np.zeros((2, 2)), np.array([0, 1]))
    >>> data.num_classes, data.split_names()
    (2, ['train', 'test'])
"""

import dataclasses
import os
from collections import Counter

import numpy as np

from trainer.data.split import stratified_split
from trainer.resources import check_memory

SPLITS = ("train", "val", "test")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TEXT_EXTENSIONS = (".txt",)


def printable_path(path: "str | os.PathLike") -> str:
    """The path as text that can always be printed and written as UTF-8.

    A file name that is not valid UTF-8 reaches Python with surrogate escapes, which crash
    `print` and JSON/Markdown writers ("'utf-8' codec can't encode ... surrogates"); its bad
    bytes are shown as `\\xff` instead. Valid names come back unchanged.
    """
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


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
    num_classes: int = 0  # declared count: integer labels are ids 0..N-1; 0 = the values seen
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
    train_index, test_index = stratified_split(y, options.test_fraction, options.seed)
    return {
        "train": (x[train_index], y[train_index], [ids[i] for i in train_index]),
        "test": (x[test_index], y[test_index], [ids[i] for i in test_index]),
    }


def check_class_count(class_names: list[str], labels: np.ndarray, source: str) -> None:
    """Refuses class ids far beyond the classes that have examples, before any model is built.

    Labels are class ids 0..N-1, so one stray label (100000 among 0..9) makes a 100,001-class
    model and a 74.5 GiB confusion matrix. Classes numbered by their labels, more than 100 and
    more than 10 times as many as have examples, are such a stray id, never a usable classifier
    (a declared `--num_classes=11` over labels 2, 7 and 10 is still accepted). Any class count whose confusion matrix cannot fit in memory is
    refused too.
    """
    present = np.unique(labels)
    count = len(class_names)
    # Only ids the labels imply are suspect: a source that names its classes (CIFAR-100's meta
    # file, an .npz's class_names) may hold few examples of many real classes.
    numbered = class_names == [str(index) for index in range(count)]
    if numbered and count > max(100, 10 * len(present)):
        largest = ", ".join(str(int(label)) for label in present[::-1][:3])
        raise ValueError(
            f"{source} has {count:,} classes (class ids 0..{count - 1}), but only "
            f"{len(present)} of them have any example (the largest labels: {largest}); a model "
            f"with {count:,} outputs would learn nothing of the others. Labels must be the "
            "class ids 0..N-1 of the classes present: fix or renumber the stray labels"
        )
    check_memory(
        8 * count * count,
        f"a confusion matrix of {count:,} classes",
        f"{source} has {count:,} classes; merge classes or train on fewer",
    )


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
    labels = [arrays[f"y_{split}"].reshape(-1) for split in splits]
    check_class_count(class_names, np.concatenate(labels), source)
    return LoadedData(
        kind=kind,
        class_names=list(class_names),
        source=source,
        ids={split: list(names) for split, (_, _, names) in splits.items() if names is not None},
        problems=list(problems),
        **arrays,
    )
