"""What every recipe does to its data before training: load, check, report, clean, split.

The check runs in fast mode (no label-error search) unless label errors are to be dropped;
its warnings go to the log and its report into the run directory, and what it found is
dropped from the in-memory data only. A validation split is carved from train (stratified,
seeded) when the source has none, so the test set is never used to select anything. This
module must not build models or datasets.

Example:

    >>> import numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> for index in range(40):  # photos/cat/0.png ... photos/dog/39.png, 8x8 grey images
    ...     folder = Path("photos", "cat" if index % 2 else "dog")
    ...     folder.mkdir(parents=True, exist_ok=True)
    ...     pixels = np.full((8, 8), 5 * index + 40 * (index % 2), np.uint8)
    ...     Image.fromarray(pixels).save(folder / f"{index}.png")
    >>> from trainer.data.prepare import prepare_data
    >>> from trainer.data.sources import SourceOptions
    >>> data, report = prepare_data("photos", SourceOptions(image_size=16), "runs/demo")
    >>> len(data.x_train), len(data.x_val), len(data.x_test)  # 10% of train validates
    (28, 4, 8)
    >>> sorted(path.name for path in Path("runs/demo").iterdir())
    ['data_report.json', 'data_report.md']
"""

import dataclasses
from pathlib import Path

from trainer.data.check import DataReport, check_data, clean_data, write_data_report
from trainer.data.sources import load_source
from trainer.data.split import stratified_split
from trainer.data.types import LoadedData, SourceOptions


@dataclasses.dataclass
class Cleaning:
    """Which problems found by the data check are dropped before training."""

    drop_duplicates: bool = True  # extra copies of a sample within a split
    drop_leaks: bool = True  # training copies of samples that are also in val/test
    drop_label_errors: bool = False  # likely label errors (runs the slower full check)


def with_validation(data: LoadedData, fraction: float, seed: int = 0) -> LoadedData:
    """`data` with a stratified validation split carved from train if it has none."""
    if data.x_val is not None or fraction <= 0:
        return data
    if not fraction <= 0.5:  # also NaN
        raise ValueError(
            f"val_fraction={fraction} would hold out more than half of the "
            f"{len(data.y_train)} training examples for validation; choose at most 0.5 "
            "(0.1 is usual)"
        )
    kept, held = stratified_split(data.y_train, fraction, seed)
    if len(held) == 0:
        print(
            f"WARNING val_fraction={fraction} held out no validation examples: no class has two "
            f"of the {len(data.y_train)} training examples. Training goes on without "
            "validation (no best epoch is chosen); add examples for a validation split"
        )
    ids = data.split_ids("train")
    return dataclasses.replace(
        data,
        x_train=data.x_train[kept],
        y_train=data.y_train[kept],
        x_val=data.x_train[held],
        y_val=data.y_train[held],
        ids={**data.ids, "train": [ids[i] for i in kept], "val": [ids[i] for i in held]},
    )


def prepare_data(
    spec: str,
    options: SourceOptions,
    run_dir: str | Path | None = None,
    cleaning: Cleaning | None = None,
    val_fraction: float = 0.1,
) -> tuple[LoadedData, DataReport]:
    """Loads `spec`, checks it, prints warnings, writes `data_report.json/.md` into `run_dir`
    (if given; recipes' `build` passes none and the run's `finish` writes the report), drops
    what `cleaning` asks for, and adds a validation split. Returns (data, report)."""
    if not spec:
        raise ValueError(
            "no data source given: pass --data=PATH (a folder, .csv, .npz, CIFAR tarball) "
            "or --data=tfds:NAME"
        )
    cleaning = cleaning or Cleaning()
    data = load_source(spec, options)
    report = check_data(data, label_errors=cleaning.drop_label_errors, seed=options.seed)
    if run_dir is not None:
        write_data_report(report, run_dir)
    where = f" (see {Path(run_dir) / 'data_report.md'})" if run_dir is not None else ""
    for line in report.warnings():
        print(f"WARNING {line}{where}")
    data = clean_data(
        data,
        report,
        drop_duplicates=cleaning.drop_duplicates,
        drop_leaks=cleaning.drop_leaks,
        drop_label_errors=cleaning.drop_label_errors,
    )
    return with_validation(data, val_fraction, options.seed), report
