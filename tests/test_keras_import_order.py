"""Importing trainer after a script chose Keras 3 never switches the script's Keras.

The keras.io MNIST convnet (tests/keras_io_mnist_convnet.py) runs in its own process per
import style of the keras.io examples, with `import trainer.schedules` after its own imports
and trainer's `Warmup` in its optimizer; the detection itself is unit-tested here in-process.
Each process is a fork of a server that imported TensorFlow alone (conftest's
`warm_tensorflow`), in a user's environment: importing TensorFlow chooses no Keras, so the
script's own imports, then trainer's, happen in the fork as in a new interpreter, without
TensorFlow's 6 s of import each time.
"""

import json
import math
import os
import sys
import types
from pathlib import Path

import keras as keras3
import pytest
import tf_keras
from tensorflow.python.util.lazy_loader import KerasLazyLoader

from conftest import terminal_env
from trainer import keras_path
from warm import runs_after_tensorflow

TESTS = Path(__file__).resolve().parent
SCRIPT = (TESTS / "keras_io_mnist_convnet.py").read_text()
EXAMPLE_IMPORTS = "from tensorflow import keras\nfrom tensorflow.keras import layers\n"
TRAINER_IMPORT = "import trainer.schedules  # added after"

# The import block of each keras.io style, and what the script adds after `import trainer`.
STYLES = {
    # The older keras.io examples: a lazy `keras` and `tensorflow.keras` imported.
    "from tensorflow import keras": (EXAMPLE_IMPORTS, ""),
    # The current keras.io examples.
    "import keras": ("import keras\nfrom keras import layers\n", ""),
    # Only TensorFlow's lazy `keras` bound before trainer, resolved after it: the case where
    # nothing but the script's own name shows that it asked for tf.keras.
    "keras = tf.keras": (
        "import tensorflow as tf\n\nkeras = tf.keras\n",
        "layers = keras.layers\n",
    ),
}


def warmup_then_cosine(step: int, peak=1e-3, warmup_steps=4, decay_steps=20) -> float:
    """The script's schedule in plain Python: linear ramp from 0, then cosine decay to 0."""
    if step < warmup_steps:
        return peak * step / warmup_steps
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def script_for(style: str) -> str:
    imports, after_trainer = STYLES[style]
    assert EXAMPLE_IMPORTS in SCRIPT and TRAINER_IMPORT in SCRIPT
    script = SCRIPT.replace(EXAMPLE_IMPORTS, imports)
    line = next(line for line in script.splitlines() if line.startswith(TRAINER_IMPORT))
    return script.replace(line, line + "\n" + after_trainer)


@pytest.mark.e2e
@pytest.mark.parametrize("style", list(STYLES))
def test_keras_io_mnist_convnet_keeps_keras3_and_uses_the_warmup(style, tmp_path, warm_tensorflow):
    path = tmp_path / "mnist_convnet.py"
    path.write_text(script_for(style))
    assert runs_after_tensorflow(path.read_text())
    # A user's shell (no TF_USE_LEGACY_KERAS: set only by trainer's import), tests/ for datagen.
    env = {**terminal_env(), "PYTHONPATH": str(TESTS)}
    result = warm_tensorflow.run(["python", str(path)], cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["keras_version"].startswith("3."), report
    assert report["model_class"].startswith("keras.src.models."), report
    assert report["layer_class"].startswith("keras.src.layers."), report
    assert report["schedule_class"] == "Warmup"
    # 288 training images (validation_split=0.1 of 320) in batches of 32: 9 steps, each at
    # the rate of the formula, through the warmup and into the decay.
    expected = [warmup_then_cosine(step) for step in range(9)]
    assert report["rates"] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert report["test_loss"] < 0.95 * math.log(10)  # below chance after one epoch
    # Said once, at the script's own import line, with what is unavailable and how to get it.
    assert result.stderr.count("Keras3InUseWarning") == 1, result.stderr[-3000:]
    assert f"{path}:" in result.stderr and "TF_USE_LEGACY_KERAS=1" in result.stderr
    assert "TF-MOT compression" in result.stderr and "to_tf_keras(model)" in result.stderr


@pytest.fixture
def keras_unchosen(monkeypatch):
    """This process as trainer's first import sees it when no TF_USE_LEGACY_KERAS was set."""
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)


def test_a_bound_lazy_tensorflow_keras_counts_as_keras3(keras_unchosen):
    lazy = KerasLazyLoader({})  # TensorFlow's `tf.keras` before its first attribute access
    assert "`keras` is TensorFlow's lazy tensorflow.keras" in keras_path.keras3_in_use(
        [{"__name__": "__main__", "keras": lazy}]
    )
    assert "Keras 3 module keras" in keras_path.keras3_in_use([{"keras": keras3}])
    assert "Keras 3 module keras.layers" in keras_path.keras3_in_use(
        [{"layers": sys.modules["keras.layers"]}]
    )
    assert "Keras 3 class keras.src" in keras_path.keras3_in_use([{"Dense": keras3.layers.Dense}])


def test_tf_keras_and_unrelated_bindings_leave_the_choice_to_trainer(keras_unchosen):
    # This pytest process imported trainer first: tf.keras resolved to tf_keras, so nothing
    # process-wide says Keras 3, and tf_keras names or a module called "mykeras" do not either.
    namespaces = [
        {"keras": tf_keras, "layers": tf_keras.layers, "Dense": tf_keras.layers.Dense},
        {"mykeras": types.ModuleType("mykeras"), "np": sys.modules["numpy"]},
    ]
    assert keras_path.keras3_in_use(namespaces) is None


def test_tf_use_legacy_keras_set_by_the_user_is_their_choice(monkeypatch):
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    assert keras_path.keras3_in_use([{"keras": keras3}]) is None


def test_this_process_is_on_tf_keras():
    assert keras_path.KERAS3_IN_USE is None and os.environ["TF_USE_LEGACY_KERAS"] == "1"
