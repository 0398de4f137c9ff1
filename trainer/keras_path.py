"""Keeps the models that TF-MOT and export see on the Keras 2 path (`tf_keras`).

TF-MOT 0.8.1 only accepts Keras 2 models, so one model object can go through training,
keras-tuner, pruning, quantization and `TFLiteConverter.from_keras_model` only on `tf_keras`.
The schedules and callbacks serve Keras 3 as well (`trainer.keras_compat`); the helpers that
need tf_keras reject a Keras 3 model with `check_keras_object`, whose message offers
`to_tf_keras(model)`: the same functional or Sequential model rebuilt in tf_keras. This module
owns the checks and the conversion, and the one choice of Keras made when trainer is first
imported (`KERAS3_IN_USE`); it must not import TensorFlow unless TensorFlow is already loaded
or a conversion is asked for.

The choice: trainer sets `TF_USE_LEGACY_KERAS=1`, so `tf.keras` in every form (`tf.keras.X`,
`from tensorflow import keras`, `from tensorflow.keras import layers`) is tf_keras, unless the
process has already chosen Keras 3 before trainer's first import: `import keras`, `tf.keras`
resolved, `tensorflow.keras` imported, or TensorFlow's lazy `keras` bound by the importing
script (`from tensorflow import keras`, `keras = tf.keras`). Switching then would give the
script two Kerases (tf_keras behind its `keras`, Keras 3 behind its `layers`), so trainer
leaves Keras 3 in place, pins TensorFlow's lazy Keras attributes to it, and warns once
(`Keras3InUseWarning`) that TF-MOT compression, export and the recipes need tf_keras.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import types
import warnings

# Read before trainer sets its default, so we know whether the user chose a level.
USER_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
# Under TRAINER_DEBUG=1 TensorFlow keeps its own level: with absl-py 2.x the C++ start-up
# notices honour TF_CPP_MIN_LOG_LEVEL too, so a default set here would hide them.
if not os.environ.get("TRAINER_DEBUG"):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_LEGACY_VALUES = ("true", "True", "1")  # what TensorFlow's lazy loader reads as "use tf_keras"
_TENSORFLOW_KERAS_ATTRIBUTES = ("keras", "losses", "metrics", "optimizers", "initializers")


class Keras3InUseWarning(UserWarning):
    """trainer was imported into a process that already uses Keras 3, and left it there."""


def _is_keras3_module(value: object) -> bool:
    """A Keras 3 module: `keras`, `keras.layers`, or TensorFlow's `tensorflow.keras` on Keras 3."""
    if not isinstance(value, types.ModuleType):
        return False
    state = vars(value)  # never getattr: on a lazy module it would resolve (import) it
    if type(value).__name__ == "KerasLazyLoader":
        return state.get("_tfll_keras_version") == "keras_3"
    name = str(state.get("__name__") or "")
    if name == "keras" or name.startswith("keras."):
        return True
    keras3 = sys.modules.get("keras")
    folders = vars(keras3).get("__path__") or [] if keras3 is not None else []
    path = str(state.get("__file__") or "")
    return bool(path) and any(path.startswith(folder + os.sep) for folder in folders)


def _tensorflow_lazy_keras(value: object) -> bool:
    """TensorFlow's lazy `keras` (or `losses`, `optimizers`...) proxy, not yet resolved or
    resolved to Keras 3 (`KerasLazyLoader` decides on first attribute access)."""
    if type(value).__name__ != "KerasLazyLoader":
        return False
    state = vars(value)  # read without __getattr__, which would resolve the proxy
    return not state.get("_tfll_initialized") or state.get("_tfll_keras_version") == "keras_3"


def _binding_of_keras3(namespace: dict) -> str | None:
    """The first name in a module's globals bound to Keras 3 or to TensorFlow's lazy keras."""
    for name, value in list(namespace.items()):
        if _tensorflow_lazy_keras(value):
            return f"`{name}` is TensorFlow's lazy tensorflow.keras, as after `from tensorflow import keras`"
        if _is_keras3_module(value):
            return f"`{name}` is the Keras 3 module {value.__name__}"
        if isinstance(value, type) and is_keras3_object(value):
            return f"`{name}` is the Keras 3 class {value.__module__}.{value.__qualname__}"
    return None


def _importing_namespaces() -> list[dict]:
    """The globals of `__main__` and of every module on the stack (the script importing trainer)."""
    namespaces, seen = [], set()
    main = sys.modules.get("__main__")
    candidates = [getattr(main, "__dict__", {})]
    frame = sys._getframe(1)
    while frame is not None:
        candidates.append(frame.f_globals)
        frame = frame.f_back
    for namespace in candidates:
        module = str(namespace.get("__name__", ""))
        if id(namespace) in seen or module.startswith(("trainer", "importlib")):
            continue
        seen.add(id(namespace))
        namespaces.append(namespace)
    return namespaces


