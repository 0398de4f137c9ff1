"""CSV files and NumPy `.npz` archives as labelled data.

A CSV has a header row, a label column (`--label_column`, default `label`) and either a text
column (`--text_column`, or a column named `text`) or numeric feature columns (every other
column). An optional `split` column (train/val/test) gives the splits; otherwise they come
from a seeded stratified split. Empty feature cells are filled with the training median and
reported. The classes are the distinct labels of the training rows, sorted (integers in numeric
order: labels 1, 3, 5 are the classes "1", "3", "5"). Rows whose label is missing (empty, nan,
NaN, null, None, NA, N/A, or a float NaN in an .npz) are skipped and reported as
`missing_label`, never made a class; so are labels unknown to training or out of range. An
`.npz` holds `x_train`, `y_train`, `x_test`, `y_test` (optionally `x_val`, `y_val` and
`class_names`); it is opened without pickle support, so it cannot run code. This module
reads only; it must not write into the source.

Example:

    >>> import csv
    >>> with open("reviews.csv", "w", newline="") as file:
    ...     writer = csv.writer(file)
    ...     _ = writer.writerow(["review", "stars"])
    ...     for index in range(10):
    ...         writer.writerows([[f"great film {index}", 5], [f"dull film {index}", 1]])
    >>> from trainer.data.types import SourceOptions
    >>> from trainer.data.tabular import load_csv
    >>> data = load_csv("reviews.csv", SourceOptions(text_column="review", label_column="stars"))
    >>> data.kind, data.class_names, len(data.x_train)  # 20% of each class held out to test
    ('text', ['1', '5'], 16)
"""

import csv
import io
import re
from pathlib import Path

import numpy as np

from trainer.data.types import (
    SPLITS,
    LoadedData,
    Problem,
    SourceOptions,
    assemble,
    printable_path,
    require_two_classes,
    split_off_test,
)

# Cells that mean "no value". A missing label skips its row; a missing feature is filled in.
MISSING_LABELS = {"", "na", "n/a", "nan", "null", "none"}
MISSING = MISSING_LABELS | {"?"}
_LARGEST_FIELD = 2**31 - 1  # the csv module's limit is a C long; this fits every platform
_SPLIT_VALUES = {"train": "train", "val": "val", "validation": "val", "test": "test"}


def _read_rows(path: Path) -> tuple[list[dict[str, str]], list[str], list[Problem]]:
    raw = path.read_bytes()
    problems = []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        text = raw.decode("latin-1")
        problems.append(
            Problem(
                "encoding",
                printable_path(path),
                f"not valid UTF-8 (byte "
                f"0x{raw[error.start]:02x} at offset {error.start}); read as Latin-1",
                action="fixed",
            )
        )
    # A cell can be as long as the file (a long review or article): Python's csv module
    # refuses fields over 128 KiB unless its limit is raised.
    csv.field_size_limit(max(csv.field_size_limit(), min(len(text) + 1, _LARGEST_FIELD)))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = list(reader.fieldnames or [])
        if not columns:
            raise ValueError(f"{path} is empty: a CSV needs a header row naming its columns")
        return list(reader), columns, problems
    except csv.Error as error:
        raise ValueError(
            f"{path} is not a readable CSV at line {reader.line_num} ({error}); check the "
            "quoting of that line"
        ) from None


def is_missing_label(value: object) -> bool:
    """True for an empty cell, a missing-value marker (nan, NaN, null, None, NA, N/A) or NaN."""
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return str(value).strip().lower() in MISSING_LABELS


