"""The real data sets of `bench/real_data.py`, written as the folders a user would hand a recipe.

Every set becomes ROOT/train/<class>/<file> and ROOT/test/<class>/<file>, so the recipe (which
reads the folder) and the scikit-learn baseline (which reads the same files back) see exactly
the same split. Each builder is deterministic: inputs sorted, one fixed seed, and exact
duplicates dropped before writing (within a split, and test copies of training samples), so
the recipe's own data check has nothing left to drop and both sides count the same examples.

- Fashion-MNIST (Debian's `dataset-fashion-mnist` IDX files): N training images per class
  drawn from the 60k training file, and one fixed test set of 200 images per class (2,000)
  from the 10k test file; the smaller training sets are subsets of the larger ones.
- scikit-learn's bundled `load_digits` (1,797 8x8 images, 16 grey levels scaled to 0-255),
  a stratified 80/20 split.
- Debian package descriptions labelled by their archive Section: the main component of the
  machine's Debian release (apt's own package lists, long descriptions from Translation-en),
  eight topical sections, one text per distinct description (the short description as first
  line, then the long one). Texts are split by *source package*, so the binary packages built
  from one source, which share most of their description, never straddle train and test.

This module owns building and reading those folders; it must not train anything.

Example:

    from bench.datasets import write_digits_folder, read_image_folder
    root = write_digits_folder("/tmp/digits")
    x_train, y_train, x_test, y_test, names = read_image_folder(root)
"""

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0
FASHION_TEST_PER_CLASS = 200
TEST_FRACTION = 0.2
# Topical sections with a few hundred to two thousand descriptions each. Left out: sections
# named after a language or packaging kind (python, perl, libs, libdevel, doc, ...), whose
# label is mostly a word in the package name, and catch-alls (utils, misc).
DEBIAN_SECTIONS = ("admin", "games", "graphics", "mail", "net", "science", "sound", "text")
_APT_LANGUAGE = ("-o", "Acquire::Languages=en")
_HOW_TO_GET_DESCRIPTIONS = (
    "Debian's long package descriptions (Translation-en) are not in apt's lists on this machine. "
    "Run `sudo apt-get update -o Acquire::Languages=en` once (`make bench-real` does it)."
)


def _folder_name(class_name: str) -> str:
    """A class name usable as a folder name ('T-shirt/top' -> 'T-shirt-top')."""
    return class_name.replace("/", "-").replace("\\", "-").strip() or "unnamed"


def _fresh(root: Path) -> Path:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


def _keep_unique(keys: list[str], splits: list[str]) -> np.ndarray:
    """Indices of the samples to keep: the first copy within each split, and no training
    sample whose content is also in the test split."""
    test_keys = {key for key, split in zip(keys, splits, strict=True) if split == "test"}
    seen: set[tuple[str, str]] = set()
    kept = []
    for index, (key, split) in enumerate(zip(keys, splits, strict=True)):
        if (split, key) in seen or (split == "train" and key in test_keys):
            continue
        seen.add((split, key))
        kept.append(index)
    return np.asarray(kept, dtype=np.int64)


def write_image_folder(
    root: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    splits: list[str],
    class_names: list[str],
    ids: list[str],
) -> Path:
    """Writes uint8 images (N, H, W) or (N, H, W, C) as ROOT/<split>/<class>/<id>.png.

    Exact duplicates are dropped first (see `_keep_unique`). Returns ROOT.
    """
    from PIL import Image

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(
            f"images must be uint8 (N, H, W[, C]), received {images.dtype} {images.shape}"
        )
    root = _fresh(Path(root))
    keys = [hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() for image in images]
    for index in _keep_unique(keys, splits):
        folder = root / splits[index] / _folder_name(class_names[int(labels[index])])
        folder.mkdir(parents=True, exist_ok=True)
        image = images[index]
        Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(
            folder / f"{ids[index]}.png"
        )
    return root


