"""Batch augmentations for `tf.data` pipelines, vectorized and reproducible from a seed.

Augmentation lives in the input pipeline, not in the model: TF-MOT rejects preprocessing
layers such as `RandomFlip`, and exported TFLite files should not carry them (docs/your-own-data.md).
Each augmentation is a callable `(images, labels, seed) -> (images, labels)` on a whole batch
(images float32 `[batch, height, width, channels]` in [0, 1], one-hot labels
`[batch, classes]`), using stateless random ops so that a pipeline seed reproduces the same
batches. Every image in a batch gets its own random parameters, computed with batched ops
(no per-image Python or `tf.map_fn`): geometric ones go through one
`ImageProjectiveTransformV3` call with a transform per image, as Keras' preprocessing layers
do. MixUp and CutMix return soft labels whose rows still sum to 1, which
`CategoricalCrossentropy` accepts as they are. `augmentations_from_config` turns a string such
as `"crop:4,flip,rotate:15,mixup:0.2"` into a `Compose`. This module must not read files or
build datasets.

Example:

    >>> import tensorflow as tf
    >>> from trainer.augment import Compose, RandomCropWithPadding, RandomFlip
    >>> augment = Compose([RandomCropWithPadding(padding=2), RandomFlip()])
    >>> images, labels = tf.random.uniform([8, 28, 28, 1], seed=0), tf.one_hot(tf.range(8), 10)
    >>> first, _ = augment(images, labels, tf.constant([1, 2]))  # the last: the batch's seed
    >>> again, _ = augment(images, labels, tf.constant([1, 2]))
    >>> first.shape, bool(tf.reduce_all(first == again))  # same seed, same batch
    (TensorShape([8, 28, 28, 1]), True)
"""

from collections.abc import Sequence

import tensorflow as tf

from trainer.augment.image import (
    RandomBrightness,
    RandomContrast,
    RandomCropWithPadding,
    RandomErasing,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
)
from trainer.augment.mixing import CutMix, MixUp
from trainer.augment.randaugment import RANDAUGMENT_OPS as RANDAUGMENT_OPS
from trainer.augment.randaugment import RandAugment


class Compose:
    """Applies augmentations in order, each with its own seed split from the batch seed.

    Put MixUp/CutMix last: operations after them would treat a mixed image as one image.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import Compose, MixUp, RandomFlip
        >>> augment = Compose([RandomFlip(), MixUp(alpha=0.2)])
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
    """

    def __init__(self, augmentations: Sequence):
        self.augmentations = list(augmentations)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        if not self.augmentations:
            return images, labels
        seeds = tf.random.experimental.stateless_split(seed, num=len(self.augmentations))
        for index, augmentation in enumerate(self.augmentations):
            images, labels = augmentation(images, labels, seeds[index])
        return images, labels

    def __len__(self) -> int:
        return len(self.augmentations)

    def get_config(self) -> dict:
        return {
            "augmentations": [
                {"class_name": type(augmentation).__name__, "config": augmentation.get_config()}
                for augmentation in self.augmentations
            ]
        }


