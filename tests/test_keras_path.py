"""Which Keras a process gets from the order of its imports, and the errors that name the fix.

Each import order runs in a process of its own (the choice is made once per process), with
the environment of a user's terminal: no TF_USE_LEGACY_KERAS or TF_CPP_MIN_LOG_LEVEL, which
this pytest process's own `import trainer` set. Scripts that start with `import tensorflow`
run in forks of a server that imported TensorFlow alone (conftest's `warm_tensorflow`);
trainer imported first runs in a new interpreter, since that import is what is tested.
"""

import subprocess
import sys

import pytest
import tf_keras

import trainer
from conftest import KERAS3_MISSING, terminal_env
from trainer import keras_path
from trainer.keras_path import check_keras_object, is_keras3_object
from warm import Result, runs_after_tensorflow

USER_ENV = terminal_env()  # a user's shell: nothing that `import trainer` set in this process
# TensorFlow's native start-up notices (absl, oneDNN), printed to stderr while it loads.
NOTICES = ("absl::InitializeLog", "oneDNN")


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=USER_ENV if env is None else env,
        timeout=600,
    )


def _after_tensorflow(server, code: str, tmp_path) -> Result:
    """`python script.py` of CODE, which starts with `import tensorflow`, in a fork of `server`."""
    assert runs_after_tensorflow(code)
    (tmp_path / "script.py").write_text(code)
    return server.run(["python", "script.py"], cwd=tmp_path, env=USER_ENV)


@pytest.mark.e2e
def test_tensorflow_imported_first_with_keras3_still_serves_keras3(warm_tensorflow, tmp_path):
    # A Keras 3 script that used tf.keras before importing trainer: import order does not
    # matter for the schedules; only a tf_keras-only script's explicit check refuses.
    result = _after_tensorflow(
        warm_tensorflow,
        "import tensorflow as tf\ntf.keras.layers\nimport trainer\n"
        "from trainer.schedules import Warmup\n"
        "schedule = Warmup(tf.keras.optimizers.schedules.CosineDecay(1e-2, 500), warmup_steps=50)\n"
        "assert isinstance(schedule, tf.keras.optimizers.schedules.LearningRateSchedule)\n"
        "print('rate', round(float(schedule(25)), 6))\n"
        "try:\n    trainer.ensure_legacy_keras()\n"
        "except ImportError as error:\n    print('refused:', error)\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "rate 0.005" in result.stdout
    assert "refused: TensorFlow was imported before trainer with Keras 3" in result.stdout
    assert "to_tf_keras(model)" in result.stdout
    # The server imported TensorFlow in this environment with nothing to silence it: its
    # start-up notices are there, so their absence in test_trainer_imported_first_... below is
    # trainer's doing.
    log = (warm_tensorflow.scratch / "server.log").read_text(errors="replace")
    assert any(notice in log for notice in NOTICES), log[-2000:]


@pytest.mark.e2e
def test_tensorflow_imported_first_without_touching_keras_is_fine(warm_tensorflow, tmp_path):
    # Nothing chose Keras 3 yet, so trainer picks tf_keras, and every form of tf.keras agrees
    # (trainer points TensorFlow's `tensorflow.keras` import path at tf_keras too).
    result = _after_tensorflow(
        warm_tensorflow,
        "import tensorflow as tf\nimport trainer, tf_keras\n"
        "from tensorflow.keras import layers\nfrom tensorflow import keras\n"
        "assert tf.keras.Model is tf_keras.Model, tf.keras\n"
        "assert layers.Dense is keras.layers.Dense is tf_keras.layers.Dense, layers\n"
        "print('ok')",
        tmp_path,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert "Keras3InUseWarning" not in result.stderr


def test_keras3_model_rejected_with_object_name():
    keras3 = pytest.importorskip("keras", reason=KERAS3_MISSING)
    if not keras3.__version__.startswith("3"):
        pytest.skip(KERAS3_MISSING + f" (keras {keras3.__version__} is installed)")
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(1)])
    assert is_keras3_object(model)
    with pytest.raises(
        TypeError,
        match=r"`model` is a Keras 3 object \(keras\.src\..*Sequential\)\. .*"
        r"trainer\.keras_path\.to_tf_keras\(model\)",
    ):
        check_keras_object(model, "model")
    with pytest.raises(TypeError, match="`callback` is a Keras 3 object"):
        check_keras_object(keras3.callbacks.EarlyStopping(), "callback")


