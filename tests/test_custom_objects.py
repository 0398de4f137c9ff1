"""`import trainer` is enough to load a model holding trainer's layers, loss and schedules.

Each load runs in a fresh process, where nothing but `import trainer` could have registered the
objects; `CUSTOM_OBJECTS` is checked against the registry and against the sources.
"""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tf_keras as keras

from conftest import REPO
from trainer.custom_objects import CUSTOM_OBJECTS, KERAS3_OBJECTS, LazyRegistry, register_all
from trainer.keras_path import child_environment
from trainer.models.image import HorizontalFlip
from trainer.models.text import NgramTfIdf
from trainer.optimizers import scheduled_optimizer


def _python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=child_environment("TRAINER_DEBUG"),
    )


def test_the_table_names_every_registered_object():
    register_all()
    registered = {
        name: type(value).__module__ if not isinstance(value, type) else value.__module__
        for name, value in keras.saving.get_custom_objects().items()
        if name.startswith("trainer>")
    }
    ours = {name: module for name, module in CUSTOM_OBJECTS.items() if ">" in name}
    assert set(registered) == set(ours)
    for name, module in ours.items():
        assert keras.saving.get_custom_objects()[name].__module__ == module, name


def test_every_module_that_registers_is_in_the_table():
    registering = set()
    for path in (REPO / "trainer").rglob("*.py"):
        if path.name == "custom_objects.py":
            continue
        # A decorator or call at the start of a line (docstrings quote it inside sentences).
        pattern = r"^\s*(@|\w+\s*=\s*)?[\w.]*register_keras_serializable\("
        if re.search(pattern, path.read_text(encoding="utf-8"), re.MULTILINE):
            registering.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    assert registering == set(CUSTOM_OBJECTS.values())


def test_keras3_gets_only_what_has_a_keras3_twin():
    assert set(KERAS3_OBJECTS) == {
        "trainer>Constant",
        "trainer>Warmup",
        "trainer>OneCycle",
        "Constant",
        "Warmup",
        "OneCycle",
    }


def test_lazy_registry_imports_on_lookup_and_on_copy(monkeypatch):
    imported = []
    monkeypatch.setattr(
        "trainer.custom_objects.importlib.import_module",
        lambda name: imported.append(name),
    )
    registry = LazyRegistry({"Keras>Own": 1}, {"trainer>A": "mod_a", "trainer>B": "mod_b"})
    assert "Keras>Own" in registry and imported == []
    assert "trainer>A" not in registry  # the fake import registered nothing
    assert imported == ["mod_a"]
    assert "trainer>A" not in registry and imported == ["mod_a"]  # imported once
    assert {**registry} == {"Keras>Own": 1} and imported == ["mod_a", "mod_b"]


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A model with the test-time flip, the TF-IDF layer, trainer's loss and a warmup schedule
    in its optimizer, saved as .keras and .h5."""
    from trainer.losses import SparseCategoricalCrossentropy

    root = tmp_path_factory.mktemp("custom_objects")
    images = keras.Input((6, 6, 1))
    flipped = HorizontalFlip()(images)
    ids = keras.Input((5,))
    idf = NgramTfIdf(vocab_size=10, buckets=4, units=3, idf=np.ones(14, np.float32))(ids)
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(flipped), idf])
    model = keras.Model([images, ids], keras.layers.Dense(3)(joined))
    optimizer = scheduled_optimizer("adamw", 1e-3, steps_per_epoch=10, epochs=2)
    model.compile(optimizer, SparseCategoricalCrossentropy(from_logits=True))
    model.save(root / "model.keras")
    model.save(root / "model.h5")
    return root


@pytest.mark.parametrize(
    "imports",
    [
        "import trainer, tf_keras",
        "import tf_keras, trainer",
        "import trainer, tensorflow; import tf_keras",
        "from trainer.callbacks import EpochLogger; import tf_keras",
        "from trainer.models.text import NgramTfIdf; import tf_keras",
    ],
    ids=[
        "trainer_first",
        "tf_keras_first",
        "tensorflow_first",
        "callbacks_first",
        "text_layers_first",
    ],
)
def test_a_fresh_process_loads_the_model_after_import_trainer(saved_models, imports):
    result = _python(
        f"""
        {imports}
        for name in ("model.keras", "model.h5"):
            model = tf_keras.models.load_model({str(saved_models)!r} + "/" + name)
            print(name, [type(layer).__name__ for layer in model.layers])
            print(name, type(model.optimizer._learning_rate).__name__, type(model.loss).__name__)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.keras", "model.h5"):
        assert f"{name} Warmup SparseCategoricalCrossentropy" in result.stdout
        layers = next(line for line in result.stdout.splitlines() if line.startswith(f"{name} ["))
        assert "HorizontalFlip" in layers and "NgramTfIdf" in layers


def test_import_trainer_loads_neither_tensorflow_nor_keras():
    result = _python(
        """
        import sys, trainer
        print(sorted(name for name in ("tensorflow", "tf_keras", "keras") if name in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_keras3_loads_a_keras3_model_with_a_trainer_schedule(tmp_path):
    path = tmp_path / "keras3.keras"
    saved = _python(
        f"""
        import keras, trainer
        from trainer.schedules import Warmup
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        decay = keras.optimizers.schedules.CosineDecay(1e-3, 100)
        model.compile(keras.optimizers.Adam(Warmup(decay, warmup_steps=10)), "mse")
        model.save({str(path)!r})
        """
    )
    assert saved.returncode == 0, saved.stderr[-2000:]
    loaded = _python(
        f"""
        import keras, trainer
        model = keras.models.load_model({str(path)!r})
        print(type(model.optimizer._learning_rate).__name__)
        """
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().endswith("Warmup")
