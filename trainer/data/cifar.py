"""CIFAR-10 and CIFAR-100 in their "python version" format, from the tarball or its folder.

CIFAR-10: `cifar-10-batches-py/` with `data_batch_1`..`data_batch_5`, `test_batch` and
`batches.meta`; CIFAR-100: `cifar-100-python/` with `train`, `test` and `meta` (fine labels).
Each batch is a pickled dict with `data` (N x 3072 uint8, channel-major) and labels.

Safety: a tarball's md5 is checked against the one the CIFAR site publishes before anything
is read (or `SourceOptions.md5` for a tarball you made). The members are read into memory,
never extracted, and a member that is a link or whose path is absolute or climbs with `..` is
refused, so nothing can be written outside a target. The pickles are loaded by an unpickler
that only builds dicts, lists, strings and NumPy arrays, so a crafted file cannot run code.
This module reads only.

Example (not run: needs the CIFAR-10 tarball, which this machine cannot download):

    from trainer.data.cifar import load_cifar
    from trainer.data.types import SourceOptions
    data = load_cifar("cifar-10-python.tar.gz", SourceOptions())
    print(data.x_train.shape, data.class_names[:3])  # (50000, 32, 32, 3) ['airplane', ...]
"""

import hashlib
import io
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from trainer.data.types import LoadedData, Problem, SourceOptions, assemble

