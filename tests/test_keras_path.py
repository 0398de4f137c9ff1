import os
import subprocess
import sys

import pytest
import tf_keras

import trainer
from trainer.keras_path import check_keras_object, is_keras3_object

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
ENV.pop("TF_USE_LEGACY_KERAS", None)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=600
    )


@pytest.mark.e2e
def test_tensorflow_imported_first_with_keras3_still_serves_keras3():
    # A Keras 3 script that used tf.keras before importing trainer: import order does not
    # matter for the schedules; only a tf_keras-only script's explicit check refuses.
    result = _run(
        "import tensorflow as tf\ntf.keras.layers\nimport trainer\n"
        "from trainer.schedules import Warmup\n"
        "schedule = Warmup(tf.keras.optimizers.schedules.CosineDecay(1e-2, 500), warmup_steps=50)\n"
        "assert isinstance(schedule, tf.keras.optimizers.schedules.LearningRateSchedule)\n"
        "print('rate', round(float(schedule(25)), 6))\n"
        "try:\n    trainer.ensure_legacy_keras()\n"
        "except ImportError as error:\n    print('refused:', error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "rate 0.005" in result.stdout
    assert "refused: TensorFlow was imported before trainer with Keras 3" in result.stdout
    assert "to_tf_keras(model)" in result.stdout


@pytest.mark.e2e
def test_tensorflow_imported_first_without_touching_keras_is_fine():
    # Nothing chose Keras 3 yet, so trainer picks tf_keras, and every form of tf.keras agrees
    # (trainer points TensorFlow's `tensorflow.keras` import path at tf_keras too).
    result = _run(
        "import tensorflow as tf\nimport trainer, tf_keras\n"
        "from tensorflow.keras import layers\nfrom tensorflow import keras\n"
        "assert tf.keras.Model is tf_keras.Model, tf.keras\n"
        "assert layers.Dense is keras.layers.Dense is tf_keras.layers.Dense, layers\n"
        "print('ok')"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    assert "Keras3InUseWarning" not in result.stderr


def test_keras3_model_rejected_with_object_name():
    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3"):
        pytest.skip(f"keras {keras3.__version__} is not Keras 3")  # only on a Keras-2-only env
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
    keras3 = pytest.importorskip("keras")
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
def test_import_trainer_then_tensorflow_sets_keras_2_quietly():
    """`import trainer` first: TF_USE_LEGACY_KERAS is set, so tf.keras is tf_keras (Keras 2),
    and TensorFlow's native start-up notices are not printed."""
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    # The documented choice: with trainer imported first, a script's later
    # `from tensorflow import keras` and `from tensorflow.keras import layers` are tf_keras.
    code = (
        "import trainer, tensorflow as tf, tf_keras\n"
        "from tensorflow import keras\nfrom tensorflow.keras import layers\n"
        "assert tf.keras.Model is keras.Model is tf_keras.Model, tf.keras\n"
        "assert layers.Dense is tf_keras.layers.Dense, layers\n"
        "print(tf.__version__)"
    )
    unset = ("TF_CPP_MIN_LOG_LEVEL", "TRAINER_DEBUG", "TF_USE_LEGACY_KERAS")
    env = {key: value for key, value in os.environ.items() if key not in unset}
    quiet = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600
    )
    assert quiet.returncode == 0 and quiet.stdout.startswith("2."), quiet.stderr
    assert "absl::InitializeLog" not in quiet.stderr and "oneDNN" not in quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "TRAINER_DEBUG": "1"},
        timeout=600,
    )
    # Under TRAINER_DEBUG the notices come back, so the quiet run above proves the hook works.
    assert "oneDNN" in loud.stderr or "absl" in loud.stderr
