"""RandAugment: a random choice of operations per image at one global magnitude."""

import math

import tensorflow as tf

from trainer.augment import ops

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
        for round_seed in tf.unstack(ops.split(seed, self.num_ops)):
            images = self._one_round(images, round_seed)
        return images, labels

    def _one_round(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(images)[0]
        seeds = ops.split(seed, 2)
        chosen = tf.random.stateless_uniform(
            [batch], seed=seeds[0], minval=0, maxval=len(RANDAUGMENT_OPS), dtype=tf.int32
        )
        strength = self.magnitude / 10.0
        signed = ops.random_signs(seeds[1], batch) * strength

        def where_op(name: str, value: tf.Tensor, default: float) -> tf.Tensor:
            return tf.where(chosen == RANDAUGMENT_OPS.index(name), value, default)

        # Geometric operations: at most one per image per round, so the product is exact.
        ones = tf.ones([batch])
        angle = where_op("rotate", signed * math.radians(_MAX_ROTATE_DEGREES), 0.0)
        shear_x = where_op("shear_x", signed * _MAX_SHEAR, 0.0)
        shear_y = where_op("shear_y", signed * _MAX_SHEAR, 0.0)
        zoom = where_op("zoom", 1.0 + signed * _MAX_ZOOM, 1.0)
        shear = tf.reshape(tf.stack([ones, shear_x, shear_y, ones], axis=1), [-1, 2, 2])
        matrix = ops.rotation_matrix(angle) @ shear @ ops.scale_matrix(1.0 / zoom, 1.0 / zoom)
        size = tf.cast(tf.stack([tf.shape(images)[2], tf.shape(images)[1]]), tf.float32)
        shift_x = where_op("translate_x", tf.round(signed * _MAX_TRANSLATE * size[0]), 0.0)
        shift_y = where_op("translate_y", tf.round(signed * _MAX_TRANSLATE * size[1]), 0.0)
        shifts = tf.stack([shift_x, shift_y], axis=1)
        transforms = ops.affine_transforms(images, matrix, shifts)
        images = ops.apply_transforms(images, transforms, self.fill_value)

        # Colour operations, each a no-op for the images that did not draw it.
        brightness = where_op("brightness", 1.0 + signed * _MAX_ENHANCE, 1.0)[:, None, None, None]
        images = tf.clip_by_value(images * brightness, 0.0, 1.0)
        contrast = where_op("contrast", 1.0 + signed * _MAX_ENHANCE, 1.0)[:, None, None, None]
        means = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = tf.clip_by_value(means + (images - means) * contrast, 0.0, 1.0)
        solarize = (chosen == RANDAUGMENT_OPS.index("solarize"))[:, None, None, None]
        images = tf.where(solarize & (images > 1.0 - strength), 1.0 - images, images)
        levels = 2.0 ** (8 - round(_MAX_POSTERIZE_BITS_REMOVED * strength))
        posterized = tf.floor(images * 255.0 / (256.0 / levels)) * (256.0 / levels) / 255.0
        posterize = (chosen == RANDAUGMENT_OPS.index("posterize"))[:, None, None, None]
        images = tf.where(posterize, posterized, images)
        low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
        stretched = tf.where(high > low, (images - low) / tf.maximum(high - low, 1e-6), images)
        autocontrast = (chosen == RANDAUGMENT_OPS.index("autocontrast"))[:, None, None, None]
        return tf.where(autocontrast, stretched, images)

    def get_config(self) -> dict:
        return {"num_ops": self.num_ops, "magnitude": self.magnitude, "fill_value": self.fill_value}
