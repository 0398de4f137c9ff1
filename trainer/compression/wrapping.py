"""What every TF-MOT helper shares: the TF-MOT import, a safe clone, and wrapping named layers.

TF-MOT wraps the layer objects it is given, so every helper works on a clone of the user's
model; it rejects subclassed models and preprocessing layers, so the clone refuses them first
with a message that says what to do. This module must not train, save or export models.
"""

from collections.abc import Callable, Sequence

import tf_keras as keras

from trainer.keras_path import check_functional

TFMOT_MODULE = "tensorflow_model_optimization"


def import_tfmot():
    """`tensorflow_model_optimization`, or an ImportError that says how to install it."""
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError:
        raise ImportError(
            "compression needs tensorflow-model-optimization 0.8.1; install it with "
            "`pip install --no-deps tensorflow-model-optimization==0.8.1` (see `make setup`)"
        ) from None
    return tfmot


def clone_for_tfmot(model: keras.Model) -> keras.Model:
    """A clone with the same weights: TF-MOT wraps the layer objects it is given.

    Raises:
        TypeError: a Keras 3 or subclassed model.
        ValueError: a preprocessing layer inside the model.
    """
    check_functional(model, "TF-MOT", "rebuild it with the functional API")
    for layer in model.layers:
        module = type(layer).__module__
        if "preprocessing" in module or type(layer).__name__.startswith("Random"):
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) is a preprocessing layer, which "
                "TF-MOT rejects. Move augmentation into the tf.data pipeline (trainer.augment) "
                "and keep the model to the layers that run at inference."
            )
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def check_layer_names(model: keras.Model, layer_names: Sequence[str] | None) -> set[str] | None:
    """`layer_names` as a set after checking each is a layer of `model` (None = every layer)."""
    if layer_names is None:
        return None
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(layer_names) - names)
    if unknown:
        raise ValueError(f"layer_names {unknown} are not in the model; its layers: {sorted(names)}")
    return set(layer_names)


def wrap_layers(model: keras.Model, layer_names: set[str] | None, wrap: Callable) -> keras.Model:
    """Applies a TF-MOT `wrap` to the whole model, or only to the layers named."""
    if layer_names is None:
        return wrap(model)
    return keras.models.clone_model(
        model, clone_function=lambda layer: wrap(layer) if layer.name in layer_names else layer
    )
