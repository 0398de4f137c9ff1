"""Folders of class subfolders: images (png/jpg/bmp/gif) or text files (`.txt`, aclImdb).

`root/<class>/<files>` is one pool that is split into train and test by a seeded stratified
split; `root/train/<class>/...` and `root/test/<class>/...` (optionally `root/val/...`) are
read as those splits. Class folders are searched recursively, following symbolic links;
hidden files are ignored, and so is a class folder named `unsup` (aclImdb's unlabelled
reviews). What is not data is skipped and listed by path, never read as a class or a sample:
folders trainer made (runs, a `runs` folder of them, tuning and report folders;
`trainer.outputs.trainer_folder`) and symbolic links that lead back into the data or to a
folder they are in (links to folders outside the data are followed).
Images are decoded with `tf.io`, converted to one channel count and resized to one size; text
is read as UTF-8, or as Latin-1 with a reported problem, and a .txt file holding binary data
(NUL or many control bytes) is skipped. Bad files are skipped and listed by path, never fatal.
This module reads only; it must not write into the folder.

Example:

    >>> from pathlib import Path
    >>> for split in ("train", "test"):  # the aclImdb layout: train/pos, train/neg, test/...
    ...     for label, words in (("pos", "a great film"), ("neg", "a dull film")):
    ...         folder = Path("reviews", split, label)
    ...         folder.mkdir(parents=True)
    ...         for index in range(3):
    ...             _ = (folder / f"{index}.txt").write_text(f"{words} number {split} {index}")
    >>> from trainer.data.folders import load_folder
    >>> from trainer.data.types import SourceOptions
    >>> data = load_folder("reviews", SourceOptions())
    >>> data.kind, data.class_names, len(data.x_train), len(data.x_test)
    ('text', ['neg', 'pos'], 6, 6)
"""

import os
from pathlib import Path

import numpy as np

from trainer.data.images import decode_image, uniform_images
from trainer.data.types import (
    IMAGE_EXTENSIONS,
    TEXT_EXTENSIONS,
    LoadedData,
    Problem,
    SourceOptions,
    assemble,
    printable_path,
    require_two_classes,
    split_off_test,
)
from trainer.outputs import trainer_folder

SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val", "test": "test"}
IGNORED_CLASS_FOLDERS = ("unsup",)  # aclImdb: unlabelled reviews


def _not_data(folder: Path, root: Path) -> tuple[str, str]:
    """(check, reason) when `folder` must not be read as data, else ("", ""): a folder
    trainer made (a run, a search, a report), or a symbolic link that leads back into the
    data `root` or to a folder it is in (reading it would repeat files under another class,
    or never end). A link to a folder outside the data is followed."""
    if folder.is_symlink():
        target = Path(os.path.realpath(folder))
        here = Path(os.path.realpath(folder.parent))
        data = Path(os.path.realpath(root))
        if target == here or target in here.parents:
            return "symlink_loop", f"symbolic link to {printable_path(target)}, a folder it is in"
        if target == data or data in target.parents:
            return (
                "symlink_loop",
                f"symbolic link to {printable_path(target)}, inside the data: its files would "
                "be read twice",
            )
    made = trainer_folder(folder)
    if made:
        return "not_data", f"{made}, not data"
    return "", ""


def _skipped(folder: Path, check: str, reason: str, split: str) -> Problem:
    shown = "" if split == "pool" else split
    return Problem(check, printable_path(folder), reason, shown, "skipped")


def _class_folders(
    directory: Path, root: Path, problems: list | None = None, split: str = ""
) -> list[Path]:
    """The class folders of `directory` (in the data `root`); folders that are not data are
    left out and, when `problems` is given, listed there by path."""
    folders = []
    for child in sorted(directory.iterdir()):
        if not child.is_dir() or child.name.startswith(".") or child.name in IGNORED_CLASS_FOLDERS:
            continue
        check, reason = _not_data(child, root)
        if check:
            if problems is not None:
                problems.append(_skipped(child, check, reason, split))
            continue
        folders.append(child)
    return folders


