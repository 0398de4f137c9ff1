"""Transfer learning: a Keras Applications backbone with a new head, then its top unfrozen.

`transfer_model` puts MobileNetV2, EfficientNet-B0 or ResNet-50 (`tf_keras.applications`,
built with `weights=None`, never downloaded) under a new dropout + linear head, with the
backbone's own input scaling inside the model so it still takes [0, 1] pixels like every model
here (grayscale is repeated to three channels). Weights come from a local file (the
Applications' `*_notop.h5` or any weights file of the same backbone) or from an earlier run's
`model.keras` (`RUN_DIR`) that used the same backbone: pretrain on one data set, transfer to
another. A pretrained backbone is frozen and called with `training=False`, so its batch norm
stays in inference mode in both phases (the Keras guide's rule for fine-tuning);
`unfreeze_top` opens its top layers for the second phase. With `weights="none"` there is
nothing to keep: the whole backbone trains from scratch with batch norm in training mode (a
frozen random backbone gives near-constant features, so a run meant to pretrain a backbone
for a later `--weights=RUN_DIR` learned only its head). This module must not compile or train.

Example:

    from trainer.models.transfer import transfer_model, unfreeze_top
    model, backbone = transfer_model("mobilenet_v2", (96, 96, 3), 5, weights="none")
    ...  # compile and fit the head
    unfreeze_top(backbone, 0.2)  # then compile again with a lower learning rate and fit
"""

from pathlib import Path

import tf_keras as keras

from trainer.config import check_number

layers = keras.layers
BACKBONES = ("mobilenet_v2", "efficientnet_b0", "resnet50")


def _backbone(name: str, input_shape: tuple[int, int, int]) -> keras.Model:
    applications = keras.applications
    if name == "mobilenet_v2":
        return applications.MobileNetV2(input_shape=input_shape, include_top=False, weights=None)
    if name == "efficientnet_b0":
        return applications.EfficientNetB0(input_shape=input_shape, include_top=False, weights=None)
    if name == "resnet50":
        return applications.ResNet50(input_shape=input_shape, include_top=False, weights=None)
    raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")


@keras.saving.register_keras_serializable(package="trainer")
class ReverseChannels(layers.Layer):
    """RGB to BGR (and back): reverses the last axis."""

    def call(self, images):
        return images[..., ::-1]


def _scale_for(name: str, x):
    """[0, 1] pixels to what each backbone was trained on."""
    if name == "mobilenet_v2":  # [-1, 1]
        return layers.Rescaling(2.0, offset=-1.0, name="to_minus_one_one")(x)
    if name == "efficientnet_b0":  # [0, 255]; the model normalizes itself
        return layers.Rescaling(255.0, name="to_0_255")(x)
    # resnet50 ("caffe"): BGR, ImageNet means subtracted, [0, 255]
    x = layers.Rescaling(255.0, name="to_0_255")(x)
    bgr = ReverseChannels(name="rgb_to_bgr")(x)
    return layers.Normalization(
        mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0], name="imagenet_mean"
    )(bgr)


def is_from_scratch(weights: str) -> bool:
    """True when `weights` names no pretrained weights ("" or "none")."""
    return weights in ("", "none")


def load_backbone_weights(backbone: keras.Model, weights: str) -> str:
    """Loads `weights` into `backbone`: "none" (random), a weights file, or a run folder whose
    model.keras holds the same backbone. Returns a short description for the report."""
    if is_from_scratch(weights):
        return "random initialization, trained from scratch"
    path = Path(weights).expanduser()
    if path.is_dir():
        saved = path / "model.keras"
        if not saved.is_file():
            raise FileNotFoundError(
                f"--weights={weights} is a folder without model.keras; pass a finished run "
                "folder, a weights file (.h5 / .weights.h5) or none"
            )
        earlier = keras.models.load_model(saved, compile=False)
        try:
            source = earlier.get_layer(backbone.name)
        except ValueError:
            raise ValueError(
                f"the run {path} has no {backbone.name} backbone; use a run trained with the same "
                "--backbone, or a weights file"
            ) from None
        backbone.set_weights(source.get_weights())
        return f"backbone of the run {path}"
    if not path.is_file():
        raise FileNotFoundError(
            f"--weights={weights} does not exist. Pass none, a local weights file of this "
            "backbone (e.g. mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5 "
            "from the Keras Applications release; nothing is downloaded) or a run folder"
        )
    backbone.load_weights(str(path))
    return f"weights file {path.name}"


