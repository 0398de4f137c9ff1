"""TensorFlow Datasets by name (`tfds:NAME`), prepared data only unless downloading is allowed.

`tfds.load(..., download=True)` retries the network for minutes on an offline machine, so this
loader never downloads by default: it asks the builder whether the prepared files are in the
data directory and, if not, fails at once naming the folder it searched and how to prepare it.
`SourceOptions.download=True` (`--download=true`) lets TFDS download and prepare. Only
supervised datasets (image or text input and a class label) are supported. This module must
not write anywhere except through TFDS when downloading was asked for.

Example (not run: needs a prepared TFDS data set, which this machine cannot download):

    from trainer.data.types import SourceOptions
    from trainer.data.tfds_source import load_tfds
    data = load_tfds("mnist", SourceOptions(tfds_dir="/data/tfds"))
"""

import os
from pathlib import Path

import numpy as np

from trainer.data.types import LoadedData, SourceOptions, assemble

_SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def default_data_dir() -> str:
    """Where TFDS looks when no directory is given: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    return os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())


# Seconds to wait for one download host before calling the machine offline: TFDS itself
# retries every file for minutes (urllib3 warnings) before it gives up.
CONNECT_TIMEOUT = 5.0
_FALLBACK_HOST = ("storage.googleapis.com", 443)


def _download_hosts(builder) -> list[tuple[str, int]]:
    """(host, port) of the first few URLs the dataset downloads from (from its checksums
    file), or Google Cloud Storage, where most TFDS data sets are mirrored."""
    from urllib.parse import urlsplit

    try:
        urls = list(builder.url_infos or {})
    except Exception:  # noqa: BLE001  (any builder without a checksums file)
        urls = []
    hosts = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname:
            port = parts.port or (80 if parts.scheme == "http" else 443)
            if (parts.hostname, port) not in hosts:
                hosts.append((parts.hostname, port))
    return hosts[:3] or [_FALLBACK_HOST]


def _check_reachable(name: str, hosts: list[tuple[str, int]], data_dir: str) -> None:
    """Fails at once when none of `hosts` can be reached (an offline machine), instead of
    letting TFDS retry each download for minutes.

    Raises:
        FileNotFoundError: no host answered within `CONNECT_TIMEOUT` seconds.
    """
    import socket

    errors = []
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                return
        except OSError as error:
            errors.append(f"{host}:{port}: {error.strerror or error}")
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in {data_dir}, and --download=true cannot "
        f"download it: this machine reaches none of its download hosts ({'; '.join(errors)}). "
        f"Prepare it where there is internet with `tfds build {name} --data_dir=DIR`, copy "
        "that folder here and pass --tfds_dir=DIR"
    )


def load_tfds(name: str, options: SourceOptions) -> LoadedData:
    """Loads the prepared TFDS dataset `name` ("mnist", "mnist:3.0.1") into memory.

    Raises:
        ValueError: TFDS knows no dataset by that name (or that version, or its namespace's
            package is missing), or it is not a supervised classifier data set with train and
            test splits.
        FileNotFoundError: not prepared in the data directory and `download` is false, or
            downloading was asked for and no download host can be reached.
    """
    import tensorflow_datasets as tfds

    data_dir = options.tfds_dir or default_data_dir()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"TFDS has no dataset named {name!r}; see `tfds.list_builders()` for the names"
        ) from None
    except (AssertionError, ImportError, ValueError, KeyError) as error:
        # A version TFDS does not have, a namespace (huggingface:, kaggle:) whose package or
        # code is missing: TFDS's own words, in one line.
        cause = " ".join(str(error).split())[:300]
        raise ValueError(
            f"TFDS cannot build the dataset {name!r}: {type(error).__name__}: {cause}"
        ) from None
    if not builder.is_prepared():
        if not options.download:
            raise FileNotFoundError(
                f"TFDS dataset {name!r} is not prepared in {builder.data_dir} (data directory "
                f"searched: {data_dir}). Prepare it where there is internet with "
                f"`tfds build {name} --data_dir={data_dir}` and copy that folder here, set "
                "--tfds_dir=DIR to where it is, or pass --download=true to let TFDS download it."
            )
        _check_reachable(name, _download_hosts(builder), data_dir)
        builder.download_and_prepare()
    info = builder.info
    if not info.supervised_keys or len(info.supervised_keys) != 2:
        raise ValueError(f"TFDS dataset {name!r} has no (input, label) supervised keys")
    input_key, label_key = info.supervised_keys
    label_feature = info.features[label_key]
    class_names = list(getattr(label_feature, "names", []) or [])
    if not class_names:
        raise ValueError(f"TFDS dataset {name!r}: label {label_key!r} is not a class label")
    feature_type = type(info.features[input_key]).__name__
    kind = {"Image": "image", "Text": "text"}.get(feature_type, "tabular")
    parts = {}
    for split_name in info.splits:
        split = _SPLIT_NAMES.get(split_name)
        if split is None:
            continue
        dataset = builder.as_dataset(split=split_name, as_supervised=True)
        xs, ys = [], []
        for x, y in tfds.as_numpy(dataset):
            xs.append(x.decode("utf-8", errors="replace") if kind == "text" else x)
            ys.append(int(y))
        parts[split] = (
            xs,
            np.array(ys, np.int64),
            [f"tfds:{name}/{split_name}[{i}]" for i in range(len(xs))],
        )
    problems = []
    if kind == "image":
        from trainer.data.images import uniform_images

        everything = [image for xs, _, _ in parts.values() for image in xs]
        names = [item for _, _, ids in parts.values() for item in ids]
        splits = [split for split, (xs, _, _) in parts.items() for _ in xs]
        stacked, problems = uniform_images(everything, names, splits, options)
        start = 0
        for split, (xs, ys, ids) in parts.items():
            parts[split] = (stacked[start : start + len(xs)], ys, ids)
            start += len(xs)
    else:
        dtype = object if kind == "text" else np.float32
        parts = {
            split: (np.array(xs, dtype=dtype), ys, ids) for split, (xs, ys, ids) in parts.items()
        }
    return assemble(kind, class_names, parts, f"tfds:{name}", problems)
