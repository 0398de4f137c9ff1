"""Image model builders: a small CNN, the CIFAR ResNets of He et al. and a ResNet-9.

Plain functions with explicit arguments returning uncompiled functional `tf_keras` models whose
output is logits. This module must not compile, train or export.

Example:

    >>> from trainer.models import small_cnn
    >>> model = small_cnn(input_shape=(28, 28, 1), num_classes=10)
    >>> model.output_shape, model.count_params()  # logits; three stages by default
    ((None, 10), 156074)
"""

import math

import tf_keras as keras

from trainer.config import check_number
from trainer.resources import TRAINING_BYTES_PER_WEIGHT, check_memory

layers = keras.layers


def _check_input_shape(input_shape) -> tuple[int, int, int]:
    if len(tuple(input_shape)) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels), received {tuple(input_shape)!r}"
        )
    height, width, channels = (
        check_number(name, value, minimum=1, integer=True)
        for name, value in zip(("height", "width", "channels"), input_shape, strict=True)
    )
    return height, width, channels


def _check_model_memory(weights: int, name: str, advice: str) -> None:
    check_memory(
        TRAINING_BYTES_PER_WEIGHT * weights,
        f"{name} with {int(weights):,} weights (with its gradients and optimizer state)",
        advice,
    )


def _momentum(value) -> float:
    return check_number("batch_norm_momentum", value, minimum=0, maximum=1, exclusive_maximum=True)


