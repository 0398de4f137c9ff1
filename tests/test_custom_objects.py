"""`import trainer` is enough to load a model holding trainer's layers, loss and schedules.

Each load runs in a new interpreter, where nothing but `import trainer` could have registered
the objects, one per import order; the first also loads the run of every recipe (the session's
shared runs, conftest.py). A Keras 3 script runs in a fork of the TensorFlow-only server.
`CUSTOM_OBJECTS` is checked against the registry and against the sources.
"""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tf_keras as keras

from conftest import RECIPE_RUNS, REPO
from trainer.custom_objects import CUSTOM_OBJECTS, KERAS3_OBJECTS, LazyRegistry, register_all
from trainer.keras_path import child_environment
from trainer.models.image import HorizontalFlip
from trainer.models.text_ngrams import NgramTfIdf
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
    in its optimizer, saved as .keras and .h5; and the Transformer text model (its position
    embedding, attention mask and masked pooling), saved as .keras."""
    from trainer.losses import SparseCategoricalCrossentropy
    from trainer.models import text_transformer

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
    text_transformer(8, 20, 3, embedding_dim=8, heads=2, blocks=1).save(root / "transformer.keras")
    return root


def _loading_script(imports: str, folder, runs: dict | None = None) -> str:
    """A script that runs `imports`, then loads with `tf_keras.models.load_model` alone the
    models of `folder` and the model.keras of each run of `runs` ({name: run folder}),
    printing two lines per model: its layer classes, its schedule and loss classes."""
    paths = {name: str(folder / name) for name in ("model.keras", "model.h5", "transformer.keras")}
    paths.update({name: str(run / "model.keras") for name, run in (runs or {}).items()})
    return textwrap.dedent(
        f"""
        {imports}
        for name, path in {paths!r}.items():
            model = tf_keras.models.load_model(path)
            rate = model.optimizer._learning_rate if model.optimizer else None
            print(name, [type(layer).__name__ for layer in model.layers])
            print(name, type(rate).__name__, type(getattr(model, "loss", None)).__name__)
        """
    )


def _load_in_a_fresh_process(imports: str, folder, runs: dict | None = None) -> str:
    """`_loading_script` in a new interpreter; what it printed."""
    result = _python(_loading_script(imports, folder, runs))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _check_saved_models(printed: str) -> None:
    for name in ("model.keras", "model.h5"):
        assert f"{name} Warmup SparseCategoricalCrossentropy" in printed
        layers = next(line for line in printed.splitlines() if line.startswith(f"{name} ["))
        assert "HorizontalFlip" in layers and "NgramTfIdf" in layers
    layers = next(line for line in printed.splitlines() if line.startswith("transformer.keras ["))
    for layer in ("PositionEmbedding", "AttentionMask", "MaskedMeanPooling"):
        assert layer in layers


@pytest.mark.e2e
def test_import_trainer_then_tf_keras_loads_our_models_and_every_recipes_run(saved_models, request):
    """`import trainer, tf_keras` in a new interpreter, then `load_model` alone: the saved
    models above, and the model.keras of the session's shared run of each recipe
    (conftest.py): the test-time flip, the TF-IDF layer, trainer's warmup schedule."""
    runs = {recipe: request.getfixturevalue(name) for recipe, name in RECIPE_RUNS.items()}
    printed = _load_in_a_fresh_process("import trainer, tf_keras", saved_models, runs)
    _check_saved_models(printed)
    lines = {recipe: [] for recipe in RECIPE_RUNS}
    for line in printed.splitlines():
        name, _, rest = line.partition(" ")
        if name in lines:
            lines[name].append(rest)
    assert "HorizontalFlip" in lines["fashion_mnist"][0]
    assert "NgramTfIdf" in lines["imdb"][0]
    assert lines["digits"][1].startswith("Warmup "), lines["digits"]  # the optimizer came back too


@pytest.mark.e2e
def test_tf_keras_imported_before_trainer_loads_the_model(saved_models, warm_tensorflow, tmp_path):
    """`import tf_keras, trainer`: tf_keras's import starts by importing TensorFlow, so a fork
    of the server that imported TensorFlow alone (conftest's `warm_tensorflow`, a user's
    environment) is the process it makes; trainer then finds tf_keras already loaded."""
    from conftest import terminal_env
    from warm import runs_after_tensorflow

    script = _loading_script("import tensorflow; import tf_keras, trainer", saved_models)
    assert runs_after_tensorflow(script)
    (tmp_path / "load.py").write_text(script)
    result = warm_tensorflow.run(["python", "load.py"], cwd=tmp_path, env=terminal_env())
    assert result.returncode == 0, result.stderr[-3000:]
    _check_saved_models(result.stdout)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "imports",
    [
        "import trainer, tensorflow; import tf_keras",
        "from trainer.models.text_ngrams import NgramTfIdf; import tf_keras",
        pytest.param(
            "from trainer.callbacks import EpochLogger; import tf_keras",
            marks=pytest.mark.slow,
            id="callbacks_first",
        ),
    ],
    ids=["tensorflow_first", "text_layers_first", "callbacks_first"],
)
def test_a_fresh_process_loads_the_model_after_import_trainer(saved_models, imports):
    """Each order that imports trainer first, in a new interpreter (about 6 s of CPU each);
    `import trainer, tf_keras` is the first test above. callbacks_first, a trainer submodule
    that imports tf_keras first, runs under -m slow: text_layers_first is the same path, with
    a registering module as the submodule."""
    _check_saved_models(_load_in_a_fresh_process(imports, saved_models))


def test_import_trainer_loads_neither_tensorflow_nor_keras():
    result = _python(
        """
        import sys, trainer
        print(sorted(name for name in ("tensorflow", "tf_keras", "keras") if name in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.e2e
def test_keras3_loads_a_keras3_model_with_a_trainer_schedule(tmp_path, warm_tensorflow):
    """Saved here (Keras 3 beside tf_keras in this process); loaded by a script that imports
    Keras 3 before trainer, in a fork of the server that imported TensorFlow alone (conftest's
    `warm_tensorflow`: importing TensorFlow chooses no Keras), in a user's environment."""
    import keras as keras3

    from conftest import terminal_env
    from trainer.schedules import Warmup
    from warm import runs_after_tensorflow

    path = tmp_path / "keras3.keras"
    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
    decay = keras3.optimizers.schedules.CosineDecay(1e-3, 100)
    model.compile(keras3.optimizers.Adam(Warmup(decay, warmup_steps=10)), "mse")
    model.save(path)
    script = (
        "import keras, trainer\n"
        f"model = keras.models.load_model({str(path)!r})\n"
        "print(type(model.optimizer._learning_rate).__name__)\n"
    )
    assert runs_after_tensorflow(script)
    (tmp_path / "load.py").write_text(script)
    loaded = warm_tensorflow.run(["python", "load.py"], cwd=tmp_path, env=terminal_env())
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().endswith("Warmup")