def _per_class_choice(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """The first `count` indices of a seeded permutation of each class, sorted."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if count > len(members):
            raise ValueError(
                f"class {label} has {len(members)} examples, fewer than the {count} asked for"
            )
        chosen.append(members[rng.permutation(len(members))[:count]])
    return np.sort(np.concatenate(chosen))


def write_fashion_folder(
    root: str | Path,
    per_class: int,
    test_per_class: int = FASHION_TEST_PER_CLASS,
    data_dir: str = "",
) -> Path:
    """Fashion-MNIST as PNG class folders: `per_class` training images per class and a fixed
    test set of `test_per_class` per class. Sets of different sizes are nested (same seed)."""
    from trainer.data.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(data_dir or FASHION_MNIST_DIR)
    train = _per_class_choice(y_train, per_class, SEED)
    test = _per_class_choice(y_test, test_per_class, SEED)
    images = np.concatenate([x_train[train], x_test[test]])
    labels = np.concatenate([y_train[train], y_test[test]])
    splits = ["train"] * len(train) + ["test"] * len(test)
    # File names are the row in the original IDX file, so any image can be traced back.
    ids = [f"train{index:05d}" for index in train] + [f"t10k{index:05d}" for index in test]
    return write_image_folder(root, images, labels, splits, list(FASHION_MNIST_CLASSES), ids)


def _stratified_test(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask marking round(fraction * n) members of each class as test."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test[members[rng.permutation(len(members))[: round(fraction * len(members))]]] = True
    return test


def write_digits_folder(root: str | Path, test_fraction: float = TEST_FRACTION) -> Path:
    """scikit-learn's bundled digits (8x8, 1,797 images) as PNG class folders, 80/20 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # 17 grey levels (0-16) spread over 0-255, as a scanner would have stored them.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    test = _stratified_test(labels, test_fraction, SEED)
    splits = ["test" if flag else "train" for flag in test]
    ids = [f"digit{index:04d}" for index in range(len(labels))]
    names = [str(name) for name in digits.target_names]
    return write_image_folder(root, images, labels, splits, names, ids)


@dataclass
class TextSet:
    """Labelled texts with a group per text (texts of one group share a split)."""

    texts: list[str]
    labels: list[str]
    groups: list[str]
    ids: list[str]  # file stems, unique
    source: str  # where the texts came from, for the results file


def _apt_index(identifier: str, codename: str) -> tuple[Path, str]:
    """(path of apt's local list file, release version) for Debian main of `codename`."""
    query = [
        f"Identifier: {identifier}",
        "Origin: Debian",
        f"Codename: {codename}",
        "Component: main",
    ] + (["Language: en"] if identifier == "Translations" else [])
    result = subprocess.run(
        ["apt-get", "indextargets", *_APT_LANGUAGE, "--format", "$(FILENAME)\t$(VERSION)", *query],
        capture_output=True,
        text=True,
        check=False,
    )
    for line in result.stdout.splitlines():
        filename, _, version = line.partition("\t")
        if filename and Path(filename).is_file():
            return Path(filename), version
    if identifier == "Translations":
        raise FileNotFoundError(_HOW_TO_GET_DESCRIPTIONS)
    raise FileNotFoundError(
        f"apt has no Packages list for Debian {codename!r} main on this machine "
        f"(`apt-get indextargets` answered {result.stdout.strip()[:200]!r}). "
        "Run `sudo apt-get update -o Acquire::Languages=en`."
    )


def _deb822_records(path: Path):
    """Yields one {field: value} dict per stanza of an apt list file (any compression)."""
    # apt-helper decompresses every format apt stores its lists in (lz4, zstd, gz, xz, plain).
    text = subprocess.run(
        ["/usr/lib/apt/apt-helper", "cat-file", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _description_text(description: str) -> str:
    """Debian's Description field as plain text: the short line, then the long paragraphs."""
    lines = []
    for line in description.splitlines():
        line = line[1:] if line.startswith(" ") else line
        lines.append("" if line.strip() == "." else line.rstrip())
    return "\n".join(lines).strip()


def _release_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise FileNotFoundError("/etc/os-release has no VERSION_CODENAME: not a Debian system?")


def debian_descriptions(sections: tuple[str, ...] = DEBIAN_SECTIONS, codename: str = "") -> TextSet:
    """Debian package descriptions labelled by Section, one per distinct text, sorted by package.

    Reads apt's local lists only (no network). A description that occurs under two of the
    chosen sections is dropped (its label is ambiguous); copies within a section keep the
    alphabetically first package. Raises FileNotFoundError with the install step when apt has
    no English long descriptions.
    """
    codename = codename or _release_codename()
    packages_path, version = _apt_index("Packages", codename)
    translations_path, _ = _apt_index("Translations", codename)
    long_descriptions = {
        (record["Package"], record.get("Description-md5", "")): record["Description-en"]
        for record in _deb822_records(translations_path)
        if "Package" in record and "Description-en" in record
    }
    chosen: dict[
        str, tuple[str, str, str, str]
    ] = {}  # normalised -> (package, section, source, text)
    ambiguous: set[str] = set()
    records = sorted(_deb822_records(packages_path), key=lambda record: record.get("Package", ""))
    for record in records:
        section = record.get("Section", "").rsplit("/", 1)[-1]
        key = (record.get("Package", ""), record.get("Description-md5", ""))
        if section not in sections or key not in long_descriptions:
            continue
        text = _description_text(long_descriptions[key])
        normalised = " ".join(text.lower().split())
        if normalised in chosen:
            if chosen[normalised][1] != section:
                ambiguous.add(normalised)
            continue
        source = record.get("Source", key[0]).split()[0]  # "foo (1.2-3)" -> "foo"
        chosen[normalised] = (key[0], section, source, text)
    rows = sorted(value for normalised, value in chosen.items() if normalised not in ambiguous)
    if not rows:
        raise ValueError(
            f"no descriptions found for sections {sections} in {packages_path}; expected "
            f"section names such as {DEBIAN_SECTIONS}"
        )
    return TextSet(
        texts=[row[3] for row in rows],
        labels=[row[1] for row in rows],
        groups=[row[2] for row in rows],
        ids=[row[0] for row in rows],
        source=f"Debian {version} ({codename}) main: {packages_path.name} + {translations_path.name}",
    )


def write_text_folder(
    root: str | Path, texts: TextSet, test_fraction: float = TEST_FRACTION
) -> Path:
    """Writes ROOT/<split>/<label>/<id>.txt; a seeded `test_fraction` of the *groups* is test."""
    groups = sorted(set(texts.groups))
    order = np.random.default_rng(SEED).permutation(len(groups))
    test_groups = {groups[index] for index in order[: round(test_fraction * len(groups))]}
    root = _fresh(Path(root))
    for text, label, group, name in zip(
        texts.texts, texts.labels, texts.groups, texts.ids, strict=True
    ):
        folder = root / ("test" if group in test_groups else "train") / _folder_name(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return root


def _split_files(root: Path, split: str) -> tuple[list[Path], list[int], list[str]]:
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; build the set first")
    names = sorted(child.name for child in folder.iterdir() if child.is_dir())
    files, labels = [], []
    for label, name in enumerate(names):
        for path in sorted((folder / name).iterdir()):
            files.append(path)
            labels.append(label)
    return files, labels, names


def read_image_folder(root: str | Path):
    """(x_train, y_train, x_test, y_test, class_names): flattened pixels in [0, 1]."""
    from PIL import Image

    arrays = []
    names: list[str] = []
    for split in ("train", "test"):
        files, labels, names = _split_files(Path(root), split)
        pixels = np.stack([np.asarray(Image.open(path)) for path in files]).astype(np.float32)
        arrays += [pixels.reshape(len(files), -1) / 255.0, np.asarray(labels)]
    return (*arrays, names)


def read_text_folder(root: str | Path):
    """(texts_train, y_train, texts_test, y_test, class_names)."""
    arrays = []
    names: list[str] = []
    for split in ("train", "test"):
        files, labels, names = _split_files(Path(root), split)
        arrays += [[path.read_text(encoding="utf-8") for path in files], np.asarray(labels)]
    return (*arrays, names)


def folder_digest(root: str | Path) -> str:
    """A short SHA-256 over every file's relative path and bytes: equal digests, equal sets."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(item for item in root.rglob("*") if item.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def count_files(root: str | Path) -> dict[str, dict[str, int]]:
    """{split: {class folder: number of files}}."""
    return {
        split.name: {
            folder.name: sum(1 for item in folder.iterdir() if item.is_file())
            for folder in sorted(split.iterdir())
            if folder.is_dir()
        }
        for split in sorted(Path(root).iterdir())
        if split.is_dir()
    }