def _labels(
    values: list[str], rows: list[int], splits: list[str], path: str, options: SourceOptions
) -> tuple[list[str], np.ndarray, list[Problem]]:
    """Class names, an int label per row (-1 = skip), and the problems found.

    Class names are the distinct labels of the training rows, sorted: integer labels in
    numeric order (1, 3, 5 are three classes "1", "3", "5"), others as text. With a declared
    `options.num_classes`, integer labels are class ids 0..N-1 instead. Missing labels are
    skipped and reported, never a class.
    """
    problems = []
    labels = np.full(len(values), -1, np.int64)
    cleaned = [None if is_missing_label(value) else value.strip() for value in values]
    present = [value for value in cleaned if value is not None]
    is_integer = bool(present) and all(re.fullmatch(r"[+-]?\d+", value) for value in present)
    train_values = {
        value
        for value, split in zip(cleaned, splits, strict=True)
        if split == "train" and value is not None
    }
    if is_integer and options.num_classes:
        class_names = [str(i) for i in range(options.num_classes)]
        index = {number: number for number in range(options.num_classes)}
    elif is_integer:
        seen = sorted({int(value) for value in train_values})
        class_names = [str(number) for number in seen]
        index = {number: position for position, number in enumerate(seen)}
    else:
        class_names = sorted(train_values)
        index = {name: position for position, name in enumerate(class_names)}
    for position, (value, row, split) in enumerate(zip(cleaned, rows, splits, strict=True)):
        item = f"{path}:row {row}"
        key = int(value) if is_integer and value is not None else value
        if value is None:
            shown = "empty" if not values[position].strip() else f"{values[position].strip()!r}"
            problems.append(
                Problem(
                    "missing_label",
                    item,
                    f"label is missing ({shown}); row skipped",
                    split,
                    "skipped",
                )
            )
        elif key in index:
            labels[position] = index[key]
        elif is_integer and options.num_classes:
            problems.append(
                Problem(
                    "label_out_of_range",
                    item,
                    f"label {key} outside 0..{len(class_names) - 1}",
                    split,
                    "skipped",
                )
            )
        else:
            problems.append(
                Problem(
                    "unknown_label",
                    item,
                    f"label {value!r} never occurs in the training rows",
                    split,
                    "skipped",
                )
            )
    return class_names, labels, problems


def _features(
    rows: list[dict[str, str]], columns: list[str], row_numbers: list[int], path: str
) -> np.ndarray:
    """float32 matrix with NaN for missing cells; ValueError naming a non-numeric cell."""
    matrix = np.full((len(rows), len(columns)), np.nan, np.float32)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            cell = (row.get(column) or "").strip()
            if cell.lower() in MISSING:
                continue
            try:
                matrix[i, j] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path} row {row_numbers[i]}, column {column!r}: {cell!r} is not a number. "
                    "Feature columns must be numeric; name a text column with "
                    "--text_column=NAME, or remove the column."
                ) from None
    return matrix


def _fill_missing(splits: dict, columns: list[str], path: str) -> list[Problem]:
    """Fills NaN cells with the training median of their column, one problem per column."""
    x_train = splits["train"][0]
    medians = np.nan_to_num(np.nanmedian(np.where(np.isnan(x_train).all(0), 0, x_train), axis=0))
    problems = []
    for j, column in enumerate(columns):
        where = []
        for split, (x, _, ids) in splits.items():
            missing = np.flatnonzero(np.isnan(x[:, j]))
            x[missing, j] = medians[j]
            where += [f"{split} {ids[i].rsplit(':', 1)[-1]}" for i in missing]
        if where:
            shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
            problems.append(
                Problem(
                    "missing_values",
                    f"{path}:column {column}",
                    f"{len(where)} "
                    f"empty cell(s) ({shown}); filled with the training median "
                    f"{medians[j]:g}",
                    action="fixed",
                )
            )
    return problems


