"""Losses, optimizers and regularization chosen by name from a recipe's config, validated.

Each builder maps a config string to a tf_keras object through an explicit `if` chain, checks
every number and says what it received when something is off. `regularize` re-applies L1/L2
kernel regularizers, a dropout rate and a batch-norm momentum to an existing functional or
Sequential model, so these become recipe options without touching the model builder.
This module must not train or build datasets.

Example:

    import trainer
    from trainer.optimizers import build_loss, build_optimizer
    loss = build_loss("categorical_crossentropy", label_smoothing=0.1)
    optimizer = build_optimizer("adamw", 1e-3, weight_decay=5e-4, clipnorm=1.0)
"""

import tensorflow as tf
import tf_keras as keras

LOSS_NAMES = (
    "mse",
    "mae",
    "huber",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
)
OPTIMIZER_NAMES = ("sgd", "adam", "adamw", "rmsprop")
_SMOOTHABLE = {
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
}


def _check_fraction(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), received {value!r}")


@keras.saving.register_keras_serializable(package="trainer")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy for integer labels, with the label smoothing tf_keras offers only for
    one-hot labels.

    Args:
        from_logits: whether predictions are logits (True for trainer's models).
        label_smoothing: mass moved from the true class, spread evenly over all classes.

    Example:

        import numpy as np
        from trainer.optimizers import SparseCategoricalCrossentropy
        loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
        value = float(loss(np.array([2]), np.array([[0.0, 1.0, 3.0]])))
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction=keras.losses.Reduction.AUTO,
        name: str = "sparse_categorical_crossentropy",
    ):
        super().__init__(reduction=reduction, name=name)
        _check_fraction("label_smoothing", label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        one_hot = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing)
        return config


def build_loss(
    name: str,
    from_logits: bool = True,
    label_smoothing: float = 0.0,
    huber_delta: float = 1.0,
) -> keras.losses.Loss:
    """A loss by name: mse, mae, huber, (sparse_)categorical_crossentropy, binary_crossentropy.

    Args:
        name: one of `LOSS_NAMES`.
        from_logits: for the cross-entropies; trainer's models output logits.
        label_smoothing: for the cross-entropies only; 0 disables.
        huber_delta: where Huber switches from quadratic to linear.

    Raises:
        ValueError: unknown name, or label smoothing asked of a regression loss.

    Example:

        from trainer.optimizers import build_loss
        loss = build_loss("sparse_categorical_crossentropy", label_smoothing=0.1)
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    _check_fraction("label_smoothing", label_smoothing)
    if label_smoothing and name not in _SMOOTHABLE:
        raise ValueError(
            f"label_smoothing applies to cross-entropy losses, not {name!r} "
            f"(received label_smoothing={label_smoothing}); set it to 0"
        )
    if name == "mse":
        return keras.losses.MeanSquaredError()
    if name == "mae":
        return keras.losses.MeanAbsoluteError()
    if name == "huber":
        if huber_delta <= 0:
            raise ValueError(f"huber_delta must be > 0, received {huber_delta!r}")
        return keras.losses.Huber(delta=huber_delta)
    if name == "categorical_crossentropy":
        return keras.losses.CategoricalCrossentropy(
            from_logits=from_logits, label_smoothing=label_smoothing
        )
    if name == "sparse_categorical_crossentropy":
        if not label_smoothing:
            return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        return SparseCategoricalCrossentropy(from_logits, label_smoothing)
    return keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=label_smoothing)


def build_optimizer(
    name: str,
    learning_rate,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
) -> keras.optimizers.Optimizer:
    """An optimizer by name: sgd, adam, adamw, rmsprop.

    Args:
        name: one of `OPTIMIZER_NAMES`.
        learning_rate: a float or a `LearningRateSchedule` (see `trainer.schedules`).
        weight_decay: decoupled weight decay (sgd, adamw, rmsprop); Adam with weight decay is
            AdamW, so "adam" refuses it.
        momentum: SGD momentum (ignored by the adaptive optimizers).
        nesterov: Nesterov momentum, SGD only.
        clipnorm: clip each gradient to this L2 norm; None disables.
        clipvalue: clip each gradient element to [-clipvalue, clipvalue]; None disables.

    Raises:
        ValueError: unknown name or an out-of-range number, quoting the value received.

    Example:

        from trainer.optimizers import build_optimizer
        optimizer = build_optimizer("sgd", 0.1, momentum=0.9, nesterov=True, clipnorm=1.0)
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZER_NAMES)}")
    is_schedule = isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    if not is_schedule and (not isinstance(learning_rate, int | float) or learning_rate <= 0):
        raise ValueError(
            f"learning_rate must be a number > 0 or a LearningRateSchedule, "
            f"received {learning_rate!r}"
        )
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, received {weight_decay!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), received {momentum!r}")
    for clip_name, clip in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
        if clip is not None and clip <= 0:
            raise ValueError(f"{clip_name} must be > 0 or None, received {clip!r}")
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov applies to sgd only, received optimizer {name!r}")
    if name == "adam" and weight_decay:
        raise ValueError(
            f"Adam with weight_decay={weight_decay} is AdamW: use optimizer 'adamw' "
            "(or an L2 kernel regularizer with 'adam')"
        )
    clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue}
    decay = {"weight_decay": weight_decay or None}
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=momentum, nesterov=nesterov, **decay, **clipping
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, **clipping)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **clipping)
    return keras.optimizers.RMSprop(learning_rate, **decay, **clipping)


