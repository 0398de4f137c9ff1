"""Per-image augmentations: crop, flip, rotation, zoom, translation, brightness, contrast, erasing."""

import math

import tensorflow as tf

from trainer.augment import ops


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
        angles = ops.uniform(seed, batch, -limit, limit)
        matrix = ops.rotation_matrix(angles)
        transforms = ops.affine_transforms(images, matrix, tf.zeros([batch, 2]))
        return ops.apply_transforms(images, transforms, self.fill_value), labels

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
        zoom = ops.uniform(seed, batch, 1.0 - self.factor, 1.0 + self.factor)
        # Output pixels sample the input at 1/zoom times their distance from the centre.
        matrix = ops.scale_matrix(1.0 / zoom, 1.0 / zoom)
        transforms = ops.affine_transforms(images, matrix, tf.zeros([batch, 2]))
        return ops.apply_transforms(images, transforms, self.fill_value), labels

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
        identity = ops.scale_matrix(tf.ones([batch]), tf.ones([batch]))
        transforms = ops.affine_transforms(images, identity, -shifts)
        return ops.apply_transforms(images, transforms, self.fill_value), labels

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
        self.max_delta = ops.check_probability("max_delta", max_delta)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        deltas = ops.uniform(seed, tf.shape(images)[0], -self.max_delta, self.max_delta)
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
        self.factor = ops.check_probability("contrast factor", factor)

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
        factors = ops.uniform(seed, tf.shape(images)[0], 1.0 - self.factor, 1.0 + self.factor)
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
        self.probability = ops.check_probability("erasing probability", probability)
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
        seeds = ops.split(seed, 6)
        pixels = tf.cast(height * width, tf.float32)
        area = ops.uniform(seeds[0], batch, *self.area) * pixels
        log_low, log_high = math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])
        ratio = tf.exp(ops.uniform(seeds[1], batch, log_low, log_high))
        box_height = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area * ratio)), tf.int32), 1, height)
        box_width = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area / ratio)), tf.int32), 1, width)
        top = ops.offsets(seeds[2], height - box_height)
        left = ops.offsets(seeds[3], width - box_width)
        masks = ops.box_masks(images, top, left, box_height, box_width)
        chosen = ops.uniform(seeds[4], batch, 0.0, 1.0) < self.probability
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