def _number(item: str, text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise ValueError(
            f"augmentation {item!r}: expected {expected} after ':', received {text!r}"
        ) from None


def _one_number(augmentation: type, kind: type, default: float):
    """The factory of an augmentation built from one optional number (`rotate:30`)."""

    def build(item: str, arguments: list[str]):
        argument = arguments[0] if arguments else None
        return augmentation(_number(item, argument, kind) if argument else default)

    return build


def _flip(item: str, arguments: list[str]) -> RandomFlip:
    directions = {"horizontal": (True, False), "vertical": (False, True), "both": (True, True)}
    argument = arguments[0] if arguments else None
    if (argument or "horizontal") not in directions:
        raise ValueError(
            f"augmentation {item!r}: flip takes horizontal, vertical or both, received {argument!r}"
        )
    horizontal, vertical = directions[argument or "horizontal"]
    return RandomFlip(horizontal=horizontal, vertical=vertical)


def _randaugment(item: str, arguments: list[str]) -> RandAugment:
    num_ops = _number(item, arguments[0], int) if arguments else 2
    magnitude = _number(item, arguments[1], float) if len(arguments) > 1 else 9.0
    return RandAugment(num_ops=num_ops, magnitude=magnitude)


# Every name `augmentations_from_config` accepts: its usage (argument and default, shown in
# errors and help) and the factory that builds it from the arguments after ':'. A reader sees
# here which class each name builds.
AUGMENTATIONS = {
    "crop": (
        "crop[:PADDING=4]  random crop after zero padding",
        _one_number(RandomCropWithPadding, int, 4),
    ),
    "flip": ("flip[:horizontal|vertical|both]  random flips (horizontal by default)", _flip),
    "rotate": ("rotate[:DEGREES=15]", _one_number(RandomRotation, float, 15.0)),
    "zoom": ("zoom[:FACTOR=0.1]", _one_number(RandomZoom, float, 0.1)),
    "translate": ("translate[:FRACTION=0.1]", _one_number(RandomTranslation, float, 0.1)),
    "brightness": ("brightness[:MAX_DELTA=0.2]", _one_number(RandomBrightness, float, 0.2)),
    "contrast": ("contrast[:FACTOR=0.2]", _one_number(RandomContrast, float, 0.2)),
    "erase": (
        "erase[:PROBABILITY=0.5]  random erasing / cutout with zeros",
        _one_number(RandomErasing, float, 0.5),
    ),
    "mixup": ("mixup[:ALPHA=0.2]", _one_number(MixUp, float, 0.2)),
    "cutmix": ("cutmix[:ALPHA=1.0]", _one_number(CutMix, float, 1.0)),
    "randaugment": ("randaugment[:NUM_OPS=2[:MAGNITUDE=9]]", _randaugment),
}
# Each name with its usage line (the table above without its factories).
AUGMENTATION_NAMES = {name: usage for name, (usage, _) in AUGMENTATIONS.items()}


def _one_augmentation(item: str):
    name, *arguments = [part.strip() for part in item.split(":")]
    most = 2 if name == "randaugment" else 1
    if len(arguments) > most:
        raise ValueError(
            f"augmentation {item!r} has {len(arguments)} arguments; "
            f"usage: {AUGMENTATION_NAMES.get(name, name)}"
        )
    if name not in AUGMENTATIONS:
        raise ValueError(
            f"unknown augmentation {name!r} in {item!r}; valid names:\n  "
            + "\n  ".join(AUGMENTATION_NAMES.values())
        )
    _, build = AUGMENTATIONS[name]
    return build(item, arguments)


def augmentations_from_config(spec: str) -> Compose:
    """Builds a `Compose` from a comma-separated string such as `"crop:4,flip,mixup:0.2"`.

    Each item is `name[:argument]` (see `AUGMENTATION_NAMES`); they run in the order given,
    so put `mixup`/`cutmix` last. An empty string or "none" gives an empty `Compose`.

    Raises:
        ValueError: an unknown name (the message lists the valid ones) or a bad argument.

    Example:

        >>> from trainer.augment import augmentations_from_config
        >>> augment = augmentations_from_config("crop:2,flip,rotate:10,erase:0.5,mixup:0.2")
        >>> [step["class_name"] for step in augment.get_config()["augmentations"]]
        ['RandomCropWithPadding', 'RandomFlip', 'RandomRotation', 'RandomErasing', 'MixUp']
    """
    if not isinstance(spec, str):
        raise TypeError(f"augmentation spec must be a string, received {type(spec).__name__}")
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if items in ([], ["none"]):
        return Compose([])
    return Compose([_one_augmentation(item) for item in items])


def describe_spec(spec: str) -> str:
    """One line naming what an augmentation spec builds, with every argument, e.g.
    `"crop:2,flip"` -> `"RandomCropWithPadding(padding=2), RandomFlip(horizontal=True, ...)"`."""
    augmentations = augmentations_from_config(spec).augmentations
    if not augmentations:
        return "no augmentation"
    return ", ".join(
        type(augmentation).__name__
        + "("
        + ", ".join(f"{key}={value!r}" for key, value in augmentation.get_config().items())
        + ")"
        for augmentation in augmentations
    )