def _files(folder: Path, root: Path, problems: list, split: str) -> list[Path]:
    """Every visible file under `folder` (in the data `root`), following symbolic links to
    folders outside the data, except inside folders that are not data (`_not_data`) and
    folders already read through another link."""
    found, seen = [], {os.path.realpath(folder)}
    for current, subfolders, names in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(subfolders):
            child = Path(current, name)
            if name.startswith("."):
                continue
            check, reason = _not_data(child, root)
            real = os.path.realpath(child)
            if not check and real in seen:
                check, reason = "symlink_loop", f"leads to {printable_path(real)}, read already"
            if check:
                problems.append(_skipped(child, check, reason, split))
                continue
            seen.add(real)
            kept.append(name)
        subfolders[:] = kept
        found += [
            Path(current, name)
            for name in names
            if not name.startswith(".") and Path(current, name).is_file()
        ]
    return sorted(found)


def _layout(root: Path) -> dict[str, Path]:
    """{split: folder of class folders}; {"pool": root} when the splits are not given."""
    splits = {
        SPLIT_FOLDERS[child.name]: child
        for child in _class_folders(root, root)
        if child.name in SPLIT_FOLDERS
    }
    if "train" in splits:
        return splits  # a train/ without test/ gets its test split carved out below
    return {"pool": root}


def _kind(files: list[Path], root: Path) -> str:
    images = sum(path.suffix.lower() in IMAGE_EXTENSIONS for path in files)
    texts = sum(path.suffix.lower() in TEXT_EXTENSIONS for path in files)
    if images == 0 and texts == 0:
        raise ValueError(
            f"{printable_path(root)} holds no image ({', '.join(IMAGE_EXTENSIONS)}) or text (.txt) files in its "
            "class subfolders; expected ROOT/<class>/<files> or ROOT/train/<class>/<files>"
        )
    return "image" if images >= texts else "text"


# Control characters (other than tab, newlines, form feed and escape) that real text holds
# rarely; a file where more than this share of the bytes are such is binary data, not text.
_CONTROL_BYTES = bytes(sorted(set(range(32)) - {9, 10, 11, 12, 13, 27})) + b"\x7f"
MAX_CONTROL_SHARE = 0.01


def binary_reason(raw: bytes) -> str:
    """Why `raw` is not text ("NUL bytes", "12% control bytes"), or "" when it reads as text:
    a file named .txt that holds an image, an archive or random bytes must not train a model.

    Example:

        >>> from trainer.data.folders import binary_reason
        >>> binary_reason("caf\u00e9 au lait".encode("latin-1")), binary_reason(bytes(range(256)))
        ('', 'binary data (NUL bytes), not text')
    """
    if b"\x00" in raw:
        return "binary data (NUL bytes), not text"
    control = len(raw) - len(raw.translate(None, _CONTROL_BYTES))
    if raw and control / len(raw) > MAX_CONTROL_SHARE:
        return f"binary data ({control / len(raw):.0%} control bytes), not text"
    return ""


def _read_text(path: Path) -> tuple[str | None, str, bool, str]:
    """(text, problem, skipped, check): UTF-8 first, Latin-1 as the repair for other
    encodings; binary data (NUL or many control bytes) is skipped as undecodable."""
    raw = path.read_bytes()
    if not raw.strip():
        return None, "empty file" if not raw else "file holds only whitespace", True, "empty_file"
    binary = binary_reason(raw)
    if binary:
        return None, binary, True, "undecodable"
    try:
        return raw.decode("utf-8-sig"), "", False, "encoding"
    except UnicodeDecodeError as error:
        bad = raw[error.start]
        return (
            raw.decode("latin-1"),
            (f"not valid UTF-8 (byte 0x{bad:02x} at offset {error.start}); read as Latin-1"),
            False,
            "encoding",
        )


