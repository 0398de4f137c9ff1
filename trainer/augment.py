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

import math
from collections.abc import Sequence

import tensorflow as tf


class RandomCropWithPadding:
    """Pads each image by `padding` pixels (zeros) and crops it back at a random offset."""

    def __init__(self, padding: int = 4):
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be a non-negative int, received {padding!r}")
        self.padding = padding

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        if self.padding == 0:
            return images, labels
        batch = tf.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        pad = self.padding
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        offsets = tf.random.stateless_uniform(
            [2, batch], seed=seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32
        )
        rows = offsets[0][:, None] + tf.range(height)[None, :]
        cols = offsets[1][:, None] + tf.range(width)[None, :]
        # Two batched gathers crop every image at its own offset without a per-image map.
        cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
        cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
        return cropped, labels

    def get_config(self) -> dict:
        return {"padding": self.padding}


class RandomFlip:
    """Flips each image left-right (and/or up-down) with probability 0.5."""

    def __init__(self, horizontal: bool = True, vertical: bool = False):
        if not (horizontal or vertical):
            raise ValueError("RandomFlip needs horizontal=True or vertical=True")
        self.horizontal = horizontal
        self.vertical = vertical

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        batch = tf.shape(images)[0]
        coins = tf.random.stateless_uniform([2, batch], seed=seed) < 0.5
        for enabled, axis, coin in ((self.horizontal, 2, coins[0]), (self.vertical, 1, coins[1])):
            if enabled:
                images = tf.where(coin[:, None, None, None], tf.reverse(images, [axis]), images)
        return images, labels

    def get_config(self) -> dict:
        return {"horizontal": self.horizontal, "vertical": self.vertical}


def _split(seed: tf.Tensor, count: int) -> tf.Tensor:
    return tf.random.experimental.stateless_split(seed, num=count)


