"""The exported image graph: what a mobile runtime feeds a classifier, and what it expects back.

MediaPipe Tasks' `ImageClassifier` (and the TFLite Task Library) feed a model a 1xHxWx3 RGB
image, as float32 normalized with the file's metadata, `(pixel - mean) / std`, with one scalar
mean and std, or as raw uint8 pixels; they read the output as probabilities. Our models are
trained on preprocessed inputs (pixels / 255, one channel for grayscale data) and return
logits. This module owns the difference: `ImageInput` says how raw pixels become the model's
input (from the recipe's `input_spec`), and `mobile_graph` wraps a model so that the exported
file takes an RGB image (a grayscale model turns it to gray inside the graph) and returns
probabilities (softmax) unless logits are asked for. It also inverts the preprocessing,
`raw_pixels`, so a runtime can be checked on the very images the test set came from.

It must not convert, write files or run models (`trainer.export.tflite` and
`trainer.export.runtimes` do).

Example:

    from trainer.export.mobile import image_input, mobile_graph
    image = image_input(model, {"shape": [28, 28, 1], "mean": 0.0, "std": 255.0})
    exported = mobile_graph(model, image, outputs="probabilities")  # 1x28x28x3 in, softmax out
"""

import dataclasses
from typing import Any

import numpy as np

