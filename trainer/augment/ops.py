"""Batched random draws, affine transforms and masks shared by the augmentations."""

import tensorflow as tf


def split(seed: tf.Tensor, count: int) -> tf.Tensor:
    return tf.random.experimental.stateless_split(seed, num=count)


def uniform(seed: tf.Tensor, batch: tf.Tensor, low: float, high: float) -> tf.Tensor:
    return tf.random.stateless_uniform([batch], seed=seed, minval=low, maxval=high)


def random_signs(seed: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    return tf.where(tf.random.stateless_uniform([batch], seed=seed) < 0.5, -1.0, 1.0)


def offsets(seed: tf.Tensor, room: tf.Tensor) -> tf.Tensor:
    """A uniform integer in [0, room[i]] per image (stateless ints need one scalar range)."""
    fractions = tf.random.stateless_uniform(tf.shape(room), seed=seed)
    return tf.cast(fractions * tf.cast(room + 1, tf.float32), tf.int32)


def beta(seed: tf.Tensor, batch: tf.Tensor, alpha: float) -> tf.Tensor:
    # Beta(a, a) = G1 / (G1 + G2) with G ~ Gamma(a): TF has a stateless gamma, not a beta.
    gammas = tf.random.stateless_gamma([2, batch], seed=seed, alpha=alpha)
    return gammas[0] / tf.maximum(gammas[0] + gammas[1], 1e-12)


def partners(seed: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """A random permutation of the batch: who each image is mixed with."""
    return tf.argsort(tf.random.stateless_uniform([batch], seed=seed))


def check_probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], received {value!r}")
    return float(value)


def check_one_hot(labels: tf.Tensor, who: str) -> None:
    if labels.shape.rank != 2:
        raise ValueError(
            f"{who} mixes labels, so it needs one-hot labels [batch, classes]; received labels "
            f"of shape {labels.shape}. Build the dataset with trainer.data.pipeline.image_dataset "
            "(it one-hots) or tf.one_hot your labels."
        )


def affine_transforms(images: tf.Tensor, matrix: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
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


def apply_transforms(images: tf.Tensor, transforms: tf.Tensor, fill_value: float) -> tf.Tensor:
    # Bilinear sampling of [0, 1] pixels stays in [0, 1]; outside the image reads `fill_value`.
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.shape(images)[1:3],
        fill_value=tf.constant(fill_value, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def rotation_matrix(angles: tf.Tensor) -> tf.Tensor:
    cos, sin = tf.cos(angles), tf.sin(angles)
    return tf.reshape(tf.stack([cos, -sin, sin, cos], axis=1), [-1, 2, 2])


def scale_matrix(scale_x: tf.Tensor, scale_y: tf.Tensor) -> tf.Tensor:
    zeros = tf.zeros_like(scale_x)
    return tf.reshape(tf.stack([scale_x, zeros, zeros, scale_y], axis=1), [-1, 2, 2])


def box_masks(
    images: tf.Tensor, top: tf.Tensor, left: tf.Tensor, box_height: tf.Tensor, box_width: tf.Tensor
) -> tf.Tensor:
    """Boolean masks `[batch, height, width, 1]`, true inside each image's own rectangle."""
    rows = tf.range(tf.shape(images)[1])[None, :]
    cols = tf.range(tf.shape(images)[2])[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + box_height)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + box_width)[:, None])
    return (in_rows[:, :, None] & in_cols[:, None, :])[..., None]