def _uniform(seed: tf.Tensor, batch: tf.Tensor, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform([batch], seed=seed, minval=low, maxval=high)


def _random_signs(seed: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    return tf.where(tf.random.stateless_uniform([batch], seed=seed) < 0.5, -1.0, 1.0)


def _offsets(seed: tf.Tensor, room: tf.Tensor) -> tf.Tensor:
    """A uniform integer in [0, room[i]] per image (stateless ints need one scalar range)."""
    fractions = tf.random.stateless_uniform(tf.shape(room), seed=seed)
    return tf.cast(fractions * tf.cast(room + 1, tf.float32), tf.int32)


def _beta(seed: tf.Tensor, batch: tf.Tensor, alpha: float) -> tf.Tensor:
    # Beta(a, a) = G1 / (G1 + G2) with G ~ Gamma(a): TF has a stateless gamma, not a beta.
    gammas = tf.random.stateless_gamma([2, batch], seed=seed, alpha=alpha)
    return gammas[0] / tf.maximum(gammas[0] + gammas[1], 1e-12)


def _partners(seed: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """A random permutation of the batch: who each image is mixed with."""
    return tf.argsort(tf.random.stateless_uniform([batch], seed=seed))


def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], received {value!r}")
    return float(value)


def _check_one_hot(labels: tf.Tensor, who: str) -> None:
    if labels.shape.rank != 2:
        raise ValueError(
            f"{who} mixes labels, so it needs one-hot labels [batch, classes]; received labels "
            f"of shape {labels.shape}. Build the dataset with trainer.data.pipeline.image_dataset "
            "(it one-hots) or tf.one_hot your labels."
        )


def _affine_transforms(images: tf.Tensor, matrix: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """Per-image transforms `[batch, 8]` for ImageProjectiveTransformV3, about the centre.

    `matrix` `[batch, 2, 2]` and `shift` `[batch, 2]` (x, y in pixels) map each *output* pixel
    to the input pixel it samples: input = matrix @ (output - centre) + centre + shift.
    """
    height, width = (
        tf.cast(tf.shape(images)[1], tf.float32),
        tf.cast(tf.shape(images)[2], tf.float32),
    )
    centre_x, centre_y = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    a, b = matrix[:, 0, 0], matrix[:, 0, 1]
    c, d = matrix[:, 1, 0], matrix[:, 1, 1]
    offset_x = centre_x + shift[:, 0] - a * centre_x - b * centre_y
    offset_y = centre_y + shift[:, 1] - c * centre_x - d * centre_y
    zeros = tf.zeros_like(a)
    return tf.stack([a, b, offset_x, c, d, offset_y, zeros, zeros], axis=1)


def _apply_transforms(images: tf.Tensor, transforms: tf.Tensor, fill_value: float) -> tf.Tensor:
    # Bilinear sampling of [0, 1] pixels stays in [0, 1]; outside the image reads `fill_value`.
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(fill_value, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _rotation_matrix(angles: tf.Tensor) -> tf.Tensor:
    cos, sin = tf.cos(angles), tf.sin(angles)
    return tf.reshape(tf.stack([cos, -sin, sin, cos], axis=1), [-1, 2, 2])


def _scale_matrix(scale_x: tf.Tensor, scale_y: tf.Tensor) -> tf.Tensor:
    zeros = tf.zeros_like(scale_x)
    return tf.reshape(tf.stack([scale_x, zeros, zeros, scale_y], axis=1), [-1, 2, 2])


def _box_masks(
    images: tf.Tensor, top: tf.Tensor, left: tf.Tensor, box_height: tf.Tensor, box_width: tf.Tensor
) -> tf.Tensor:
    """Boolean masks `[batch, height, width, 1]`, true inside each image's own rectangle."""
    rows = tf.range(tf.shape(images)[1])[None, :]
    cols = tf.range(tf.shape(images)[2])[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + box_height)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_width)[:, None])
    return (in_rows[:, :, None] & in_cols[:, None, :])[..., None]


class RandomRotation:
    """Rotates each image by its own random angle in [-degrees, degrees] about its centre.

    Corners that come from outside the image are filled with `fill_value` (black by default,
    the background of Fashion-MNIST-like data).

    Args:
        degrees: largest rotation either way, in degrees, in [0, 180].
        fill_value: pixel value for areas that come from outside the image.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandomRotation
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandomRotation(degrees=15)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
    """

    def __init__(self, degrees: float = 15.0, fill_value: float = 0.0):
        if not 0.0 <= degrees <= 180.0:
            raise ValueError(f"degrees must be in [0, 180], received {degrees!r}")
        self.degrees = float(degrees)
        self.fill_value = float(fill_value)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        batch = tf.shape(images)[0]
        limit = math.radians(self.degrees)
        angles = _uniform(seed, batch, -limit, limit)
        matrix = _rotation_matrix(angles)
        transforms = _affine_transforms(images, matrix, tf.zeros([batch, 2]))
        return _apply_transforms(images, transforms, self.fill_value), labels

    def get_config(self) -> dict:
        return {"degrees": self.degrees, "fill_value": self.fill_value}


class RandomZoom:
    """Zooms each image in or out about its centre by a random factor in [1-factor, 1+factor].

    A factor above 1 magnifies (the borders are cut off); below 1 shrinks the content and fills
    the new border with `fill_value`. Width and height scale together, keeping the aspect.

    Args:
        factor: largest relative change of size, in [0, 1).
        fill_value: pixel value for areas that come from outside the image.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandomZoom
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandomZoom(factor=0.1)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
    """

    def __init__(self, factor: float = 0.1, fill_value: float = 0.0):
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"zoom factor must be in [0, 1), received {factor!r}")
        self.factor = float(factor)
        self.fill_value = float(fill_value)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        batch = tf.shape(images)[0]
        zoom = _uniform(seed, batch, 1.0 - self.factor, 1.0 + self.factor)
        # Output pixels sample the input at 1/zoom times their distance from the centre.
        matrix = _scale_matrix(1.0 / zoom, 1.0 / zoom)
        transforms = _affine_transforms(images, matrix, tf.zeros([batch, 2]))
        return _apply_transforms(images, transforms, self.fill_value), labels

    def get_config(self) -> dict:
        return {"factor": self.factor, "fill_value": self.fill_value}


class RandomTranslation:
    """Shifts each image by a random offset of up to `fraction` of its width and height.

    Args:
        fraction: largest shift either way, as a fraction of the image size, in [0, 1).
        fill_value: pixel value for areas that come from outside the image.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandomTranslation
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandomTranslation(fraction=0.1)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
    """

    def __init__(self, fraction: float = 0.1, fill_value: float = 0.0):
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"translation fraction must be in [0, 1), received {fraction!r}")
        self.fraction = float(fraction)
        self.fill_value = float(fill_value)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        batch = tf.shape(images)[0]
        size = tf.cast(tf.stack([tf.shape(images)[2], tf.shape(images)[1]]), tf.float32)
        shifts = (
            tf.random.stateless_uniform(
                [batch, 2], seed=seed, minval=-self.fraction, maxval=self.fraction
            )
            * size[None, :]
        )
        # Whole-pixel shifts keep the image sharp: bilinear sampling at integer offsets copies.
        shifts = tf.round(shifts)
        identity = _scale_matrix(tf.ones([batch]), tf.ones([batch]))
        transforms = _affine_transforms(images, identity, -shifts)
        return _apply_transforms(images, transforms, self.fill_value), labels

    def get_config(self) -> dict:
        return {"fraction": self.fraction, "fill_value": self.fill_value}


