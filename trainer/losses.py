"""Losses chosen by name from a recipe's config, validated.

`build_loss` maps a config string to a tf_keras loss through an explicit `if` chain; the
integer-label cross-entropy here adds the label smoothing tf_keras offers only for one-hot
labels. This module must not train.

Example:

    >>> from trainer.losses import build_loss
    >>> loss = build_loss("categorical_crossentropy", label_smoothing=0.1)
    >>> type(loss).__name__, loss.get_config()["label_smoothing"]
    ('CategoricalCrossentropy', 0.1)
"""

import tensorflow as tf
import tf_keras as keras

from trainer.config import check_number

LOSS_NAMES = (
    "mse",
    "mae",
    "huber",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
)
_SMOOTHABLE = {
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
}


def _fraction(name: str, value) -> float:
    return check_number(name, value, minimum=0, maximum=1, exclusive_maximum=True)


@keras.saving.register_keras_serializable(package="trainer")
class SparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy for integer labels, with the label smoothing tf_keras offers only for
    one-hot labels.

    Args:
        from_logits: whether predictions are logits (True for trainer's models).
        label_smoothing: mass moved from the true class, spread evenly over all classes.

    Example:

        >>> import numpy as np
        >>> from trainer.losses import SparseCategoricalCrossentropy
        >>> loss = SparseCategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
        >>> round(float(loss(np.array([2]), np.array([[0.0, 1.0, 3.0]]))), 3)
        0.337
    """

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        reduction=keras.losses.Reduction.AUTO,
        name: str = "sparse_categorical_crossentropy",
    ):
        super().__init__(reduction=reduction, name=name)
        self.from_logits = from_logits
        self.label_smoothing = _fraction("label_smoothing", label_smoothing)

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

        >>> from trainer.losses import build_loss
        >>> loss = build_loss("sparse_categorical_crossentropy", label_smoothing=0.1)
        >>> type(loss).__module__  # ours: tf_keras's sparse loss has no label_smoothing
        'trainer.losses'
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    label_smoothing = _fraction("label_smoothing", label_smoothing)
    huber_delta = check_number("huber_delta", huber_delta, minimum=0, exclusive_minimum=True)
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