def _collect(layout: dict[str, Path], root: Path) -> tuple[list, list[Problem], dict]:
    """Lists (split, class, path) for every file and the class folders per split."""
    entries, problems, classes = [], [], {}
    for split, folder in layout.items():
        classes[split] = []
        for class_folder in _class_folders(folder, root, problems, split):
            files = _files(class_folder, root, problems, split)
            if not files:
                problems.append(
                    Problem(
                        "empty_class",
                        printable_path(class_folder),
                        "class folder holds no files; class left out",
                        "" if split == "pool" else split,
                        "skipped",
                    )
                )
                continue
            class_name = printable_path(class_folder.name)
            classes[split].append(class_name)
            entries += [(split, class_name, path) for path in files]
    if not any(classes.values()):
        raise ValueError(
            f"{printable_path(root)} has no class subfolders with files; expected ROOT/<class>/<files> (one "
            "subfolder per class) or ROOT/train/<class>/... and ROOT/test/<class>/..."
        )
    return entries, problems, classes


def load_folder(root: str | Path, options: SourceOptions) -> LoadedData:
    """Reads a folder of class subfolders (see the module docstring). Raises ValueError for an
    empty folder, a single class, or no readable file; skips and reports bad files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    layout = _layout(root)
    entries, problems, classes = _collect(layout, root)
    kind = _kind([path for _, _, path in entries], root)
    class_names = sorted(classes["train" if "train" in classes else "pool"])
    require_two_classes(class_names, printable_path(root))
    index = {name: i for i, name in enumerate(class_names)}
    samples, labels, names, splits = _read_entries(entries, kind, index, problems)
    if not samples:
        raise ValueError(
            f"no readable {kind} file in {printable_path(root)}; {len(problems)} files were skipped"
        )
    if kind == "image":
        x, image_problems = uniform_images(
            samples, names, [s if s != "pool" else "" for s in splits], options
        )
        problems += image_problems
    else:
        x = np.array(samples, dtype=object)
    parts = _parts(layout, x, np.array(labels, np.int64), np.array(names, dtype=object), splits)
    if "pool" in layout or "test" not in layout:
        x_pool, y_pool, names_pool = parts.pop("pool")
        val = parts.get("val")
        parts = split_off_test(x_pool, y_pool, names_pool, options)
        if val is not None:
            parts["val"] = val
    return assemble(kind, class_names, parts, printable_path(root), problems)


def _read_entries(entries, kind: str, index: dict[str, int], problems: list):
    """Decodes each (split, class, path) entry; bad files become problems, never samples."""
    extensions = IMAGE_EXTENSIONS if kind == "image" else TEXT_EXTENSIONS
    samples, labels, names, splits = [], [], [], []
    for split, class_name, path in entries:
        shown_split = "" if split == "pool" else split
        if path.suffix.lower() not in extensions:
            problems.append(
                Problem(
                    "unsupported_file",
                    printable_path(path),
                    f"not a {kind} file ({', '.join(extensions)}); ignored",
                    shown_split,
                    "skipped",
                )
            )
            continue
        if class_name not in index:
            problems.append(
                Problem(
                    "unknown_label",
                    printable_path(path),
                    f"class {class_name!r} has no training folder; skipped",
                    shown_split,
                    "skipped",
                )
            )
            continue
        if kind == "image":
            sample, why = decode_image(path.read_bytes())
            skipped = sample is None
            check = "empty_file" if why == "zero-byte file" else "undecodable"
        else:
            sample, why, skipped, check = _read_text(path)
        if why:
            problems.append(
                Problem(
                    check, printable_path(path), why, shown_split, "skipped" if skipped else "fixed"
                )
            )
        if skipped:
            continue
        samples.append(sample)
        labels.append(index[class_name])
        names.append(printable_path(path))
        splits.append(split)
    return samples, labels, names, splits


def _parts(layout, x: np.ndarray, y: np.ndarray, names: np.ndarray, splits: list[str]) -> dict:
    """{split: (x, y, names)}; the pooled (unsplit) files under "pool" when there is no test split."""
    splits_array = np.array(splits)
    if "pool" in layout or "test" not in layout:
        chosen = splits_array == ("pool" if "pool" in layout else "train")
        parts = {"pool": (x[chosen], y[chosen], list(names[chosen]))}
        if "val" in layout:
            val = splits_array == "val"
            parts["val"] = (x[val], y[val], list(names[val]))
        return parts
    parts = {}
    for split in ("train", "val", "test"):
        if split in layout:
            chosen = splits_array == split
            parts[split] = (x[chosen], y[chosen], list(names[chosen]))
    return parts