class RandomBrightness:
    """Adds a random offset in [-max_delta, max_delta] to each image, then clips to [0, 1].

    Args:
        max_delta: largest brightness change, in [0, 1].

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandomBrightness
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandomBrightness(max_delta=0.2)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
        >>> 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
        True
    """

    def __init__(self, max_delta: float = 0.2):
        self.max_delta = _check_probability("max_delta", max_delta)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        deltas = _uniform(seed, tf.shape(images)[0], -self.max_delta, self.max_delta)
        return tf.clip_by_value(images + deltas[:, None, None, None], 0.0, 1.0), labels

    def get_config(self) -> dict:
        return {"max_delta": self.max_delta}


class RandomContrast:
    """Scales each image's distance from its own mean by a random factor in [1-f, 1+f].

    The mean is taken per image and channel (as `tf.image.adjust_contrast` does); the result
    is clipped to [0, 1].

    Args:
        factor: largest relative contrast change, in [0, 1].

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandomContrast
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandomContrast(factor=0.3)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
        >>> 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
        True
    """

    def __init__(self, factor: float = 0.2):
        self.factor = _check_probability("contrast factor", factor)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        factors = _uniform(seed, tf.shape(images)[0], 1.0 - self.factor, 1.0 + self.factor)
        means = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        adjusted = means + (images - means) * factors[:, None, None, None]
        return tf.clip_by_value(adjusted, 0.0, 1.0), labels

    def get_config(self) -> dict:
        return {"factor": self.factor}