def keras3_in_use(namespaces: list[dict] | None = None) -> str | None:
    """How this process has already chosen Keras 3, or None if `tf.keras` is still open.

    Keras 3 is chosen if TensorFlow has resolved `tf.keras` (or imported `tensorflow.keras`) to
    Keras 3, or if `namespaces` (default: `__main__` and the modules importing trainer now) bind
    Keras 3 or TensorFlow's lazy `keras`. `TF_USE_LEGACY_KERAS` already set to true means the
    user chose tf_keras, and nothing here can switch it.

    Example:

        >>> import os, types
        >>> from trainer.keras_path import keras3_in_use
        >>> chosen = os.environ.pop("TF_USE_LEGACY_KERAS", "")  # as before trainer's import
        >>> keras3_in_use([{"keras": types.ModuleType("keras")}])  # a script's `import keras`
        '`keras` is the Keras 3 module keras'
        >>> os.environ["TF_USE_LEGACY_KERAS"] = chosen
    """
    if os.environ.get("TF_USE_LEGACY_KERAS") in _LEGACY_VALUES:
        return None
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        if _is_keras3_module(sys.modules.get("tensorflow.keras")):
            return "`tensorflow.keras` was imported, as by `from tensorflow.keras import layers`"
        for attribute in _TENSORFLOW_KERAS_ATTRIBUTES:
            if _is_keras3_module(vars(tensorflow).get(attribute)):
                return f"`tf.{attribute}` was already used, and is Keras 3"
    for namespace in _importing_namespaces() if namespaces is None else namespaces:
        binding = _binding_of_keras3(namespace)
        if binding is not None:
            return binding
    return None


def _stay_on_keras3() -> None:
    """Resolves TensorFlow's lazy Keras attributes to Keras 3 now, so that a later
    `TF_USE_LEGACY_KERAS=1` (TF-MOT sets it when imported) cannot switch them under the script."""
    tensorflow = sys.modules.get("tensorflow")
    for value in vars(tensorflow).values() if tensorflow is not None else ():
        if type(value).__name__ == "KerasLazyLoader" and not vars(value).get("_tfll_initialized"):
            with contextlib.suppress(ImportError, AttributeError):
                value._initialize()  # reads TF_USE_LEGACY_KERAS (unset) and picks Keras 3


def _use_legacy_keras() -> None:
    """Sets `TF_USE_LEGACY_KERAS=1`; if TensorFlow is already loaded (with Keras 3 routing, and
    no `tf.keras` used yet), also points its `tensorflow.keras` import path at tf_keras, as
    TensorFlow itself does under that variable, so `from tensorflow.keras import layers` and
    `tf.keras.layers` stay the same Keras."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is None or vars(tensorflow).get("_tf_uses_legacy_keras", True):
        return
    spec = importlib.util.find_spec("tf_keras")
    if spec is None or not spec.submodule_search_locations:
        return
    api = os.path.join(list(spec.submodule_search_locations)[0], "api", "_v2")
    if os.path.isdir(api) and api not in tensorflow.__path__:
        tensorflow.__path__.insert(0, api)


_HOW_TO_FIX = (
    "TF-MOT compression and trainer's export and recipes use the Keras 2 API (tf_keras). "
    "Convert a functional or Sequential model with `trainer.keras_path.to_tf_keras(model)` "
    "(weights copied, outputs checked), or build the object with `import tf_keras as keras` "
    "(or `from trainer import keras`), or set TF_USE_LEGACY_KERAS=1 before TensorFlow loads."
)


def ensure_legacy_keras() -> None:
    """Fails if TensorFlow was already imported and its `tf.keras` resolved to Keras 3.

    TensorFlow picks the Keras behind `tf.keras` on first access, reading
    `TF_USE_LEGACY_KERAS`. If that happened before `import trainer`, models built with
    `tf.keras` are Keras 3, which TF-MOT rejects. `import trainer` no longer calls this (our
    schedules and callbacks serve Keras 3 too, and TF-MOT helpers check the model itself);
    a tf_keras-only script may call it to fail at its start rather than at compression.

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


