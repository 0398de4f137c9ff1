"""Model builders: plain functions with explicit arguments that return `tf_keras` models.

Every builder returns an uncompiled functional model whose output is logits (no softmax), so
losses use `from_logits=True` and exported TFLite files give logits too. This module must not
compile, train or export.

Example:

    from trainer.models import small_cnn
    model = small_cnn(input_shape=(28, 28, 1), num_classes=10)
    model.summary()
"""

import tf_keras as keras

layers = keras.layers


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
) -> keras.Model:
    """A three-stage conv/batch-norm/ReLU network with max pooling and a dense head.

    Stages have `width`, `2*width`, `4*width` filters; the first two end in 2x2 max pooling,
    and the head flattens the last feature map (spatial layout matters for small images),
    optionally adds a hidden dense layer of `head_units` (cheap extra capacity), and applies
    dropout before each dense layer.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, received {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), received {dropout}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn_relu(inputs, width, l2, batch_norm_momentum, name="stage1")
    x = layers.MaxPool2D(name="stage1_pool")(x)
    x = _conv_bn_relu(x, 2 * width, l2, batch_norm_momentum, name="stage2")
    x = layers.MaxPool2D(name="stage2_pool")(x)
    x = _conv_bn_relu(x, 4 * width, l2, batch_norm_momentum, name="stage3")
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
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32, 56...), received {depth}")
    blocks = (depth - 2) // 6
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
                filters, 3, padding="same", use_bias=False,
                kernel_regularizer=regularizer, name=f"{name}_b_conv",
            )(y)  # fmt: skip
            y = layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_b_bn")(y)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(
                    filters, 1, strides=strides, use_bias=False,
                    kernel_regularizer=regularizer, name=f"{name}_shortcut_conv",
                )(shortcut)  # fmt: skip
                shortcut = layers.BatchNormalization(
                    momentum=batch_norm_momentum, name=f"{name}_shortcut_bn"
                )(shortcut)
            x = layers.Add(name=f"{name}_add")([shortcut, y])
            x = layers.ReLU(name=f"{name}_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, kernel_regularizer=regularizer, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}")


def text_classifier(
    sequence_length: int = 200,
    vocab_size: int = 20000,
    num_classes: int = 2,
    embedding_dim: int = 64,
    width: int = 64,
    dropout: float = 0.3,
) -> keras.Model:
    """A word-embedding, 1-D convolution, global-max-pool text classifier over token ids.

    The input is token ids from `trainer.data.text.Vectorizer`, given as float32 so that the
    exported TFLite file takes the same float input as the image models (ids below 2**24 are
    exact in float32); the Embedding layer casts them to integers. String processing stays out
    of the model, so it converts to TFLite with builtin ops only.

    Example:

        model = text_classifier(sequence_length=100, vocab_size=5000, num_classes=2)
    """
    if sequence_length < 1 or vocab_size < 2 or embedding_dim < 1 or width < 1:
        raise ValueError(
            "sequence_length, embedding_dim and width must be positive and vocab_size at least "
            f"2, received {sequence_length}, {embedding_dim}, {width} and {vocab_size}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), received {dropout}")
    inputs = keras.Input(shape=(sequence_length,), dtype="float32", name="token_ids")
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = layers.Conv1D(width, 5, padding="same", activation="relu", name="conv")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="text_classifier")
