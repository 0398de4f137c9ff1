"""Images from any source to one uint8 NHWC array: decoding, channel conversion, resizing.

Folders and TFDS both hand their images here, so every source gets the same rules: the target
size is `SourceOptions.image_size` (else the most common size), the target channel count is
`SourceOptions.channels` (else 3 if any image has colour), and each image that had to be
converted is reported as a problem by name. This module must not read files or walk folders.

Example:

    >>> import numpy as np
    >>> from trainer.data.images import uniform_images
    >>> from trainer.data.types import SourceOptions
    >>> images = [np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 1), np.uint8)]
    >>> x, problems = uniform_images(images, ["a.png", "b.png"], ["", ""], SourceOptions())
    >>> x.shape, [problem.check for problem in problems]
    ((2, 8, 8, 3), ['image_size', 'image_channels'])
"""

import re
from collections import Counter

import numpy as np

from trainer.data.types import Problem, SourceOptions
from trainer.resources import check_memory


def decode_image(data: bytes) -> tuple[np.ndarray | None, str]:
    """Decodes PNG/JPEG/BMP/GIF bytes (first frame) to uint8 HWC, or (None, why not)."""
    import tensorflow as tf

    if not data:
        return None, "zero-byte file"
    try:
        image = tf.io.decode_image(data, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        # TensorFlow prefixes "{{function_node ...}}"; keep only the sentence a user can read.
        message = re.sub(r"\{\{.*?\}\}\s*", "", str(error)).strip().splitlines()[0][:120]
        return None, f"cannot decode as an image ({message})"
    if image.dtype != np.uint8:  # 16-bit PNG
        image = (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    return image, ""


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    have = image.shape[-1]
    if have == channels:
        return image
    if channels == 1:
        if have in (1, 2):
            return image[..., :1]
        weights = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma
        return (image[..., :3].astype(np.float32) @ weights).round().astype(np.uint8)[..., None]
    if have in (1, 2):
        return np.repeat(image[..., :1], 3, axis=-1)
    return image[..., :3]  # RGBA: drop alpha


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import tensorflow as tf

    if image.shape[:2] == size:
        return image
    resized = tf.image.resize(image, size, antialias=True).numpy()
    return np.clip(resized.round(), 0, 255).astype(np.uint8)


def uniform_images(
    images: list[np.ndarray], names: list[str], splits: list[str], options: SourceOptions
) -> tuple[np.ndarray, list[Problem]]:
    """Stacks images of mixed sizes and channel counts into one uint8 NHWC array.

    The target size is `options.image_size` square, else the most common size; the target
    channel count is `options.channels`, else 3 if any image has colour. Each image whose
    size or channel count differs from the most common one is reported (action "fixed").
    """
    shapes = [image.shape for image in images]
    common_size = Counter(shape[:2] for shape in shapes).most_common(1)[0][0]
    common_channels = Counter(shape[2] for shape in shapes).most_common(1)[0][0]
    size = (options.image_size, options.image_size) if options.image_size else common_size
    channels = options.channels or (3 if any(shape[2] >= 3 for shape in shapes) else 1)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 0 (auto), 1 or 3, received {options.channels}")
    # The uint8 stack, and the float32 copy of one image while it is resized: a lower bound,
    # checked before any of it is made.
    check_memory(
        (len(images) + 4) * size[0] * size[1] * channels,
        f"{len(images):,} images of {size[1]}x{size[0]}x{channels} pixels",
        "lower --image_size"
        if options.image_size
        else "the images are that large: pass --image_size=N to resize them to N x N",
    )
    problems = []
    out = np.zeros((len(images), *size, channels), np.uint8)
    for index, (image, name, split) in enumerate(zip(images, names, splits, strict=True)):
        if image.shape[:2] != common_size:
            problems.append(
                Problem(
                    "image_size",
                    name,
                    f"{image.shape[1]}x{image.shape[0]} pixels while most are "
                    f"{common_size[1]}x{common_size[0]}; resized to {size[1]}x{size[0]}",
                    split,
                    "fixed",
                )
            )
        if image.shape[2] != common_channels:
            problems.append(
                Problem(
                    "image_channels",
                    name,
                    f"{image.shape[2]} channel(s) while most have "
                    f"{common_channels}; converted to {channels}",
                    split,
                    "fixed",
                )
            )
        out[index] = _resize(_to_channels(image, channels), size)
    return out, problems
