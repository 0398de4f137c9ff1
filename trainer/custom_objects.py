"""Every object trainer registers with Keras serialization, found without importing it first.

A run's `model.keras` holds trainer's own layers (the test-time flip, the TF-IDF layer, the
text and BERT layers), its loss and its learning-rate schedule under their registered names
("trainer>HorizontalFlip", "trainer>Warmup", ...). Keras finds such a name only in its global
custom-object dict, which the defining module fills when it is imported. Importing those modules
in `import trainer` would load TensorFlow (seconds), so instead `import trainer` calls
`register_on_import()`: once `tf_keras` (or Keras 3) is imported, its global dict is replaced by
a `LazyRegistry` holding the same entries, which imports the defining module the first time one
of trainer's names is looked up, and every defining module when the dict is copied or iterated
(Keras copies it before it deserializes a file). So, with no `custom_objects`:

    import trainer, tf_keras
    model = tf_keras.models.load_model("runs/fashion_mnist-20261125-131500/model.keras")

The dict object Keras keeps is private (`_GLOBAL_CUSTOM_OBJECTS` in tf_keras,
`GLOBAL_CUSTOM_OBJECTS` in Keras 3), read by attribute at each use; the replacement is a `dict`
subclass with every entry Keras put there, so Keras's own registrations and lookups behave as
before. `CUSTOM_OBJECTS` must name every registered object: `tests/test_custom_objects.py`
checks it against the registry after importing every defining module, and against the sources.
Keras 3 can load only the schedules (they have Keras 3 twins); the layers are tf_keras layers.
This module must not import TensorFlow or Keras.
"""

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterable

# Registered name -> the module whose import registers it. The bare schedule names are the
# aliases h5 files use for an optimizer's schedule (see trainer.schedules).
CUSTOM_OBJECTS = {
    "trainer>Constant": "trainer.schedules",
    "trainer>Warmup": "trainer.schedules",
    "trainer>OneCycle": "trainer.schedules",
    "Constant": "trainer.schedules",
    "Warmup": "trainer.schedules",
    "OneCycle": "trainer.schedules",
    "trainer>SparseCategoricalCrossentropy": "trainer.losses",
    "trainer>HorizontalFlip": "trainer.models.image",
    "trainer>NgramTfIdf": "trainer.models.text_ngrams",
    "trainer>TfIdfLinear": "trainer.models.text_ngrams",
    "trainer>PaddingMask": "trainer.models.text",
    "trainer>PositionEmbedding": "trainer.models.text",
    "trainer>MaskedMeanPooling": "trainer.models.text",
    "trainer>AttentionMask": "trainer.models.text",
    "trainer>BertEmbeddings": "trainer.models.bert",
    "trainer>bert_gelu": "trainer.models.bert",
    "trainer>ReverseChannels": "trainer.models.transfer",
}
# What Keras 3 can load: the schedules, registered with Keras 3 by trainer.schedules.
KERAS3_OBJECTS = {
    name: module for name, module in CUSTOM_OBJECTS.items() if module == "trainer.schedules"
}


class LazyRegistry(dict):
    """Keras's global custom-object dict, importing trainer's defining modules on first use.

    A lookup of one of `modules`' names imports that name's module (which registers it into
    this dict); copying or iterating the dict imports all of them. A module already in
    `sys.modules` is not imported again: it registered itself, or is being imported right now
    and will register when it finishes (Keras checks a name before registering it).
    """

    def __init__(self, entries: dict, modules: dict[str, str]):
        super().__init__(entries)
        self._pending = dict(modules)  # names whose module this dict has not imported yet

    def _import(self, names: Iterable) -> None:
        for name in list(names):
            # Popped before the import, which looks the name up again when it registers it.
            module = self._pending.pop(name, None) if isinstance(name, str) else None
            if module is not None and module not in sys.modules:
                importlib.import_module(module)

    def _import_all(self) -> None:
        if self._pending:
            self._import(self._pending)

    def __contains__(self, name) -> bool:
        if isinstance(name, str) and name in self._pending:
            self._import([name])
        return super().__contains__(name)

    def __getitem__(self, name):
        if isinstance(name, str) and name in self._pending:
            self._import([name])
        return super().__getitem__(name)

    def get(self, name, default=None):
        if isinstance(name, str) and name in self._pending:
            self._import([name])
        return super().get(name, default)

    # Overriding __iter__ also makes `{**registry}` and `dict(registry)` go through keys().
    def __iter__(self):
        self._import_all()
        return super().__iter__()

    def keys(self):
        self._import_all()
        return super().keys()

    def items(self):
        self._import_all()
        return super().items()

    def values(self):
        self._import_all()
        return super().values()

    def copy(self) -> dict:
        self._import_all()
        return dict(super().items())


def _install(registration_module, attribute: str, modules: dict[str, str]) -> None:
    current = getattr(registration_module, attribute)
    if not isinstance(current, LazyRegistry):
        setattr(registration_module, attribute, LazyRegistry(current, modules))


def _install_tf_keras(_module=None) -> None:
    from tf_keras.src.saving import object_registration

    _install(object_registration, "_GLOBAL_CUSTOM_OBJECTS", CUSTOM_OBJECTS)


def _install_keras3(_module=None) -> None:
    from keras.src.saving import object_registration

    _install(object_registration, "GLOBAL_CUSTOM_OBJECTS", KERAS3_OBJECTS)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `callback(module)` right after the process first imports the package `name`.

    A `find_spec` call alone is not an import (TensorFlow probes `tf_keras` and `keras` with
    `importlib.util.find_spec` while it loads), so the finder leaves `sys.meta_path` only once
    the package's code has run.
    """

    def __init__(self, name: str, callback, accept=lambda module: True):
        self.name, self.callback, self.accept = name, callback, accept
        self._searching = False

    def find_spec(self, name, path=None, target=None):
        if name != self.name or self._searching:
            return None
        self._searching = True  # the real finders locate the package
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._searching = False
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module):
            loader_exec(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            if self.accept(module):
                self.callback(module)

        spec.loader.exec_module = exec_module
        return spec


def _is_keras3(module) -> bool:
    return str(getattr(module, "__version__", "")).startswith("3")


def register_on_import() -> None:
    """Makes trainer's registered objects loadable by tf_keras and Keras 3 from now on.

    Installs the `LazyRegistry` now in each Keras already imported, and right after the import
    of each Keras not imported yet. Called by `import trainer`; calling it again does nothing.
    """
    for name, install, accept in (
        ("tf_keras", _install_tf_keras, lambda module: True),
        ("keras", _install_keras3, _is_keras3),
    ):
        module = sys.modules.get(name)
        if module is not None:
            if accept(module):
                install(module)
        elif not any(
            isinstance(finder, _AfterImport) and finder.name == name for finder in sys.meta_path
        ):
            sys.meta_path.insert(0, _AfterImport(name, install, accept))


def register_all() -> None:
    """Imports every module that registers an object (loads TensorFlow): an eager alternative
    for code that inspects Keras's custom objects itself."""
    for module in sorted(set(CUSTOM_OBJECTS.values())):
        importlib.import_module(module)