class RandomErasing:
    """Erases one random rectangle per image with probability `probability` (cutout).

    The rectangle covers a random fraction of the image in `area` with a random aspect ratio
    (log-uniform in `aspect_ratio`), as in Zhong et al. (2017), and is filled with `value`, or
    uniform noise in [0, 1] when `value="random"`. Labels are kept.

    Args:
        probability: chance that an image gets a rectangle, in [0, 1].
        area: (smallest, largest) fraction of the image to erase, within (0, 1].
        aspect_ratio: (smallest, largest) height/width ratio of the rectangle, positive.
        value: fill value in [0, 1], or "random" for noise.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandomErasing
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandomErasing(probability=0.5)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
    """

    def __init__(
        self,
        probability: float = 0.5,
        area: tuple[float, float] = (0.02, 0.25),
        aspect_ratio: tuple[float, float] = (0.3, 3.3),
        value: float | str = 0.0,
    ):
        self.probability = _check_probability("erasing probability", probability)
        if not (len(area) == 2 and 0.0 < area[0] <= area[1] <= 1.0):
            raise ValueError(
                f"area must be (low, high) with 0 < low <= high <= 1, received {area!r}"
            )
        if not (len(aspect_ratio) == 2 and 0.0 < aspect_ratio[0] <= aspect_ratio[1]):
            raise ValueError(
                f"aspect_ratio must be (low, high) with 0 < low <= high, received {aspect_ratio!r}"
            )
        if value != "random" and not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise ValueError(f'value must be in [0, 1] or "random", received {value!r}')
        self.area = (float(area[0]), float(area[1]))
        self.aspect_ratio = (float(aspect_ratio[0]), float(aspect_ratio[1]))
        self.value = value if value == "random" else float(value)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        batch = tf.shape(images)[0]
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        seeds = _split(seed, 6)
        pixels = tf.cast(height * width, tf.float32)
        area = _uniform(seeds[0], batch, *self.area) * pixels
        log_low, log_high = math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])
        ratio = tf.exp(_uniform(seeds[1], batch, log_low, log_high))
        box_height = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area * ratio)), tf.int32), 1, height)
        box_width = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area / ratio)), tf.int32), 1, width)
        top = _offsets(seeds[2], height - box_height)
        left = _offsets(seeds[3], width - box_width)
        masks = _box_masks(images, top, left, box_height, box_width)
        chosen = _uniform(seeds[4], batch, 0.0, 1.0) < self.probability
        masks = masks & chosen[:, None, None, None]
        if self.value == "random":
            fill = tf.random.stateless_uniform(tf.shape(images), seed=seeds[5])
        else:
            fill = tf.fill(tf.shape(images), self.value)
        return tf.where(masks, fill, images), labels

    def get_config(self) -> dict:
        return {
            "probability": self.probability,
            "area": self.area,
            "aspect_ratio": self.aspect_ratio,
            "value": self.value,
        }