def test_keras3_model_rejected_by_export():
    keras3 = pytest.importorskip("keras", reason=KERAS3_MISSING)
    from trainer.export import convert

    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(1)])
    with pytest.raises(TypeError, match="Keras 3 object.*to_tf_keras"):
        convert(model, "float32")


def test_tf_keras_objects_pass():
    model = tf_keras.Sequential([tf_keras.layers.Dense(1, input_shape=(3,))])
    check_keras_object(model, "model")
    check_keras_object(tf_keras.callbacks.EarlyStopping(), "callback")
    assert trainer.keras is tf_keras


@pytest.mark.e2e
def test_trainer_imported_first_gives_tf_keras_quietly_and_keras3_loads_our_schedule(tmp_path):
    """`import trainer` first (the documented choice): every form of tf.keras is tf_keras
    (Keras 2), TensorFlow's native start-up notices are not printed, and `import keras` is
    still Keras 3, which loads a saved model with trainer's schedule without custom_objects:
    the classes are registered with Keras 3 when it loads, after trainer."""
    keras3 = pytest.importorskip("keras", reason=KERAS3_MISSING)
    from trainer.schedules import Warmup

    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(1)])
    schedule = Warmup(keras3.optimizers.schedules.CosineDecay(0.1, 100), warmup_steps=10)
    model.compile(keras3.optimizers.Adam(schedule), "mse")
    model.save(tmp_path / "m.keras")
    code = (
        "import trainer, sys\n"
        "import tensorflow as tf, tf_keras\n"  # quiet: trainer hooked TensorFlow's import
        "import trainer.schedules\n"
        "assert 'keras' not in sys.modules\n"  # Keras 3 is loaded by the script alone
        "import keras\n"
        f"model = keras.models.load_model({str(tmp_path / 'm.keras')!r})\n"
        "schedule = model.optimizer._learning_rate\n"
        "print(type(schedule).__name__, round(float(schedule(5)), 6))\n"
        "from tensorflow import keras as tf_dot_keras\nfrom tensorflow.keras import layers\n"
        "assert tf.keras.Model is tf_dot_keras.Model is tf_keras.Model, tf.keras\n"
        "assert layers.Dense is tf_keras.layers.Dense, layers\n"
        "assert keras.__version__.startswith('3.') and keras.Model is not tf_keras.Model\n"
        "print(tf.__version__)"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "Warmup 0.05" and lines[1].startswith("2."), result.stdout
    assert not [notice for notice in NOTICES if notice in result.stderr], result.stderr[-2000:]


def test_trainer_debug_turns_the_quiet_import_off(monkeypatch):
    """Under TRAINER_DEBUG=1 (or a TF_CPP_MIN_LOG_LEVEL the user chose) `import trainer` leaves
    TensorFlow's import alone, so its notices come back; the fresh-interpreter proof is the
    slow test below."""
    monkeypatch.setattr(keras_path, "USER_LOG_LEVEL", None)
    monkeypatch.delitem(sys.modules, "tensorflow")  # as before TensorFlow's first import
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setenv("TRAINER_DEBUG", "1")
    keras_path.quiet_tensorflow_import()
    hooks = [
        finder for finder in sys.meta_path if type(finder).__name__ == "_QuietTensorFlowFinder"
    ]
    assert not hooks
    monkeypatch.delenv("TRAINER_DEBUG")
    monkeypatch.setattr(keras_path, "USER_LOG_LEVEL", "1")
    keras_path.quiet_tensorflow_import()
    assert not [f for f in sys.meta_path if type(f).__name__ == "_QuietTensorFlowFinder"]
    monkeypatch.setattr(keras_path, "USER_LOG_LEVEL", None)
    keras_path.quiet_tensorflow_import()
    assert [f for f in sys.meta_path if type(f).__name__ == "_QuietTensorFlowFinder"]


@pytest.mark.slow
def test_trainer_debug_brings_tensorflows_notices_back():
    """The end-to-end form of the test above, in a fresh interpreter (~6 s of CPU): with
    TRAINER_DEBUG=1, `import trainer` first no longer hides TensorFlow's start-up notices."""
    result = _run(
        "import trainer, tensorflow as tf\nprint(tf.__version__)",
        {**USER_ENV, "TRAINER_DEBUG": "1"},
    )
    assert result.returncode == 0 and result.stdout.startswith("2."), result.stderr
    assert any(notice in result.stderr for notice in NOTICES), result.stderr[-2000:]
