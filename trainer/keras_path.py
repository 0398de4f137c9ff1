"""Keeps every model on the Keras 2 path (`tf_keras`) and rejects Keras 3 objects early.

TF-MOT 0.8.1 only accepts Keras 2 models, so one model object can go through training,
keras-tuner, pruning, quantization and `TFLiteConverter.from_keras_model` only on `tf_keras`.
This module owns the checks; it must not import TensorFlow unless TensorFlow is already loaded.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys

# Read before trainer sets its default, so we know whether the user chose a level.
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_USE_LEGACY_KERAS"] = "1"

_HOW_TO_FIX = (
    "trainer uses the Keras 2 API (tf_keras). Build the object with `import tf_keras as keras` "
    "(or `from trainer import keras`), or `import trainer` before `tensorflow`, or set "
    "TF_USE_LEGACY_KERAS=1 in the environment before Python starts."
)


def ensure_legacy_keras() -> None:
    """Fails if TensorFlow was already imported and its `tf.keras` resolved to Keras 3.

    TensorFlow picks the Keras behind `tf.keras` on first access, reading
    `TF_USE_LEGACY_KERAS`. If that happened before `import trainer`, models built with
    `tf.keras` are Keras 3 and TF-MOT will reject them deep inside a traceback.

    Raises:
        ImportError: naming the problem and the fix.
    """
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None:
        return
    keras_module = getattr(tensorflow, "keras", None)
    version = str(getattr(keras_module, "__version__", ""))
    if version.startswith("3"):
        raise ImportError(
            f"TensorFlow was imported before trainer with Keras {version} behind tf.keras. "
            + _HOW_TO_FIX
        )


def is_keras3_object(obj: object) -> bool:
    """True if `obj` is an instance (or class) from Keras 3 rather than tf_keras."""
    cls = obj if isinstance(obj, type) else type(obj)
    for klass in cls.__mro__:
        module = klass.__module__ or ""
        if module == "keras" or module.startswith("keras."):
            return True
    return False


def check_keras_object(obj: object, argument: str) -> None:
    """Raises `TypeError` if `obj` (a model, layer, optimizer, callback...) is from Keras 3.

    Args:
        obj: the object a user handed to trainer.
        argument: the name of the argument it came in, quoted in the message.

    Example:

        import trainer
        from trainer import keras
        model = keras.Sequential([keras.layers.Dense(1)])
        trainer.check_keras_object(model, "model")  # passes: tf_keras object
    """
    if is_keras3_object(obj):
        cls = obj if isinstance(obj, type) else type(obj)
        raise TypeError(
            f"`{argument}` is a Keras 3 object ({cls.__module__}.{cls.__qualname__}). "
            + _HOW_TO_FIX
        )


@contextlib.contextmanager
def _native_stderr_silenced():
    """Sends file descriptor 2 to /dev/null: C++ logging writes there, below Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_wanted() -> bool:
    return USER_LOG_LEVEL is None and not os.environ.get("TRAINER_DEBUG")


class _SlowCallbackNotice(logging.Filter):
    """Drops Keras's "Callback method ... is slow compared to the batch time" warning.

    On the small models of tests, notebooks and quick runs a batch takes a millisecond, so any
    callback looks slow; the notice alarms users without telling them anything to do.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "is slow compared to the batch time" not in record.getMessage()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Imports `tensorflow` with native stderr silenced, the first time anything imports it.

    TensorFlow 2.21 prints absl and oneDNN start-up notices from C++ while it loads, before its
    log level applies, so setting TF_CPP_MIN_LOG_LEVEL from Python does not hide them. Hooking
    the import (rather than importing TensorFlow in `import trainer`) keeps `import trainer`
    fast and makes `import trainer; import tensorflow` quiet too. Python exceptions raised by
    the import still propagate, after stderr is restored.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders locate the package
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not _quiet_wanted():
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            with _native_stderr_silenced():
                loader_exec(module)
            logging.getLogger("tensorflow").addFilter(_SlowCallbackNotice())

        spec.loader.exec_module = exec_module
        return spec


def quiet_tensorflow_import() -> None:
    """Makes the first `import tensorflow` in this process quiet (see `_QuietTensorFlowFinder`).

    Called by `import trainer`; a no-op if TensorFlow is already loaded, if the user chose a
    `TF_CPP_MIN_LOG_LEVEL`, or under `TRAINER_DEBUG=1`.
    """
    if "tensorflow" in sys.modules or not _quiet_wanted():
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and tf_keras now, without their native start-up notices."""
    quiet_tensorflow_import()
    import tensorflow  # noqa: F401
    import tf_keras  # noqa: F401


def check_functional(model: object, who: str, otherwise: str = "") -> None:
    """Raises `TypeError` unless `model` is a functional or Sequential tf_keras model.

    Cloning, pruning and regularizing rebuild a model layer by layer, which Keras can do only
    for these; a subclassed model has no layer graph to rebuild.

    Args:
        model: the model a user handed to trainer.
        who: the function that needs it, quoted in the message.
        otherwise: what the user can do instead, appended to the message.
    """
    check_keras_object(model, "model")
    import tf_keras as keras

    if isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False):
        return
    advice = f"; {otherwise}" if otherwise else ""
    raise TypeError(
        f"{who} needs a functional or Sequential tf_keras model, received "
        f"{type(model).__qualname__}{advice}"
    )
