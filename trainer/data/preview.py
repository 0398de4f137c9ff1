"""`trainer data preview`: a PNG grid of augmented training samples with their labels.

A user looks at this before training to see what the augmentation really does to their data
(a rotation that cuts off the object, a crop too large for 28x28 images, MixUp labels). The
images go through the same `image_dataset` pipeline training uses, so the grid shows exactly
what the model would receive; MixUp/CutMix images are titled with their two largest label
weights. This module draws and writes the figure; it must not train or change the source.
The command line is `trainer.cli.data`.

Example:

    >>> import numpy as np
    >>> from trainer.augment import augmentations_from_config
    >>> from trainer.data.preview import preview_grid
    >>> x = np.random.default_rng(0).integers(0, 255, (64, 28, 28), dtype=np.uint8)
    >>> y = np.arange(64) % 10
    >>> preview_grid(x, y, class_names=[f"class {i}" for i in range(10)],
    ...              augment=augmentations_from_config("crop:2,flip,rotate:15"), path="preview.png")
    PosixPath('preview.png')
"""

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trainer.files import atomic_write_bytes

DEFAULT_AUGMENT = "crop:2,flip"  # the Fashion-MNIST recipe's augmentation


def augmented_samples(
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    augment: Callable | None,
    count: int = 16,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Picks `count` random training samples and runs them through the training pipeline.

    Returns:
        (augmented float32 images NHWC in [0, 1], label rows [count, classes]), in the
        shuffled order the training pipeline gives them.
    """
    from trainer.data.pipeline import image_dataset

    if count < 1:
        raise ValueError(f"count must be at least 1, received {count}")
    if len(x) == 0:
        raise ValueError("no training images to preview: the source's train split is empty")
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(x), size=min(count, len(x)), replace=False))
    dataset = image_dataset(
        x[indices],
        y[indices],
        num_classes=num_classes,
        batch_size=len(indices),
        training=True,
        augment=augment,
        seed=seed,
    )
    images, labels = next(iter(dataset))
    return images.numpy(), labels.numpy()


def label_text(label_row: np.ndarray, class_names: Sequence[str]) -> str:
    """ "Coat" for a one-hot row; "Coat 0.70 / Shirt 0.30" for a mixed (MixUp/CutMix) row."""
    order = np.argsort(label_row)[::-1]
    first = int(order[0])
    if label_row[first] >= 0.999 or len(order) < 2:
        return class_names[first]
    second = int(order[1])
    return (
        f"{class_names[first]} {label_row[first]:.2f} / {class_names[second]} "
        f"{label_row[second]:.2f}"
    )


def preview_grid(
    x: np.ndarray,
    y: np.ndarray,
    *,
    class_names: Sequence[str],
    augment: Callable | None,
    path: str | Path,
    count: int = 16,
    seed: int = 0,
    title: str = "",
) -> Path:
    """Writes a PNG grid of `count` augmented training samples, each titled with its label.

    Args:
        x: training images, uint8 (or float in [0, 1]), NHW or NHWC with 1 or 3 channels.
        y: integer labels into `class_names`.
        class_names: one name per class.
        augment: callable from `trainer.augment` (e.g. `augmentations_from_config(...)`).
        path: PNG file to write (atomically).
        count: samples to show.
        seed: picks the samples and the augmentation.
        title: figure title, e.g. the augmentation string.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as pyplot

    images, labels = augmented_samples(
        x, y, num_classes=len(class_names), augment=augment, count=count, seed=seed
    )
    if images.shape[-1] not in (1, 3):
        raise ValueError(
            f"can only draw images with 1 or 3 channels, received shape {images.shape[1:]}"
        )
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    figure, axes = pyplot.subplots(
        rows, columns, figsize=(1.9 * columns, 2.1 * rows), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= len(images):
            continue
        image = np.clip(images[index], 0.0, 1.0)
        if image.shape[-1] == 1:
            axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            axis.imshow(image)
        axis.set_title(label_text(labels[index], class_names), fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    pyplot.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())