class MixUp:
    """Blends each image and its label with another image of the batch (Zhang et al., 2018).

    Each image gets its own ratio `lam ~ Beta(alpha, alpha)` and a partner from a random
    permutation of the batch; image = lam * image + (1 - lam) * partner, and the same for the
    one-hot labels, so every label row still sums to 1. Train with `CategoricalCrossentropy`
    (soft labels are fine there), not the sparse variant.

    Args:
        alpha: Beta distribution parameter, positive; 0.2 is the paper's ImageNet value.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import MixUp
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = MixUp(alpha=0.2)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
        >>> [round(float(total), 4) for total in tf.reduce_sum(labels, axis=1)[:3]]  # soft labels
        [1.0, 1.0, 1.0]
    """

    def __init__(self, alpha: float = 0.2):
        if not alpha > 0:
            raise ValueError(f"MixUp alpha must be positive, received {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        _check_one_hot(labels, "MixUp")
        batch = tf.shape(images)[0]
        seeds = _split(seed, 2)
        ratio = _beta(seeds[0], batch, self.alpha)
        partners = _partners(seeds[1], batch)
        labels = tf.cast(labels, tf.float32)
        mixed_images = _blend(images, tf.gather(images, partners), ratio[:, None, None, None])
        mixed_labels = _blend(labels, tf.gather(labels, partners), ratio[:, None])
        return mixed_images, mixed_labels

    def get_config(self) -> dict:
        return {"alpha": self.alpha}


def _blend(first: tf.Tensor, second: tf.Tensor, weight: tf.Tensor) -> tf.Tensor:
    return weight * first + (1.0 - weight) * second


class CutMix:
    """Pastes a random box from another image of the batch into each image (Yun et al., 2019).

    Each image draws `lam ~ Beta(alpha, alpha)`; a box of sides `sqrt(1 - lam)` times the image
    sides, centred at a random pixel and clipped at the borders, is copied from its partner (a
    random permutation of the batch). The label becomes the area-weighted mix of the two
    one-hot labels, with the area measured after clipping, so every row still sums to 1.

    Args:
        alpha: Beta distribution parameter, positive; 1.0 (uniform) is the paper's value.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import CutMix
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = CutMix(alpha=1.0)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
        >>> [round(float(total), 4) for total in tf.reduce_sum(labels, axis=1)[:3]]  # soft labels
        [1.0, 1.0, 1.0]
    """

    def __init__(self, alpha: float = 1.0):
        if not alpha > 0:
            raise ValueError(f"CutMix alpha must be positive, received {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        _check_one_hot(labels, "CutMix")
        batch = tf.shape(images)[0]
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        seeds = _split(seed, 4)
        side = tf.sqrt(1.0 - _beta(seeds[0], batch, self.alpha))
        box_height = tf.cast(tf.round(side * tf.cast(height, tf.float32)), tf.int32)
        box_width = tf.cast(tf.round(side * tf.cast(width, tf.float32)), tf.int32)
        centre_y = tf.random.stateless_uniform([batch], seeds[1], 0, height, tf.int32)
        centre_x = tf.random.stateless_uniform([batch], seeds[2], 0, width, tf.int32)
        top = tf.maximum(centre_y - box_height // 2, 0)
        bottom = tf.minimum(centre_y - box_height // 2 + box_height, height)
        left = tf.maximum(centre_x - box_width // 2, 0)
        right = tf.minimum(centre_x - box_width // 2 + box_width, width)
        masks = _box_masks(images, top, left, bottom - top, right - left)
        partners = _partners(seeds[3], batch)
        mixed_images = tf.where(masks, tf.gather(images, partners), images)
        # The label weight is the pasted area actually inside the image, not the drawn lam.
        pasted = tf.reduce_mean(tf.cast(masks, tf.float32), axis=[1, 2, 3])
        labels = tf.cast(labels, tf.float32)
        mixed_labels = _blend(tf.gather(labels, partners), labels, pasted[:, None])
        return mixed_images, mixed_labels

    def get_config(self) -> dict:
        return {"alpha": self.alpha}


# RandAugment's operations, each with its strength at magnitude 10 (of 10).
RANDAUGMENT_OPS = (
    "identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y", "zoom",
    "brightness", "contrast", "solarize", "posterize", "autocontrast",
)  # fmt: skip  # a table: rows read better than one item per line
_MAX_ROTATE_DEGREES = 30.0
_MAX_SHEAR = 0.3
_MAX_TRANSLATE = 0.3  # fraction of the image side; the paper's 0.45 loses most of a 28x28 image
_MAX_ZOOM = 0.3
_MAX_ENHANCE = 0.9  # brightness/contrast factor 1 +- 0.9, as PIL's ImageEnhance in the paper
_MAX_POSTERIZE_BITS_REMOVED = 4


class RandAugment:
    """Applies `num_ops` operations of strength `magnitude` to each image (Cubuk et al., 2020).

    Each image draws its own sequence of `num_ops` operations, uniformly from
    `RANDAUGMENT_OPS` (identity, rotate, shear x/y, translate x/y, zoom, brightness,
    contrast, solarize, posterize, autocontrast), and a random sign for the signed ones. All
    operations share one magnitude on a 0-10 scale; at 10 they reach +-30 degrees, shear 0.3,
    shifts of 0.3 of the image, zoom +-30%, brightness/contrast factors 1 +- 0.9, solarize
    every pixel, and posterize to 4 bits. Each round runs one batched geometric transform plus
    element-wise colour operations selected per image, so its cost does not grow with the
    number of operations.

    Args:
        num_ops: operations per image (N in the paper), 1-10.
        magnitude: strength of every operation (M), in [0, 10].
        fill_value: pixel value for areas that come from outside the image.

    Example:

        >>> import tensorflow as tf
        >>> from trainer.augment import RandAugment
        >>> images = tf.random.uniform([8, 28, 28, 1], seed=0)
        >>> augment = RandAugment(num_ops=2, magnitude=9)
        >>> images, labels = augment(images, tf.one_hot(tf.range(8), 10), tf.constant([1, 2]))
        >>> images.shape, labels.shape
        (TensorShape([8, 28, 28, 1]), TensorShape([8, 10]))
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0, fill_value: float = 0.0):
        if not isinstance(num_ops, int) or not 1 <= num_ops <= 10:
            raise ValueError(f"num_ops must be an int in 1..10, received {num_ops!r}")
        if not 0.0 <= magnitude <= 10.0:
            raise ValueError(f"magnitude must be in [0, 10], received {magnitude!r}")
        self.num_ops = num_ops
        self.magnitude = float(magnitude)
        self.fill_value = float(fill_value)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        for round_seed in tf.unstack(_split(seed, self.num_ops)):
            images = self._one_round(images, round_seed)
        return images, labels

    def _one_round(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(images)[0]
        seeds = _split(seed, 2)
        ops = tf.random.stateless_uniform(
            [batch], seed=seeds[0], minval=0, maxval=len(RANDAUGMENT_OPS), dtype=tf.int32
        )
        strength = self.magnitude / 10.0
        signed = _random_signs(seeds[1], batch) * strength

        def where_op(name: str, value: tf.Tensor, default: float) -> tf.Tensor:
            return tf.where(ops == RANDAUGMENT_OPS.index(name), value, default)

        # Geometric operations: at most one per image per round, so the product is exact.
        ones = tf.ones([batch])
        angle = where_op("rotate", signed * math.radians(_MAX_ROTATE_DEGREES), 0.0)
        shear_x = where_op("shear_x", signed * _MAX_SHEAR, 0.0)
        shear_y = where_op("shear_y", signed * _MAX_SHEAR, 0.0)
        zoom = where_op("zoom", 1.0 + signed * _MAX_ZOOM, 1.0)
        shear = tf.reshape(tf.stack([ones, shear_x, shear_y, ones], axis=1), [-1, 2, 2])
        matrix = _rotation_matrix(angle) @ shear @ _scale_matrix(1.0 / zoom, 1.0 / zoom)
        size = tf.cast(tf.stack([tf.shape(images)[2], tf.shape(images)[1]]), tf.float32)
        shift_x = where_op("translate_x", tf.round(signed * _MAX_TRANSLATE * size[0]), 0.0)
        shift_y = where_op("translate_y", tf.round(signed * _MAX_TRANSLATE * size[1]), 0.0)
        shifts = tf.stack([shift_x, shift_y], axis=1)
        transforms = _affine_transforms(images, matrix, shifts)
        images = _apply_transforms(images, transforms, self.fill_value)

        # Colour operations, each a no-op for the images that did not draw it.
        brightness = where_op("brightness", 1.0 + signed * _MAX_ENHANCE, 1.0)[:, None, None, None]
        images = tf.clip_by_value(images * brightness, 0.0, 1.0)
        contrast = where_op("contrast", 1.0 + signed * _MAX_ENHANCE, 1.0)[:, None, None, None]
        means = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value(means + (images - means) * contrast, 0.0, 1.0)
        solarize = (ops == RANDAUGMENT_OPS.index("solarize"))[:, None, None, None]
        images = tf.where(solarize & (images > 1.0 - strength), 1.0 - images, images)
        levels = 2.0 ** (8 - round(_MAX_POSTERIZE_BITS_REMOVED * strength))
        posterized = tf.floor(images * 255.0 / (256.0 / levels)) * (256.0 / levels) / 255.0
        posterize = (ops == RANDAUGMENT_OPS.index("posterize"))[:, None, None, None]
        images = tf.where(posterize, posterized, images)
        low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
        stretched = tf.where(high > low, (images - low) / tf.maximum(high - low, 1e-6), images)
        autocontrast = (ops == RANDAUGMENT_OPS.index("autocontrast"))[:, None, None, None]
        return tf.where(autocontrast, stretched, images)

    def get_config(self) -> dict:
        return {"num_ops": self.num_ops, "magnitude": self.magnitude, "fill_value": self.fill_value}


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