def child_environment(*dropped: str) -> dict[str, str]:
    """This process's environment for a child Python process that imports trainer, without
    `dropped` and without the TF_CPP_MIN_LOG_LEVEL that `import trainer` set here: the child
    would take it for the user's choice and print TensorFlow's start-up notices."""
    dropped = (*dropped, *(() if USER_LOG_LEVEL else ("TF_CPP_MIN_LOG_LEVEL",)))
    return {key: value for key, value in os.environ.items() if key not in dropped}


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


def to_tf_keras(model, sample=None, tolerance: float = 1e-5):
    """The same functional or Sequential Keras 3 model rebuilt in tf_keras, with its weights.

    Each layer is rebuilt from its config by the tf_keras layer class of the same name, the
    graph is rewired in the same order, the weights are copied layer by layer, and both models
    are run on a batch to check that their outputs agree. Use it to hand a Keras 3 model to
    TF-MOT (pruning, clustering, quantization-aware training) or to trainer's export.

    Args:
        model: a built functional or Sequential Keras 3 model of standard Keras layers.
        sample: a batch of inputs for the check; default 4 random rows (integers 0-1 for
            integer inputs such as token ids, standard normal values otherwise).
        tolerance: the largest absolute difference allowed between the two outputs.

    Raises:
        TypeError: not a Keras 3 model, a subclassed model, or a layer without a tf_keras
            counterpart (custom layers, `keras.ops` calls in the graph, nested models).
        ValueError: the rebuilt model's outputs differ (the message gives the difference).

    Example:

        import keras
        import trainer.keras_path
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu")])
        legacy = trainer.keras_path.to_tf_keras(model)  # a tf_keras model: prune it, export it
    """
    import numpy as np

    if not is_keras3_object(model):
        raise TypeError(
            f"to_tf_keras converts Keras 3 models, received {type(model).__module__}."
            f"{type(model).__qualname__}; a tf_keras model needs no conversion"
        )
    import keras as keras3  # already loaded: `model` is a Keras 3 object
    import tf_keras
    from keras.src.models.functional import Functional

    if not model.built or not getattr(model, "inputs", None):
        raise TypeError(
            f"to_tf_keras needs a built functional or Sequential model with an Input; "
            f"{model.name!r} ({type(model).__qualname__}) has no input graph. Start it with "
            "keras.Input(shape) or call model.build(input_shape) first"
        )
    converted: dict[int, tuple] = {}  # id(Keras 3 layer) -> (Keras 3 layer, tf_keras layer)
    if isinstance(model, keras3.Sequential):
        first = model.inputs[0]
        layers = [tf_keras.Input(shape=tuple(first.shape[1:]), dtype=first.dtype)]
        for layer in model.layers:
            converted[id(layer)] = (layer, _tf_keras_layer(layer, tf_keras))
            layers.append(converted[id(layer)][1])
        rebuilt = tf_keras.Sequential(layers, name=model.name)
    elif isinstance(model, Functional):
        rebuilt = _rebuild_graph(model, keras3, tf_keras, converted)
    else:
        raise TypeError(
            f"to_tf_keras needs a functional or Sequential model; {model.name!r} is a "
            f"subclassed {type(model).__qualname__}, whose call() has no graph to rebuild. "
            "Rewrite it with the functional API, or build it with tf_keras"
        )
    for old, new in converted.values():
        new.set_weights(old.get_weights())
    if sample is None:
        rng = np.random.default_rng(0)
        sample = [
            rng.integers(0, 2, (4, *tensor.shape[1:])).astype(tensor.dtype)
            if "int" in str(tensor.dtype)
            else rng.standard_normal((4, *tensor.shape[1:])).astype(tensor.dtype)
            for tensor in model.inputs
        ]
        sample = sample[0] if len(sample) == 1 else sample
    expected = [np.asarray(value) for value in keras3.tree.flatten(model(sample, training=False))]
    got = [np.asarray(value) for value in _flatten(rebuilt(sample, training=False))]
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got, strict=True))
    if not difference <= tolerance:
        raise ValueError(
            f"the tf_keras rebuild of {model.name!r} gives outputs up to {difference:.3g} away "
            f"from the Keras 3 model's (tolerance {tolerance}); a layer's config or weight "
            "order differs between the Kerases. Build this model with tf_keras instead"
        )
    return rebuilt


def _flatten(structure) -> list:
    import tensorflow as tf

    return tf.nest.flatten(structure)


# Config keys Keras 3 writes that tf_keras layers do not take, or that need no copying (the
# initializers: the weights are copied over after the rebuild).
_KERAS3_ONLY_KEYS = ("quantization_config", "lora_rank", "lora_alpha", "synchronized")


