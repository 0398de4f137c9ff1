"""trainer: train Keras models from a dataset to a small, fast, verified mobile model.

Importing this package selects the Keras 2 API (`tf_keras`) for TensorFlow by setting
`TF_USE_LEGACY_KERAS=1` before TensorFlow loads, because TF-MOT (pruning, clustering,
quantization-aware training) rejects Keras 3 models. It also quiets TensorFlow's C++ start-up
log (absl and oneDNN notices) the first time TensorFlow is imported, unless the user chose a
level or set TRAINER_DEBUG=1. Import `trainer` before `tensorflow`, or set both variables
in the environment. Submodules are imported on demand so that `import trainer` stays fast.

Example:

    import trainer
    from trainer import keras            # the tf_keras module, Keras 2 API
    from trainer.schedules import Warmup
"""

# Importing keras_path sets TF_USE_LEGACY_KERAS=1 and the default TF_CPP_MIN_LOG_LEVEL=2.
from trainer.keras_path import check_keras_object, ensure_legacy_keras, quiet_tensorflow_import

__version__ = "0.1.0"
__all__ = ["check_keras_object", "ensure_legacy_keras", "keras", "__version__"]

ensure_legacy_keras()
quiet_tensorflow_import()


def __getattr__(name: str):
    # `trainer.keras` is tf_keras, imported lazily so `import trainer` does not load TF.
    if name == "keras":
        import tf_keras

        return tf_keras
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