def load_csv(path: str | Path, options: SourceOptions) -> LoadedData:
    """Reads a labelled CSV (see the module docstring)."""
    path = Path(path)
    rows, columns, problems = _read_rows(path)
    path = printable_path(path)  # it names rows in problems and ids, which must print as UTF-8
    if options.label_column not in columns:
        raise ValueError(
            f"{path} has no label column {options.label_column!r}; its columns are "
            f"{', '.join(columns)}. Name the label column with --label_column=NAME."
        )
    text_column = options.text_column or ("text" if "text" in columns else "")
    if text_column and text_column not in columns:
        raise ValueError(
            f"{path} has no text column {text_column!r}; its columns are {', '.join(columns)}"
        )
    row_numbers = list(range(2, len(rows) + 2))  # row 1 is the header, as a spreadsheet counts
    has_split = "split" in columns and options.label_column != "split"
    splits = [
        _SPLIT_VALUES.get((row.get("split") or "").strip().lower(), "?") if has_split else "train"
        for row in rows
    ]
    for position, split in enumerate(splits):
        if split == "?":
            problems.append(
                Problem(
                    "unknown_split",
                    f"{path}:row {row_numbers[position]}",
                    f"split {rows[position].get('split')!r} is not train, val or test",
                    action="skipped",
                )
            )
    values = [(row.get(options.label_column) or "") for row in rows]
    class_names, labels, label_problems = _labels(values, row_numbers, splits, path, options)
    problems += label_problems
    require_two_classes(class_names, str(path))
    feature_columns = [c for c in columns if c not in (options.label_column, "split", text_column)]
    if text_column:
        x = np.array([row.get(text_column) or "" for row in rows], dtype=object)
        for position, text in enumerate(x):
            if not text.strip() and labels[position] >= 0:
                problems.append(
                    Problem(
                        "empty_text",
                        f"{path}:row {row_numbers[position]}",
                        "text cell is empty",
                        splits[position],
                        "skipped",
                    )
                )
                labels[position] = -1
    else:
        if not feature_columns:
            raise ValueError(
                f"{path} has only a label column; add feature columns or a text column"
            )
        x = _features(rows, feature_columns, row_numbers, path)
    ids = np.array([f"{path}:row {row}" for row in row_numbers], dtype=object)
    usable = (labels >= 0) & (np.array(splits) != "?")
    split_array = np.array(splits)
    if has_split:
        parts = {
            s: (
                x[usable & (split_array == s)],
                labels[usable & (split_array == s)],
                list(ids[usable & (split_array == s)]),
            )
            for s in SPLITS
            if np.any(usable & (split_array == s))
        }
    else:
        parts = split_off_test(x[usable], labels[usable], list(ids[usable]), options)
    if not text_column and "train" in parts:
        problems += _fill_missing(parts, feature_columns, path)
    return assemble("text" if text_column else "tabular", class_names, parts, str(path), problems)


def _npz_kind(x: np.ndarray) -> str:
    if x.dtype.kind in "US":
        return "text"
    return "image" if x.ndim in (3, 4) else "tabular"


