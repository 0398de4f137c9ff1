"""Batch augmentations for `tf.data` pipelines, vectorized and reproducible from a seed.

Augmentation lives in the input pipeline, not in the model: TF-MOT rejects preprocessing
layers such as `RandomFlip`, and exported TFLite files should not carry them (DESIGN.md).
Each augmentation is a callable `(images, labels, seed) -> (images, labels)` on a whole batch
(images float32 `[batch, height, width, channels]`), using stateless random ops so that a
pipeline seed reproduces the same batches. This module must not read files or build datasets.

Example:

    import tensorflow as tf
    from trainer.augment import Compose, RandomCropWithPadding, RandomFlip

    augment = Compose([RandomCropWithPadding(padding=2), RandomFlip()])
    images, labels = augment(tf.zeros([8, 28, 28, 1]), tf.zeros([8, 10]), tf.constant([1, 2]))
"""

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


class Compose:
    """Applies augmentations in order, each with its own seed split from the batch seed."""

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