def build_regularizer(l1: float = 0.0, l2: float = 0.0) -> keras.regularizers.Regularizer | None:
    """An L1, L2 or L1+L2 kernel regularizer, or None when both are 0.

    Example:

        from trainer.optimizers import build_regularizer
        layer_regularizer = build_regularizer(l2=1e-4)
    """
    for label, value in (("l1", l1), ("l2", l2)):
        if not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{label} must be a number >= 0, received {value!r}")
    if not l1 and not l2:
        return None
    return keras.regularizers.L1L2(l1=float(l1), l2=float(l2))


def regularize(
    model: keras.Model,
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float | None = None,
    batch_norm_momentum: float | None = None,
) -> keras.Model:
    """A copy of `model` (same weights) with new kernel regularizers, dropout and BN momentum.

    Every layer that has a `kernel_regularizer` gets the L1/L2 one (replacing any it had, or
    none when both are 0); with `dropout` set every `Dropout` layer takes that rate; with
    `batch_norm_momentum` set every `BatchNormalization` layer takes that momentum. The
    original model is left unchanged. Compile the returned model.

    Raises:
        TypeError: `model` is a subclassed model, whose layers Keras cannot clone.
        ValueError: an out-of-range rate or momentum.

    Example:

        import trainer
        from trainer.models import small_cnn
        from trainer.optimizers import regularize
        model = regularize(small_cnn(), l2=1e-4, dropout=0.5, batch_norm_momentum=0.9)
    """
    regularizer = build_regularizer(l1, l2)
    if dropout is not None:
        _check_fraction("dropout", dropout)
    if batch_norm_momentum is not None:
        _check_fraction("batch_norm_momentum", batch_norm_momentum)
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise TypeError(
            f"regularize needs a functional or Sequential tf_keras model, received "
            f"{type(model).__qualname__}; pass the options to your model builder instead"
        )

    def clone_layer(layer):
        config = layer.get_config()
        if "kernel_regularizer" in config:
            config["kernel_regularizer"] = regularizer and keras.regularizers.serialize(regularizer)
        if dropout is not None and isinstance(layer, keras.layers.Dropout):
            config["rate"] = dropout
        if batch_norm_momentum is not None and isinstance(layer, keras.layers.BatchNormalization):
            config["momentum"] = batch_norm_momentum
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    return clone
