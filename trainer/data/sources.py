"""One entry point for every data source: `load_source(spec)` returns a `LoadedData`.

A spec is a folder of class subfolders (images or `.txt` files, `aclImdb` included), a `.csv`,
a `.npz`, a CIFAR-10/100 python tarball or its extracted folder, a folder of IDX files, or
`tfds:NAME`. Every loader returns arrays in memory plus the list of problems it met per item
(skipped, fixed or only reported), so that `trainer.data.check` can report them by path. This
module only picks the loader with a plain `if` chain; the result types live in `types` (and are
re-exported here), the formats in `folders`, `tabular`, `cifar`, `idx`, `tfds_source`. It must
never write into a source.

Example:

    >>> import numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> for index in range(40):  # photos/cat/0.png ... photos/dog/39.png, 8x8 grey images
    ...     folder = Path("photos", "cat" if index % 2 else "dog")
    ...     folder.mkdir(parents=True, exist_ok=True)
    ...     pixels = np.full((8, 8), 5 * index + 40 * (index % 2), np.uint8)
    ...     Image.fromarray(pixels).save(folder / f"{index}.png")
    >>> from trainer.data.sources import SourceOptions, load_source
    >>> data = load_source("photos", SourceOptions(image_size=16))
    >>> data.kind, data.class_names, data.x_train.shape, len(data.problems)
    ('image', ['cat', 'dog'], (32, 16, 16, 1), 0)
"""

from pathlib import Path

from trainer.data.types import (  # noqa: F401  (re-exported: the names users import from here)
    IMAGE_EXTENSIONS,
    SPLITS,
    TEXT_EXTENSIONS,
    LoadedData,
    Problem,
    SourceOptions,
    class_counts,
)


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
    from trainer.outputs import trainer_folder

    made = trainer_folder(path)
    if made:
        raise ValueError(
            f"data source {spec!r} is {made}, not data: pass the folder of your images or "
            "texts, or the file, that the run was trained on"
        )
    from trainer.data.cifar import is_cifar_folder, load_cifar

    if is_cifar_folder(path):
        return load_cifar(path, options)
    from trainer.data.idx import is_idx_folder, load_idx_folder

    if is_idx_folder(path):
        return load_idx_folder(path, options)
    from trainer.data.folders import load_folder

    return load_folder(path, options)