PUBLISHED_MD5 = {
    "cifar-10": "c58f30108f718f92721af3b95e74349a",  # cifar-10-python.tar.gz
    "cifar-100": "eb9058c3a382ffc7106e4002c42a8d85",  # cifar-100-python.tar.gz
}
FOLDERS = {"cifar-10": "cifar-10-batches-py", "cifar-100": "cifar-100-python"}
FILES = {
    "cifar-10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                 "meta": "batches.meta"},
    "cifar-100": {"train": ["train"], "test": ["test"], "meta": "meta"},
}  # fmt: skip  # a table: rows read better than one item per line
_LABEL_KEYS = {
    "cifar-10": (b"labels", b"label_names"),
    "cifar-100": (b"fine_labels", b"fine_label_names"),
}
_HOW_TO_GET = (
    "Download cifar-10-python.tar.gz or cifar-100-python.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html and pass the tarball (or the folder it "
    "unpacks to) as --data=PATH."
)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds only what CIFAR batches contain: NumPy arrays inside plain dicts and lists."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    }  # fmt: skip  # a table: rows read better than one item per line

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # any malformed pickle: name the file, never a deep traceback
        raise ValueError(
            f"{where} is not a CIFAR python batch ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(batch, dict):
        raise ValueError(f"{where} should hold a dict, holds {type(batch).__name__}")
    return batch


def md5_of(path: Path) -> str:
    """The md5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_cifar_folder(path: Path) -> bool:
    """True for an extracted CIFAR folder, or a folder holding one."""
    return any(
        (path / meta).is_file() or (path / FOLDERS[variant] / meta).is_file()
        for variant, meta in (("cifar-10", "batches.meta"), ("cifar-100", "meta"))
    )


def _safe_member_name(member: tarfile.TarInfo, tarball: Path) -> str:
    name = PurePosixPath(member.name)
    if member.issym() or member.islnk() or name.is_absolute() or ".." in name.parts:
        raise ValueError(
            f"{tarball} has an unsafe member {member.name!r} (a link, an absolute path or a "
            "path climbing out with '..'); refusing to read it. Download the tarball again."
        )
    return name.name


def verify_md5(path: Path, expected: str = "") -> str:
    """Checks a tarball before anything reads it: against `expected`, or else against the md5
    of either published CIFAR tarball. Returns the md5; raises ValueError on a mismatch."""
    actual = md5_of(path)
    allowed = [expected.lower()] if expected else list(PUBLISHED_MD5.values())
    if actual not in allowed:
        wanted = (
            f"expected {expected} as given by --md5"
            if expected
            else "expected "
            + " or ".join(f"{md5} ({variant})" for variant, md5 in PUBLISHED_MD5.items())
        )
        raise ValueError(
            f"{path} has md5 {actual}, {wanted}: the file is corrupt, truncated or not the "
            f"official one. {_HOW_TO_GET} If you built it yourself, pass its md5 with --md5=HEX."
        )
    return actual


def _read_tarball(path: Path, options: SourceOptions) -> tuple[str, dict[str, bytes]]:
    verify_md5(path, options.md5)
    try:
        archive = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise ValueError(f"{path} is not a readable tarball ({error}). {_HOW_TO_GET}") from None
    with archive:
        members = archive.getmembers()
        names = {
            _safe_member_name(member, path): member for member in members if not member.isdir()
        }
        top = {PurePosixPath(member.name).parts[0] for member in members if member.name}
        variant = next((v for v, folder in FOLDERS.items() if folder in top), None)
        if variant is None:
            raise ValueError(
                f"{path} holds neither cifar-10-batches-py/ nor cifar-100-python/. {_HOW_TO_GET}"
            )
        wanted = [*FILES[variant]["train"], *FILES[variant]["test"], FILES[variant]["meta"]]
        files = {}
        for name in wanted:
            if name not in names or not names[name].isfile():
                raise FileNotFoundError(f"{path} lacks {FOLDERS[variant]}/{name}. {_HOW_TO_GET}")
            files[name] = archive.extractfile(names[name]).read()
    return variant, files


def _read_folder(path: Path) -> tuple[str, dict[str, bytes], Path]:
    for variant, folder in FOLDERS.items():
        for candidate in (path, path / folder):
            if (candidate / FILES[variant]["meta"]).is_file():
                wanted = [*FILES[variant]["train"], *FILES[variant]["test"], FILES[variant]["meta"]]
                missing = [name for name in wanted if not (candidate / name).is_file()]
                if missing:
                    raise FileNotFoundError(
                        f"{candidate} lacks {', '.join(missing)}. {_HOW_TO_GET}"
                    )
                return (
                    variant,
                    {name: (candidate / name).read_bytes() for name in wanted},
                    candidate,
                )
    raise FileNotFoundError(
        f"{path} is not a CIFAR python folder (no batches.meta or meta). {_HOW_TO_GET}"
    )


def load_cifar(path: str | Path, options: SourceOptions) -> LoadedData:
    """Loads CIFAR-10/100 from the python tarball (md5-checked) or its extracted folder."""
    path = Path(path)
    if path.is_dir():
        variant, files, base = _read_folder(path)
    else:
        variant, files = _read_tarball(path, options)
        base = path / FOLDERS[variant]  # names inside the tarball, for reports
    label_key, names_key = _LABEL_KEYS[variant]
    meta = _unpickle(files[FILES[variant]["meta"]], str(base / FILES[variant]["meta"]))
    class_names = [
        name.decode() if isinstance(name, bytes) else str(name) for name in meta.get(names_key, [])
    ]
    if not class_names:
        raise ValueError(f"{base / FILES[variant]['meta']} has no {names_key.decode()} list")
    parts, problems = {}, []
    for split in ("train", "test"):
        xs, ys, ids = [], [], []
        for name in FILES[variant][split]:
            where = str(base / name)
            batch = _unpickle(files[name], where)
            data, labels = np.asarray(batch.get(b"data")), np.asarray(batch.get(label_key, []))
            if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
                raise ValueError(
                    f"{where}: expected data of shape (N, 3072) and N labels, received "
                    f"{data.shape} and {len(labels)} labels"
                )
            images = data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            bad = (labels < 0) | (labels >= len(class_names))
            problems += [
                Problem(
                    "label_out_of_range",
                    f"{where}[{i}]",
                    f"label {labels[i]} outside 0..{len(class_names) - 1}",
                    split,
                    "skipped",
                )
                for i in np.flatnonzero(bad)
            ]
            xs.append(images[~bad])
            ys.append(labels[~bad])
            ids += [f"{where}[{i}]" for i in np.flatnonzero(~bad)]
        parts[split] = (np.concatenate(xs), np.concatenate(ys), ids)
    return assemble("image", class_names, parts, str(path), problems)