# Input and output tensor types of an integer (int8) file. uint8 is the integer type the
# mobile runtimes accept; int8 suits integer-only accelerators but MediaPipe refuses it.
IO_TYPES = ("float32", "uint8", "int8")
OUTPUT_KINDS = ("probabilities", "logits")
# RGB -> gray, close to ITU-R BT.601 luminance (0.299, 0.587, 0.114). The weights are whole
# multiples of 1/217 summing to exactly 1, so a gray image repeated in three channels comes
# out as the same gray value, and an int8 file stores them exactly (the largest weight,
# 127/217, sets the per-channel scale to 1/217).
GRAY_WEIGHTS = np.array([65.0, 127.0, 25.0], np.float32) / np.float32(217.0)


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """How raw pixels (0-255) become the model's input: `(pixel - mean) / std` per channel.

    `channels` is the model's own (1 = grayscale, 3 = RGB); the exported file always takes
    3 channels (RGB).
    """

    height: int
    width: int
    channels: int
    mean: float
    std: float

    @property
    def color_space(self) -> str:
        return "GRAYSCALE" if self.channels == 1 else "RGB"

    @property
    def pixel_range(self) -> tuple[float, float]:
        """The model inputs of pixel values 0 and 255."""
        return (0.0 - self.mean) / self.std, (255.0 - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        """The numbers an app needs, for the sidecar JSON (the file's side: 3 RGB channels)."""
        return {
            "height": self.height,
            "width": self.width,
            "channels": 3,
            "color_space": "RGB",
            "mean": self.mean,
            "std": self.std,
            "model_channels": self.channels,
        }


def check_io(io: str) -> str:
    if io not in IO_TYPES:
        raise ValueError(
            f"io must be one of {', '.join(IO_TYPES)}, received {io!r}: float32 keeps float "
            "input and output, uint8 takes raw 0-255 pixels (what MediaPipe and the TFLite Task "
            "Library accept), int8 is for integer-only accelerators (MediaPipe refuses it)"
        )
    return io


def check_outputs(outputs: str) -> str:
    if outputs not in OUTPUT_KINDS:
        raise ValueError(
            f"outputs must be probabilities or logits, received {outputs!r}: probabilities "
            "(softmax) are what the mobile runtimes' score thresholds expect"
        )
    return outputs


def _scalar(value: Any, key: str) -> float:
    if isinstance(value, list | tuple | np.ndarray):
        raise ValueError(
            f"input_spec[{key!r}] is {value!r}: the mobile runtimes normalize every channel "
            "with one mean and one std, so give scalars (e.g. mean 0, std 255 for pixels / 255)"
        )
    return float(value)


def takes_images(model) -> bool:
    """Whether the model's one input is height x width x 1 or 3 (an image)."""
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or shape[-1] not in (1, 3):
        return False
    return bool(shape[1]) and bool(shape[2])


def _whole_pixels_over_255(x: np.ndarray | None) -> bool:
    """Whether every value of `x` is a whole number of 255ths in [0, 1]: pixels / 255."""
    if x is None or np.size(x) == 0:
        return False
    x = np.asarray(x, np.float64)
    if x.min() < 0.0 or x.max() > 1.0 + 1e-6:
        return False
    return float(np.max(np.abs(x * 255.0 - np.round(x * 255.0)))) < 1e-3


def image_input(model, input_spec: dict[str, Any] | None, x: np.ndarray | None = None):
    """The model's image input (`ImageInput`), or None when the model does not take images.

    The normalization comes from `input_spec`: `mean` and `std` (model input = (pixel - mean)
    / std), or else a `range` of [0, top] (pixels / (255 / top)). Without either, inputs `x`
    (e.g. the test set) that are all whole numbers of 255ths in [0, 1] show pixels / 255.

    Raises:
        ValueError: an image model whose normalization is not known that way (guessing would
            export a file that silently sees the wrong inputs), or per-channel mean/std, which
            the mobile runtimes do not implement.
    """
    if not takes_images(model):
        return None
    shape = model.input_shape
    spec = input_spec or {}
    if "mean" in spec or "std" in spec:
        mean, std = _scalar(spec.get("mean", 0.0), "mean"), _scalar(spec.get("std", 1.0), "std")
    elif len(spec.get("range") or []) == 2 and float(spec["range"][0]) == 0.0:
        mean, std = 0.0, 255.0 / float(spec["range"][1])
    elif _whole_pixels_over_255(x):
        mean, std = 0.0, 255.0
    else:
        raise ValueError(
            f"the model takes images {list(shape[1:])} but its input_spec {spec!r} does not "
            "say how pixels were scaled (and the inputs are not pixels / 255): give mean and "
            "std (model input = (pixel - mean) / std, e.g. mean 0 and std 255 for pixels / "
            "255) or a range of [0, top]"
        )
    if std <= 0:
        raise ValueError(f"input_spec std must be positive, received {std:g}")
    return ImageInput(int(shape[1]), int(shape[2]), int(shape[-1]), mean, std)


def ends_in_softmax(model) -> bool:
    """Whether the model's last layer already returns probabilities (softmax)."""
    import tf_keras as keras

    layer = model.layers[-1] if getattr(model, "layers", None) else None
    if isinstance(layer, keras.Model):
        return ends_in_softmax(layer)
    if isinstance(layer, keras.layers.Softmax):
        return True
    return getattr(layer, "activation", None) is keras.activations.softmax


def mobile_graph(model, image: ImageInput, outputs: str = "probabilities"):
    """`model` behind a 1xHxWx3 RGB input, with softmax at the output unless `outputs="logits"`.

    A grayscale model gets a fixed 1x1 convolution with `GRAY_WEIGHTS` in front. The wrapper
    shares `model`'s weights and computes in float32 (also when the global policy is mixed).
    """
    import tf_keras as keras

    from trainer.precision import float32_copy

    check_outputs(outputs)
    model = float32_copy(model)
    already_probabilities = ends_in_softmax(model)
    if outputs == "logits" and already_probabilities:
        raise ValueError(
            f"outputs='logits' was asked for, but {model.name} ends in a softmax: its logits are "
            "not an output of the model; export probabilities, or remove the softmax"
        )
    inputs = keras.Input((image.height, image.width, 3), name="image", dtype="float32")
    x = inputs
    if image.channels == 1:
        gray = keras.layers.Conv2D(1, 1, use_bias=False, name="rgb_to_gray", dtype="float32")
        x = gray(x)
        gray.set_weights([GRAY_WEIGHTS.reshape(1, 1, 3, 1)])
        gray.trainable = False
    x = model(x)
    if outputs == "probabilities" and not already_probabilities:
        x = keras.layers.Softmax(name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, x, name=f"{model.name}_rgb" if image.channels == 1 else model.name)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32: the reference for files that export
    probabilities."""
    shifted = np.asarray(logits, np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=-1, keepdims=True)).astype(np.float32)


def rgb(x: np.ndarray) -> np.ndarray:
    """Images with one channel repeated into three (others unchanged): the file's input."""
    x = np.asarray(x)
    return np.repeat(x, 3, axis=-1) if x.ndim == 4 and x.shape[-1] == 1 else x


def raw_pixels(x: np.ndarray, image: ImageInput) -> np.ndarray:
    """The uint8 RGB images (N x H x W x 3) that preprocess to `x`: `pixel = x * std + mean`,
    rounded. Grayscale inputs are repeated into three channels (a gray RGB image)."""
    pixels = np.asarray(x, np.float64) * image.std + image.mean
    return rgb(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


def model_inputs(pixels: np.ndarray, image: ImageInput) -> np.ndarray:
    """What the model computes from raw `pixels` (N x H x W x 3, uint8): the file's float
    input, `(pixel - mean) / std`, in float32."""
    return ((pixels.astype(np.float64) - image.mean) / image.std).astype(np.float32)