def _dropout(value) -> float:
    return check_number("dropout", value, minimum=0, maximum=1, exclusive_maximum=True)


def transfer_model(
    backbone: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    weights: str = "none",
    dropout: float = 0.2,
    batch_norm_momentum: float | None = None,
) -> tuple[keras.Model, keras.Model]:
    """(model, backbone): the backbone under a pooled dropout + linear head; frozen, batch
    norm in inference mode, when `weights` loads pretrained weights, trainable from scratch
    otherwise (then `batch_norm_momentum`, if given, replaces the backbone's own, e.g. 0.999 in
    MobileNetV2, which a short run's moving statistics never catch up with).

    Example:

        model, base = transfer_model("efficientnet_b0", (64, 64, 3), 10, weights="none")
    """
    num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
    dropout = _dropout(dropout)
    if batch_norm_momentum is not None:
        batch_norm_momentum = check_number(
            "batch_norm_momentum", batch_norm_momentum, minimum=0, maximum=1, exclusive_maximum=True
        )
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3) or min(input_shape[:2]) < 32:
        raise ValueError(
            f"backbones take images of at least 32x32 with 1 or 3 channels, received "
            f"{input_shape}; set --image_size=32 or larger"
        )
    base = _backbone(backbone, (*input_shape[:2], 3))
    base._name = backbone  # the name a later run finds it by
    described = load_backbone_weights(base, weights)
    pretrained = not is_from_scratch(weights)
    base.trainable = not pretrained
    if not pretrained and batch_norm_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = batch_norm_momentum
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    # training=False pins a pretrained backbone's batch norm to its moving statistics even
    # once its top is unfrozen; a backbone trained from scratch follows fit's training flag.
    x = base(_scale_for(backbone, x), **({"training": False} if pretrained else {}))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"{backbone}_transfer")
    model.weights_source = described
    return model, base


def run_features(run_dir: str, input_shape: tuple[int, ...]) -> keras.Model:
    """An earlier run's model without its last layer (everything that feeds its `logits`
    layer), as a model named "features": what `--weights=RUN_DIR` transfers when no
    `--backbone` is set (the recipe's own CNN pretrained on other data)."""
    path = Path(run_dir).expanduser()
    saved = path / "model.keras"
    if not saved.is_file():
        raise FileNotFoundError(
            f"--weights={run_dir}: without --backbone, weights come from an earlier run folder "
            f"with a model.keras (pretrain on other data with the same image size first); "
            f"{saved} does not exist. A weights file needs --backbone=..."
        )
    earlier = keras.models.load_model(saved, compile=False)
    try:
        logits = earlier.get_layer("logits")
    except ValueError:
        raise ValueError(f"the model of the run {path} has no layer named 'logits'") from None
    if tuple(earlier.input_shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"the run {path} took images of shape {earlier.input_shape[1:]}, this data has "
            f"{tuple(input_shape)}; set --image_size and --channels to match"
        )
    return keras.Model(earlier.inputs, logits.input, name="features")


def transfer_from_run(
    run_dir: str, input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.2
) -> tuple[keras.Model, keras.Model]:
    """(model, features): an earlier run's model with a new dropout + linear head, its
    features frozen with batch norm in inference mode (`unfreeze_top` opens them later).

    Example:

        model, features = transfer_from_run("runs/pretrained", (32, 32, 1), 5)
    """
    num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
    dropout = _dropout(dropout)
    features = run_features(run_dir, input_shape)
    features.trainable = False
    inputs = keras.Input(shape=input_shape, name="image")
    x = features(inputs, training=False)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name="run_transfer")
    model.weights_source = f"features of the run {Path(run_dir).expanduser()}"
    return model, features


def unfreeze_top(backbone: keras.Model, fraction: float = 0.2) -> int:
    """Makes the top `fraction` of the backbone's layers trainable, batch norm excepted (its
    statistics stay frozen); returns how many layers were opened. Compile again afterwards."""
    fraction = check_number("fraction", fraction, minimum=0, maximum=1, exclusive_minimum=True)
    backbone.trainable = True
    start = int(len(backbone.layers) * (1.0 - fraction))
    opened = 0
    for index, layer in enumerate(backbone.layers):
        trainable = index >= start and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = trainable
        opened += int(trainable)
    return opened
