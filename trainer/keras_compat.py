"""The small adapter that lets one implementation of a schedule or callback serve both Kerases.

trainer's schedules, callbacks, LR finder and Distiller are written once. The Keras they work
with is detected from the objects passed in (the model, optimizer or wrapped schedule): Keras 2
(`tf_keras`, the path TF-MOT needs) or Keras 3 (`import keras`). Keras 3 is never imported by
trainer: it is used only when the user's process has already imported it (a Keras 3 object
exists only then), so the tf_keras path imports and runs exactly as before. Keras 3 with a
JAX or PyTorch backend is served where the code is plain Python or `keras.ops`; what needs
TensorFlow ops refuses with a message that names the backend (`require_tensorflow_backend`).
This module must not import TensorFlow or Keras at import time.
"""

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from trainer.keras_path import is_keras3_object


def loaded_keras3():
    """The Keras 3 module if this process has imported it, else None (never imports it)."""
    module = sys.modules.get("keras")
    return module if str(getattr(module, "__version__", "")).startswith("3") else None


def keras_of(obj: object):
    """The Keras module `obj` (model, optimizer, schedule, layer) comes from: Keras 3 or tf_keras."""
    if is_keras3_object(obj):
        return loaded_keras3() or importlib.import_module("keras")
    import tf_keras

    return tf_keras


def backend_of(obj: object) -> str:
    """ "tensorflow" for a tf_keras object; Keras 3's backend name for a Keras 3 object."""
    if is_keras3_object(obj):
        return keras_of(obj).backend.backend()
    return "tensorflow"


def require_tensorflow_backend(who: str, obj: object = None) -> None:
    """Raises `RuntimeError` if `who` would run TensorFlow ops under Keras 3's JAX/PyTorch backend.

    With `obj` (the user's model) the check is about that object; without it (at a callback's
    construction, before the model is known) it is about the Keras 3 the process has loaded.
    """
    if obj is not None:
        backend = backend_of(obj)
    else:
        keras3 = loaded_keras3()
        backend = keras3.backend.backend() if keras3 is not None else "tensorflow"
    if backend != "tensorflow":
        raise RuntimeError(
            f"{who} runs TensorFlow ops on the model, but Keras 3 here uses the {backend!r} "
            "backend. Set KERAS_BACKEND=tensorflow before importing keras, or use tf_keras "
            "(`import tf_keras as keras`); see docs/keras3.md for what works on "
            f"{backend!r}."
        )


def is_schedule(value: object) -> bool:
    """True for a `LearningRateSchedule` of either Keras."""
    import tf_keras

    if isinstance(value, tf_keras.optimizers.schedules.LearningRateSchedule):
        return True
    keras3 = loaded_keras3()
    return keras3 is not None and isinstance(
        value, keras3.optimizers.schedules.LearningRateSchedule
    )


def to_float(value) -> float:
    """A Python float from a tensor or variable of either Keras or backend, or a number."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return float(np.asarray(value))


def is_compiled(model) -> bool:
    """Whether `model.compile` ran (tf_keras and Keras 3 keep this under different names)."""
    return bool(getattr(model, "_is_compiled", False) or getattr(model, "compiled", False))


def _tensorflow_ops():
    import tensorflow as tf

    return SimpleNamespace(
        cast=tf.cast,
        convert_to_tensor=tf.convert_to_tensor,
        cos=tf.cos,
        maximum=tf.maximum,
        minimum=tf.minimum,
        power=tf.pow,
        where=tf.where,
    )


def math_ops(step):
    """The ops a schedule computes with: TensorFlow's, or `keras.ops` under JAX or PyTorch.

    TensorFlow is used for tf_keras and for Keras 3 on TensorFlow (the same graph as before);
    `keras.ops` only when Keras 3 runs another backend and the step is not a TensorFlow value,
    so a schedule traced by a JAX or PyTorch optimizer stays in that backend.
    """
    keras3 = loaded_keras3()
    if keras3 is None or keras3.backend.backend() == "tensorflow":
        return _tensorflow_ops()
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None and isinstance(step, tensorflow.Tensor | tensorflow.Variable):
        return _tensorflow_ops()
    return keras3.ops


class _Keras3ImportHook(importlib.abc.MetaPathFinder):
    """Runs callbacks right after the process first imports Keras 3 (one shot)."""

    def __init__(self):
        self.callbacks: list[Callable] = []

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader_exec, callbacks = spec.loader.exec_module, self.callbacks

        def exec_module(module):
            loader_exec(module)
            if str(getattr(module, "__version__", "")).startswith("3"):
                for callback in callbacks:
                    callback(module)

        spec.loader.exec_module = exec_module
        return spec


def when_keras3_imported(callback: Callable) -> None:
    """Calls `callback(keras)` now if Keras 3 is loaded, else right after it is first imported.

    `trainer.schedules` registers its classes with Keras 3's serialization this way, so a
    `.keras` file loads without `custom_objects` whichever of the two imports came first.
    """
    keras3 = loaded_keras3()
    if keras3 is not None:
        callback(keras3)
        return
    hook = next((f for f in sys.meta_path if isinstance(f, _Keras3ImportHook)), None)
    if hook is None:
        hook = _Keras3ImportHook()
        sys.meta_path.insert(0, hook)
    hook.callbacks.append(callback)
