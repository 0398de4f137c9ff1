"""trainer: train Keras models from a dataset to a small, fast, verified mobile model.

Importing this package selects the Keras 2 API (`tf_keras`) for every form of `tf.keras`
(`tf.keras.X`, `from tensorflow import keras`, `from tensorflow.keras import layers`) by
setting `TF_USE_LEGACY_KERAS=1`, because TF-MOT (pruning, clustering, quantization-aware
training) rejects Keras 3 models; `import keras` stays Keras 3. If the process chose Keras 3
before trainer's first import (`import keras`, `from tensorflow import keras`, `tf.keras`
used), trainer never switches it: the schedules, callbacks, LR finder, diagnosis and
Distiller serve Keras 3, and one `Keras3InUseWarning` says that the TF-MOT helpers, export and
recipes need tf_keras and how to get it (`trainer.keras_path`, docs/keras3.md). It also
quiets TensorFlow's C++ start-up log (absl and oneDNN notices) the first time TensorFlow is
imported, unless the user chose a level or set TRAINER_DEBUG=1. Submodules are imported on
demand so that `import trainer` stays fast; for the same reason trainer's registered layers,
losses and schedules are registered with Keras when a saved model first looks them up
(`trainer.custom_objects`), so `tf_keras.models.load_model(RUN/model.keras)` needs no
`custom_objects` after `import trainer`.

Example:

    import trainer
    from trainer import keras            # the tf_keras module, Keras 2 API
    from trainer.schedules import Warmup
"""

# Importing keras_path chooses the Keras of tf.keras and sets the default TF_CPP_MIN_LOG_LEVEL=2.
from trainer.custom_objects import register_on_import
from trainer.keras_path import (
    check_keras_object,
    ensure_legacy_keras,
    quiet_tensorflow_import,
    to_tf_keras,
)

__version__ = "0.1.0"
__all__ = ["check_keras_object", "ensure_legacy_keras", "keras", "to_tf_keras", "__version__"]

quiet_tensorflow_import()
register_on_import()


def __getattr__(name: str):
    # `trainer.keras` is tf_keras, imported lazily so `import trainer` does not load TF.
    if name == "keras":
        import tf_keras

        return tf_keras
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
