"""Augmentations that mix two images of a batch and their labels: MixUp and CutMix."""

import tensorflow as tf

from trainer.augment import ops


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
        ops.check_one_hot(labels, "MixUp")
        batch = tf.shape(images)[0]
        seeds = ops.split(seed, 2)
        ratio = ops.beta(seeds[0], batch, self.alpha)
        partners = ops.partners(seeds[1], batch)
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
        ops.check_one_hot(labels, "CutMix")
        batch = tf.shape(images)[0]
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        seeds = ops.split(seed, 4)
        side = tf.sqrt(1.0 - ops.beta(seeds[0], batch, self.alpha))
        box_height = tf.cast(tf.round(side * tf.cast(height, tf.float32)), tf.int32)
        box_width = tf.cast(tf.round(side * tf.cast(width, tf.float32)), tf.int32)
        centre_y = tf.random.stateless_uniform([batch], seeds[1], 0, height, tf.int32)
        centre_x = tf.random.stateless_uniform([batch], seeds[2], 0, width, tf.int32)
        top = tf.maximum(centre_y - box_height // 2, 0)
        bottom = tf.minimum(centre_y - box_height // 2 + box_height, height)
        left = tf.maximum(centre_x - box_width // 2, 0)
        right = tf.minimum(centre_x - box_width // 2 + box_width, width)
        masks = ops.box_masks(images, top, left, bottom - top, right - left)
        partners = ops.partners(seeds[3], batch)
        mixed_images = tf.where(masks, tf.gather(images, partners), images)
        # The label weight is the pasted area actually inside the image, not the drawn lam.
        pasted = tf.reduce_mean(tf.cast(masks, tf.float32), axis=[1, 2, 3])
        labels = tf.cast(labels, tf.float32)
        mixed_labels = _blend(tf.gather(labels, partners), labels, pasted[:, None])
        return mixed_images, mixed_labels

    def get_config(self) -> dict:
        return {"alpha": self.alpha}