def _tf_keras_layer(layer, tf_keras):
    """The tf_keras layer of the same class and config as the Keras 3 `layer` (not yet built)."""
    name = type(layer).__name__
    target = getattr(tf_keras.layers, name, None)
    if target is None or not type(layer).__module__.startswith("keras.src.layers"):
        raise TypeError(
            f"to_tf_keras rebuilds standard Keras layers only; layer {layer.name!r} is "
            f"{type(layer).__module__}.{type(layer).__qualname__}, which has no tf_keras "
            "counterpart. Rebuild the model with tf_keras layers (a custom layer can subclass "
            "tf_keras.layers.Layer with the same code)"
        )
    config = {}
    for key, value in layer.get_config().items():
        if key in _KERAS3_ONLY_KEYS or key.endswith("_initializer"):
            continue
        if key == "dtype" and isinstance(value, dict):  # a DTypePolicy: tf_keras takes its name
            value = value.get("config", {}).get("name", "float32")
        config[key] = value
    try:
        return target.from_config(config)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"to_tf_keras could not rebuild layer {layer.name!r} ({name}) in tf_keras: {error}"
        ) from None


def _rebuild_graph(model, keras3, tf_keras, converted: dict):
    """Walks a Keras 3 functional graph from its outputs and calls tf_keras layers the same way."""
    tensors: dict[int, object] = {}
    inputs = []
    for tensor in model.inputs:
        layer = tensor._keras_history.operation
        rebuilt = tf_keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=layer.name)
        tensors[id(tensor)] = rebuilt
        inputs.append(rebuilt)

    def convert(tensor):
        if not isinstance(tensor, keras3.KerasTensor):
            return tensor
        if id(tensor) in tensors:
            return tensors[id(tensor)]
        operation, node_index, _ = tensor._keras_history
        if not isinstance(operation, keras3.layers.Layer) or isinstance(operation, keras3.Model):
            raise TypeError(
                f"to_tf_keras rebuilds graphs of standard layers only; {operation.name!r} is a "
                f"{type(operation).__qualname__} (a keras.ops call or a nested model). Use "
                "layers such as keras.layers.Add for it, or build the model with tf_keras"
            )
        node = operation._inbound_nodes[node_index]
        args = keras3.tree.map_structure(convert, node.arguments.args)
        kwargs = keras3.tree.map_structure(convert, node.arguments.kwargs)
        if id(operation) not in converted:
            converted[id(operation)] = (operation, _tf_keras_layer(operation, tf_keras))
        outputs = converted[id(operation)][1](*args, **kwargs)
        for old, new in zip(node.output_tensors, _flatten(outputs), strict=True):
            tensors[id(old)] = new
        return tensors[id(tensor)]

    outputs = keras3.tree.map_structure(convert, model._outputs_struct)
    return tf_keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)


_KERAS3_NOTICE = (
    "trainer was imported after this process chose Keras 3 ({reason}), so trainer leaves "
    "`tf.keras` on Keras 3 and does not set TF_USE_LEGACY_KERAS. Available on your Keras 3 "
    "models: trainer's schedules, callbacks, checkpoints, LR finder, diagnosis and Distiller. "
    "Not available on them: TF-MOT compression (pruning, clustering, quantization-aware "
    "training), export to .tflite, the recipes and tuning, which take tf_keras models. To use "
    "those, import trainer before keras/tensorflow (or set TF_USE_LEGACY_KERAS=1 before "
    "TensorFlow loads) and build with tf_keras, or convert a functional or Sequential model "
    "with `trainer.keras_path.to_tf_keras(model)`. See docs/keras3.md."
)


def _stacklevel_outside_trainer() -> int:
    """The `warnings.warn` stacklevel of the first caller outside trainer and importlib (the
    user's import line), counted from the function that calls this; `warnings` itself skips
    importlib's frames when it counts."""
    level, frame = 2, sys._getframe(2)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if not module.startswith(("trainer", "importlib")):
            return level
        if not module.startswith("importlib"):
            level += 1
        frame = frame.f_back
    return 1


def _choose_keras() -> str | None:
    """Picks the Keras of `tf.keras` once, at trainer's first import (see the module docstring)."""
    reason = keras3_in_use()
    if reason is None:
        _use_legacy_keras()
        return None
    _stay_on_keras3()
    warnings.warn(
        _KERAS3_NOTICE.format(reason=reason),
        Keras3InUseWarning,
        stacklevel=_stacklevel_outside_trainer(),
    )
    return reason


# Why this process is on Keras 3 (what the script bound or used before importing trainer), or
# None when trainer chose tf_keras for `tf.keras`.
KERAS3_IN_USE: str | None = _choose_keras()