def _small_cnn_sizes(size: int, stages: int) -> list[int]:
    """The side of the feature map each stage works on (pooling: valid twice, then same)."""
    sizes = [size]
    for stage in range(1, stages):
        sizes.append(sizes[-1] // 2 if stage <= 2 else math.ceil(sizes[-1] / 2))
    return sizes


def _check_small_cnn(input_shape, num_classes, width, stages, head_units) -> None:
    """Refuses a small_cnn whose stages run out of image or whose weights cannot fit, naming
    the arguments (the recipes' options of the same names) before Keras builds anything."""
    height, image_width, channels = _check_input_shape(input_shape)
    sides = _small_cnn_sizes(min(height, image_width), stages)
    # A side only reaches 0 by pooling a side of 1, and pooling 1 ("same") adds nothing.
    useful = sides.index(1) + 1 if 1 in sides else stages
    if stages > useful:
        raise ValueError(
            f"stages={stages} is too many for {height}x{image_width} images: each stage but the "
            f"last halves the image ({' -> '.join(map(str, sides[: useful + 1]))}), so stage "
            f"{useful} already works on 1x1; lower stages (--stages) to at most {useful}, or use "
            "larger images (--image_size)"
        )
    inputs, weights = channels, 0
    for stage in range(stages):
        filters = width * 2**stage
        weights += 9 * inputs * filters + 4 * filters  # convolution and batch norm
        inputs = filters
    final = math.ceil(height / 2 ** (stages - 1)) * math.ceil(image_width / 2 ** (stages - 1))
    features = final * inputs
    for units in ([head_units] if head_units else []) + [num_classes]:
        weights += (features + 1) * units
        features = units
    _check_model_memory(
        weights,
        f"small_cnn(width={width}, stages={stages})",
        "lower width (--width) or stages (--stages): each stage doubles the filters",
    )


def _conv_bn_relu(x, filters: int, l2: float, momentum: float, strides: int = 1, name: str = ""):
    x = layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def small_cnn(
    input_shape: tuple[int, ...] = (28, 28, 1),
    num_classes: int = 10,
    width: int = 32,
    dropout: float = 0.3,
    head_units: int = 0,
    l2: float = 0.0,
    batch_norm_momentum: float = 0.99,
    stages: int = 3,
) -> keras.Model:
    """A conv/batch-norm/ReLU network with max pooling between stages and a dense head.

    Stage k has `width * 2**(k-1)` filters (`width`, `2*width`, `4*width`, ...) and every stage
    but the last ends in 2x2 max pooling (from the third pooling on with "same" padding, so
    28x28 goes 14, 7, 4). The head flattens the last feature map (spatial layout matters for
    small images), optionally adds a hidden dense layer of `head_units` (cheap extra capacity),
    and applies dropout before each dense layer. `stages=4` adds a stage at 4x4 on 28x28
    inputs: 0.43M parameters at width 32 instead of 0.16M, for about 60% more FLOPs.
    """
    num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
    width = check_number("width", width, minimum=1, integer=True)
    stages = check_number("stages", stages, minimum=1, integer=True)
    dropout = check_number("dropout", dropout, minimum=0, maximum=1, exclusive_maximum=True)
    head_units = check_number("head_units", head_units, minimum=0, integer=True)
    l2 = check_number("l2", l2, minimum=0)
    batch_norm_momentum = _momentum(batch_norm_momentum)
    _check_small_cnn(input_shape, num_classes, width, stages, head_units)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for stage in range(1, stages + 1):
        x = _conv_bn_relu(
            x, width * 2 ** (stage - 1), l2, batch_norm_momentum, name=f"stage{stage}"
        )
        if stage < stages:
            padding = "valid" if stage <= 2 else "same"
            x = layers.MaxPool2D(padding=padding, name=f"stage{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    if head_units:
        x = layers.Dropout(dropout, name="head_dropout")(x)
        x = layers.Dense(
            head_units,
            activation="relu",
            kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
            name="head",
        )(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(
        num_classes,
        kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
        name="logits",
    )(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def resnet(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    depth: int = 20,
    width: int = 16,
    l2: float = 1e-4,
    batch_norm_momentum: float = 0.99,
) -> keras.Model:
    """The CIFAR ResNet of He et al. (2016): depth 6n+2, three stages of basic blocks.

    Stages have `width`, `2*width`, `4*width` filters; the shortcut is a 1x1 strided
    convolution with batch norm where the shape changes. depth=20 gives ResNet-20 (0.27M
    parameters at width 16), depth=56 ResNet-56.
    """
    depth = check_number("depth", depth, minimum=8, integer=True)
    if (depth - 2) % 6 != 0:
        raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32, 56...), received {depth}")
    num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
    width = check_number("width", width, minimum=1, integer=True)
    l2 = check_number("l2", l2, minimum=0)
    batch_norm_momentum = _momentum(batch_norm_momentum)
    channels = _check_input_shape(input_shape)[2]
    blocks = (depth - 2) // 6
    convolutions = 9 * channels * width + sum(
        blocks * 18 * (width * 2**stage) ** 2 for stage in range(3)
    )
    _check_model_memory(
        convolutions + 4 * width * num_classes,
        f"resnet(depth={depth}, width={width})",
        "lower width (--width) or depth (--model)",
    )
    regularizer = keras.regularizers.l2(l2) if l2 else None
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, width, l2, batch_norm_momentum, name="stem")
    for stage in range(3):
        filters = width * 2**stage
        for block in range(blocks):
            name = f"stage{stage + 1}_block{block + 1}"
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = _conv_bn_relu(x, filters, l2, batch_norm_momentum, strides, name=f"{name}_a")
            y = layers.Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_regularizer=regularizer,
                name=f"{name}_b_conv",
            )(y)
            y = layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_b_bn")(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(
                    filters,
                    1,
                    strides=strides,
                    use_bias=False,
                    kernel_regularizer=regularizer,
                    name=f"{name}_shortcut_conv",
                )(shortcut)
                shortcut = layers.BatchNormalization(
                    momentum=batch_norm_momentum, name=f"{name}_shortcut_bn"
                )(shortcut)
            x = layers.Add(name=f"{name}_add")([shortcut, y])
            x = layers.ReLU(name=f"{name}_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


def resnet9(
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    width: int = 64,
    l2: float = 0.0,
    batch_norm_momentum: float = 0.9,
    logit_scale: float = 0.125,
) -> keras.Model:
    """The fast CIFAR ResNet-9 of the DAWNBench entries (Page 2018, Myrtle.ai; airbench).

    prep (width) -> conv 2*width + pool + residual(2 convs) -> conv 4*width + pool -> conv
    8*width + pool + residual(2 convs) -> global max pool -> linear, logits multiplied by
    `logit_scale` (0.125 in the original, which keeps the softmax soft early on). width=64
    gives the published 6.6M-parameter network; width=32 a quarter of it for CPUs.
    """
    num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
    width = check_number("width", width, minimum=1, integer=True)
    l2 = check_number("l2", l2, minimum=0)
    batch_norm_momentum = _momentum(batch_norm_momentum)
    logit_scale = check_number("logit_scale", logit_scale, minimum=0, exclusive_minimum=True)
    channels = _check_input_shape(input_shape)[2]
    _check_model_memory(
        9 * width * width * (channels / width + 2 + 8 + 8 + 32 + 128) + 8 * width * num_classes,
        f"resnet9(width={width})",
        "lower width (--width)",
    )
    regularizer = keras.regularizers.l2(l2) if l2 else None

    def residual(x, filters: int, name: str):
        y = _conv_bn_relu(x, filters, l2, batch_norm_momentum, name=f"{name}_a")
        y = _conv_bn_relu(y, filters, l2, batch_norm_momentum, name=f"{name}_b")
        return layers.Add(name=f"{name}_add")([x, y])

    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, width, l2, batch_norm_momentum, name="prep")
    x = _conv_bn_relu(x, 2 * width, l2, batch_norm_momentum, name="layer1")
    x = layers.MaxPool2D(name="layer1_pool")(x)
    x = residual(x, 2 * width, "layer1_residual")
    x = _conv_bn_relu(x, 4 * width, l2, batch_norm_momentum, name="layer2")
    x = layers.MaxPool2D(name="layer2_pool")(x)
    x = _conv_bn_relu(x, 8 * width, l2, batch_norm_momentum, name="layer3")
    x = layers.MaxPool2D(name="layer3_pool")(x)
    x = residual(x, 8 * width, "layer3_residual")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_regularizer=regularizer, name="linear")(x)
    outputs = layers.Rescaling(logit_scale, name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet9")


@keras.saving.register_keras_serializable(package="trainer")
class HorizontalFlip(layers.Layer):
    """Mirrors NHWC images left-right (always, not at random: for test-time flipping)."""

    def call(self, images):
        return images[:, :, ::-1, :]


def with_test_time_flip(model: keras.Model) -> keras.Model:
    """The mean of a model's logits on an image and on its mirror image, as one model (so the
    exported TFLite file flips too, at twice the cost). Shares the weights of `model`.

    Example:

        >>> from trainer.models import small_cnn, with_test_time_flip
        >>> model = with_test_time_flip(small_cnn(input_shape=(28, 28, 1), num_classes=10))
        >>> model.name, model.output_shape
        ('small_cnn_flip_averaged', (None, 10))
    """
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    both = [model(inputs), model(HorizontalFlip(name="mirror")(inputs))]
    outputs = layers.Average(name="logits_mean")(both)
    return keras.Model(inputs, outputs, name=f"{model.name}_flip_averaged")


def without_test_time_flip(model: keras.Model) -> keras.Model:
    """The model inside a `with_test_time_flip` wrapper (also one loaded from a file); any
    other model unchanged. Compression works on this inner model: pruning and quantization
    wrap the layers of one flat model."""
    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    mirrors = [layer for layer in model.layers if isinstance(layer, HorizontalFlip)]
    if len(inner) == 1 and len(mirrors) == 1 and model.name.endswith("_flip_averaged"):
        return inner[0]
    return model