def load_npz(path: str | Path, options: SourceOptions) -> LoadedData:
    """Reads x_train, y_train, x_test, y_test (+ x_val, y_val, class_names) from an .npz."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a readable .npz archive ({error})") from None
    with archive:
        keys = set(archive.files)
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in keys]
        if missing:
            raise ValueError(
                f"{path} lacks {', '.join(missing)}; an .npz source holds x_train, y_train, "
                f"x_test, y_test (it has: {', '.join(sorted(keys)) or 'nothing'})"
            )
        arrays = {key: archive[key] for key in keys}
    path = printable_path(path)  # it names rows in problems and ids, which must print as UTF-8
    kind = _npz_kind(arrays["x_train"])
    class_names = _npz_class_names(arrays, path, options.num_classes)
    problems, parts = [], {}
    for split in SPLITS:
        if f"x_{split}" in arrays:
            parts[split] = _npz_split(arrays, split, kind, len(class_names), path, problems)
    if kind == "image" and parts["train"][0].dtype != np.uint8:
        problems += _pixels_to_uint8(parts, path)
    if kind == "tabular":
        problems += _fill_missing(
            parts, [f"feature {j}" for j in range(parts["train"][0].shape[1])], path
        )
    require_two_classes(class_names, str(path))
    return assemble(kind, class_names, parts, str(path), problems)


def _pixels_to_uint8(parts: dict, path: str) -> list[Problem]:
    """Turns float images into uint8 pixels, in place in `parts`, with one scale for every
    split: pixels in [0, 1] (over all splits) are multiplied by 255, others kept as 0..255.
    NaN or infinite pixels are set to 0 first, one `non_finite_pixels` problem per image
    naming the count, so that one bad value neither changes the scale of its split nor
    passes as a number."""
    problems, top = [], 0.0
    for split, (x, y, ids) in parts.items():
        x = np.asarray(x, np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            per_image = bad.reshape(len(x), -1).sum(axis=1)
            for index in np.flatnonzero(per_image):
                problems.append(
                    Problem(
                        "non_finite_pixels",
                        ids[index],
                        f"{int(per_image[index])} NaN or infinite pixel value(s); set to 0",
                        split,
                        "fixed",
                    )
                )
            x = np.where(bad, 0.0, x)
        parts[split] = (x, y, ids)
        top = max(top, float(x.max(initial=0.0)))
    factor = 255.0 if top <= 1.0 else 1.0
    for split, (x, y, ids) in parts.items():
        parts[split] = (np.clip(np.round(x * factor), 0, 255).astype(np.uint8), y, ids)
    return problems


def _float_known(labels: np.ndarray) -> np.ndarray:
    """The labels that are present: float labels may hold NaN for "no label"."""
    return labels[~np.isnan(labels)] if labels.dtype.kind == "f" else labels


def _npz_class_names(arrays: dict, path: str, num_classes: int) -> list[str]:
    labels_all = np.concatenate(
        [arrays[f"y_{s}"].reshape(-1) for s in SPLITS if f"y_{s}" in arrays]
    )
    # Float labels may hold NaN for "no label": those rows are skipped, never a class.
    if labels_all.dtype.kind not in "iuf" or np.any(_float_known(labels_all) % 1):
        raise ValueError(
            f"{path}: labels must be integer class ids (NaN for a missing label), received "
            f"dtype {labels_all.dtype}"
        )
    if "class_names" in arrays:
        return [str(name) for name in arrays["class_names"]]
    train_known = _float_known(arrays["y_train"].reshape(-1))
    num_classes = num_classes or (int(train_known.max()) + 1 if len(train_known) else 0)
    return [str(i) for i in range(num_classes)]


def _npz_split(arrays: dict, split: str, kind: str, num_classes: int, path: str, problems: list):
    """One split's (x, y, ids) with rows of missing or out-of-range labels skipped (and listed)."""
    x, y = arrays[f"x_{split}"], arrays.get(f"y_{split}")
    if y is None or y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1) or len(y) != len(x):
        shape = None if y is None else y.shape
        raise ValueError(
            f"{path}: y_{split} must hold one integer label per row of x_{split} "
            f"{x.shape}, received shape {shape} (one-hot labels: store argmax)"
        )
    y = y.reshape(-1)
    missing = np.flatnonzero(np.isnan(y)) if y.dtype.kind == "f" else np.array([], np.int64)
    problems += [
        Problem(
            "missing_label",
            f"{path}:y_{split}[{i}]",
            "label is NaN (missing); row skipped",
            split,
            "skipped",
        )
        for i in missing
    ]
    y = np.where(np.isin(np.arange(len(y)), missing), -1, np.nan_to_num(y)).astype(np.int64)
    out_of_range = np.setdiff1d(np.flatnonzero((y < 0) | (y >= num_classes)), missing)
    problems += [
        Problem(
            "label_out_of_range",
            f"{path}:y_{split}[{i}]",
            f"label {y[i]} outside 0..{num_classes - 1}",
            split,
            "skipped",
        )
        for i in out_of_range
    ]
    keep = np.setdiff1d(np.arange(len(y)), np.union1d(out_of_range, missing))
    if kind == "image" and x.ndim == 3:
        x = x[..., None]
    if kind == "text":
        x = x.astype(str).astype(object)
    elif kind == "tabular":
        x = x.astype(np.float32)
    return x[keep], y[keep], [f"{path}:x_{split}[{i}]" for i in keep]
