"""L1/L2 kernel regularizers, and re-applying regularization to an existing model.

`regularize` re-applies L1/L2 kernel regularizers, a dropout rate and a batch-norm momentum to
an existing functional or Sequential model, so these become recipe options without touching the
model builder. This module must not train.

Example:

    >>> from trainer.models import small_cnn
    >>> from trainer.regularizers import regularize
    >>> model = regularize(small_cnn(), l2=1e-4)
    >>> len(model.losses)  # one L2 penalty per kernel
    4
"""

import tf_keras as keras

from trainer.config import check_number
from trainer.keras_path import check_functional


def _fraction(name: str, value) -> float:
    return check_number(name, value, minimum=0, maximum=1, exclusive_maximum=True)


def build_regularizer(l1: float = 0.0, l2: float = 0.0) -> keras.regularizers.Regularizer | None:
    """An L1, L2 or L1+L2 kernel regularizer, or None when both are 0.

    Example:

        >>> from trainer.regularizers import build_regularizer
        >>> layer_regularizer = build_regularizer(l2=1e-4)
        >>> {name: round(value, 6) for name, value in layer_regularizer.get_config().items()}
        {'l1': 0.0, 'l2': 0.0001}
        >>> build_regularizer() is None  # nothing asked, nothing added
        True
    """
    l1, l2 = check_number("l1", l1, minimum=0), check_number("l2", l2, minimum=0)
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

        >>> from trainer.models import small_cnn
        >>> from trainer.regularizers import regularize
        >>> model = regularize(small_cnn(), l2=1e-4, dropout=0.5, batch_norm_momentum=0.9)
        >>> sorted({layer.momentum for layer in model.layers if hasattr(layer, "momentum")})
        [0.9]
    """
    regularizer = build_regularizer(l1, l2)
    if dropout is not None:
        dropout = _fraction("dropout", dropout)
    if batch_norm_momentum is not None:
        batch_norm_momentum = _fraction("batch_norm_momentum", batch_norm_momentum)
    check_functional(model, "regularize", "pass the options to your model builder instead")

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
