"""`tf.data` pipelines from in-memory arrays: shuffle, batch, augment, prefetch.

Images stay uint8 in memory and become float32 in [0, 1] per batch; labels become one-hot
(so label smoothing, MixUp and CutMix can use soft labels). Augmentation runs on whole
batches with stateless random ops seeded from `seed`, so a fixed seed gives the same batches
and each epoch still sees new ones. This module must not read files or define models.

Example:

    >>> import numpy as np
    >>> from trainer.augment import RandomFlip
    >>> from trainer.data.pipeline import image_dataset
    >>> x, y = np.zeros((100, 28, 28), np.uint8), np.arange(100) % 10
    >>> train = image_dataset(x, y, num_classes=10, batch_size=32, training=True,
    ...                       augment=RandomFlip(), seed=0)
    >>> images, labels = next(iter(train))  # float images in [0, 1], one-hot labels
    >>> images.shape, images.dtype.name, labels.shape, len(train)
    (TensorShape([32, 28, 28, 1]), 'float32', TensorShape([32, 10]), 4)
"""

import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

# Fixed parallelism instead of tf.data AUTOTUNE. Measured with TF 2.21 on 2 cores: with
# AUTOTUNE, Keras `fit` stalled 15-20 s between most epochs, because deleting the finished
# epoch's iterator waits for the autotune thread's sleep, which doubles up to 60 s on long
# epochs (`Model::OptimizeLoop`). That cost 162 s of a 441 s Fashion-MNIST run. These
# in-memory pipelines are far faster than training, so tuning them gains nothing.
PARALLEL_CALLS = os.cpu_count() or 1
PREFETCH_BATCHES = 2


def finish(dataset: tf.data.Dataset, deterministic: bool = True) -> tf.data.Dataset:
    """Prefetches a fixed number of batches with tf.data autotuning off (see above)."""
    options = tf.data.Options()
    options.deterministic = deterministic
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(PREFETCH_BATCHES)


def _as_images(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:  # (count, height, width): grayscale without a channel axis
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(
            f"images must have shape (count, height, width[, channels]), received {x.shape}"
        )
    return x


def image_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    num_classes: int,
    batch_size: int,
    training: bool,
    augment: Callable | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Builds a batched dataset of (float32 images in [0, 1], one-hot labels).

    Args:
        x: images, uint8 (scaled by 1/255) or float (kept as is), NHW or NHWC.
        y: integer labels in [0, num_classes).
        num_classes: width of the one-hot labels.
        batch_size: examples per batch.
        training: shuffle every epoch and apply `augment`; otherwise keep order.
        augment: callable `(images, labels, seed) -> (images, labels)` from `trainer.augment`.
        seed: makes shuffling and augmentation reproducible (element order is kept fixed
            under the parallel map, so a seed gives the same batches every time).
    """
    x = _as_images(x)
    y = np.asarray(y).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels; they must match")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, received {batch_size}")
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    # Shuffle and batch indices, then gather each batch from the arrays held once in memory
    # (as Keras does for `fit(x, y)`): a shuffle buffer of images would copy the whole data
    # set every epoch and hold up the first batch until it is full.
    images_in_memory, labels_in_memory = tf.constant(x), tf.constant(y)
    dataset = tf.data.Dataset.range(len(x))
    if training:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_float(indices):
        images = tf.cast(tf.gather(images_in_memory, indices), tf.float32) * scale
        return images, tf.one_hot(tf.gather(labels_in_memory, indices), num_classes)

    if training and augment is not None:
        # One random int64 per batch, different each epoch but fixed by `seed`.
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset, randoms))

        def augmented(indices, random):
            images, labels = to_float(indices)
            batch_seed = tf.stack([random, tf.constant(seed, tf.int64)])
            return augment(images, labels, batch_seed)

        dataset = dataset.map(augmented, num_parallel_calls=PARALLEL_CALLS)
    else:
        dataset = dataset.map(to_float, num_parallel_calls=PARALLEL_CALLS)
    return finish(dataset)
