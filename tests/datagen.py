"""The tests' generated data, in one place: bar images a small model learns in a few epochs,
and writers for tiny data sets in their real on-disk formats (IDX, image folders, aclImdb,
CIFAR batches). Every generator is seeded, so a test sees the same data whatever ran before.
"""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

WORDS = {
    "neg": ["awful", "boring", "dull", "terrible", "waste", "bad", "worst", "poor"],
    "pos": ["great", "wonderful", "superb", "moving", "brilliant", "good", "best", "fun"],
}
FILLER = ["the", "film", "was", "a", "and", "plot", "actors", "story", "it", "this"]


def bar_images(
    count: int, seed: int = 0, size: int = 28, margin: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """`count` uint8 images (count, size, size) in 10 classes and their uint8 labels: class k
    has a bright horizontal bar in row band k (size // 10 rows), `margin` columns from each
    side, over dark noise.

    Easy enough that a small CNN learns it in a couple of epochs, so tests can assert accuracy
    well above chance (0.1).
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, size, size), dtype=np.uint8)
    band = size // 10
    for index, label in enumerate(labels):
        images[index, label * band : label * band + band, margin : size - margin] = 230
    return images, labels.astype(np.uint8)


def write_fashion_dir(directory: Path) -> Path:
    """Writes the four Fashion-MNIST IDX gzip files, 600 train / 200 test 28x28 bar images,
    into `directory` and returns it."""
    from trainer.data.idx import write_idx

    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train = bar_images(600, seed=1)
    x_test, y_test = bar_images(200, seed=2)
    write_idx(directory / "train-images-idx3-ubyte.gz", x_train)
    write_idx(directory / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", x_test)
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", y_test)
    return directory


def bar_image(
    label: int, rng: np.random.Generator, size: int = 16, channels: int = 3
) -> np.ndarray:
    """uint8 image with a bright horizontal bar in band `label` (of 4) over dark noise."""
    image = rng.integers(0, 50, size=(size, size, channels), dtype=np.uint8)
    band = size // 4
    image[label * band : (label + 1) * band, 2 : size - 2, :] = 220
    return image


def encode(image: np.ndarray, extension: str) -> bytes:
    """PNG/JPEG through tf.io; BMP/GIF through Pillow (TensorFlow has no encoder for them)."""
    import tensorflow as tf

    if extension == ".png":
        return tf.io.encode_png(image).numpy()
    if extension in (".jpg", ".jpeg"):
        return tf.io.encode_jpeg(image, quality=95).numpy()
    from PIL import Image

    buffer = io.BytesIO()
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.shape[-1]]
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    Image.fromarray(pixels, mode=mode).save(buffer, format=extension[1:].upper())
    return buffer.getvalue()


def write_image_folder(
    root: Path,
    classes=("a", "b", "c"),
    per_class: int = 12,
    seed: int = 0,
    extension: str = ".png",
    size: int = 16,
) -> Path:
    """root/<class>/NNN.png with bar images, one bar band per class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            data = encode(bar_image(label, rng, size), extension)
            (root / name / f"{index:03d}{extension}").write_bytes(data)
    return root


def write_photos_with_a_leak(root: Path) -> Path:
    """root/train/ (3 classes of 20 bar images) and root/test/ (8 per class), plus one
    planted leak: a copy of train/a/000.png in test/a/leaked.png."""
    import shutil

    write_image_folder(root / "train", per_class=20, seed=1)
    write_image_folder(root / "test", per_class=8, seed=2)
    shutil.copy(root / "train/a/000.png", root / "test/a/leaked.png")
    return root


def write_cifar10_folder(root: Path, per_class: tuple[int, int] = (10, 4), seed: int = 0) -> Path:
    """root/cifar-10-batches-py/ as the official tarball unpacks, with images a model can
    learn: class k brightens colour channel k % 3 and draws a white band at rows 3k..3k+2.
    `per_class` is (train, test) images per class."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(count: int) -> bytes:
        labels = np.resize(np.arange(10), count)
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(count, 32, 32, 3)).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, :, :, label % 3] += np.uint8(120 + 10 * (label // 3))
            images[index, 3 * label : 3 * label + 3] = 250
        data = images.transpose(0, 3, 1, 2).reshape(count, 3072)  # channel-major rows
        return pickle.dumps({b"labels": [int(v) for v in labels], b"data": data}, protocol=2)

    for index in range(1, 6):
        (folder / f"data_batch_{index}").write_bytes(batch(per_class[0] * 10 // 5))
    (folder / "test_batch").write_bytes(batch(per_class[1] * 10))
    names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    meta = {b"label_names": [name.encode() for name in names]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def review(label: str, rng: np.random.Generator, words: int = 12) -> str:
    tokens = list(rng.choice(FILLER, size=words)) + list(rng.choice(WORDS[label], size=3))
    rng.shuffle(tokens)
    return " ".join(tokens) + f" {rng.integers(1_000_000)}"


def spell(word: str, rng: np.random.Generator) -> str:
    """A word as people type it: mostly lower-case, sometimes Capitalized or UPPER, sometimes
    with punctuation attached."""
    word = rng.choice([word, word, word.capitalize(), word.upper()])
    return word + rng.choice(["", "", "", ",", "!", "...", "'s"])


def write_imdb(root: Path, per_class: int = 10, seed: int = 0) -> Path:
    """An aclImdb-layout tree: train/{pos,neg,unsup}, test/{pos,neg}, plus top-level files."""
    rng = np.random.default_rng(seed)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "imdb.vocab").write_text("the\nfilm\n")
    (root / "README").write_text("Large Movie Review Dataset (generated sample)\n")
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for index in range(per_class):
                stars = 8 if label == "pos" else 2
                (folder / f"{index}_{stars}.txt").write_text(review(label, rng), encoding="utf-8")
        (root / split / "labeledBow.feat").write_text("0 0:1\n")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled review")
    return root


def cifar_batches(variant: str, per_split: tuple[int, int] = (20, 10), seed: int = 0) -> dict:
    """{file name: pickled bytes} in the CIFAR python format (bytes keys, protocol 2)."""
    rng = np.random.default_rng(seed)
    num_classes = 10 if variant == "cifar-10" else 100
    label_key = b"labels" if variant == "cifar-10" else b"fine_labels"

    def batch(count: int) -> bytes:
        labels = [int(v) for v in rng.integers(0, num_classes, size=count)]
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        return pickle.dumps(
            {
                b"batch_label": b"generated",
                label_key: labels,
                b"data": data,
                b"filenames": [b"x.png"] * count,
            },
            protocol=2,
        )

    if variant == "cifar-10":
        names = [f"class{i}".encode() for i in range(10)]
        files = {f"data_batch_{i}": batch(per_split[0] // 5) for i in range(1, 6)}
        files["test_batch"] = batch(per_split[1])
        files["batches.meta"] = pickle.dumps({b"label_names": names}, protocol=2)
    else:
        names = [f"fine{i}".encode() for i in range(100)]
        files = {"train": batch(per_split[0]), "test": batch(per_split[1])}
        files["meta"] = pickle.dumps(
            {b"fine_label_names": names, b"coarse_label_names": []}, protocol=2
        )
    return files


def write_cifar_tarball(path: Path, variant: str = "cifar-10", extra: dict | None = None) -> Path:
    """A .tar.gz laid out like the official one; `extra` adds raw members (name -> bytes)."""
    folder = "cifar-10-batches-py" if variant == "cifar-10" else "cifar-100-python"
    members = {f"{folder}/{name}": data for name, data in cifar_batches(variant).items()}
    members.update(extra or {})
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
