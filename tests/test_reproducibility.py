"""`--seed` and the determinism option: identical metrics on two runs of a tiny model."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.reproducibility import set_seed


def tiny_run(seed: int) -> tuple[list[float], list[np.ndarray]]:
    set_seed(seed, deterministic=True)
    x = np.random.normal(size=(128, 6)).astype(np.float32)  # seeded through NumPy's global state
    y = (x.sum(axis=1) > 0).astype(np.int64)
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(128).batch(16)  # unseeded op
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, "relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(2),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy"],
    )
    history = model.fit(data, epochs=3, verbose=0, validation_data=data.take(2))
    values = [value for key in sorted(history.history) for value in history.history[key]]
    return values, model.get_weights()


def compare_runs() -> None:
    first_metrics, first_weights = tiny_run(7)
    second_metrics, second_weights = tiny_run(7)
    assert first_metrics == second_metrics  # exactly equal, not approximately
    for a, b in zip(first_weights, second_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    other_metrics, _ = tiny_run(8)
    assert other_metrics != first_metrics  # the seed really drives the run
    print("identical", len(first_metrics), "metric values")


@pytest.mark.e2e
def test_same_seed_gives_identical_metrics_and_weights():
    # A subprocess, because op determinism cannot be switched off in the test process.
    script = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " + (
        "import test_reproducibility as t; t.compare_runs()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "identical 12 metric values" in result.stdout


def test_bad_seed_is_refused():
    with pytest.raises(ValueError, match="seed must be an int >= 0, received -1"):
        set_seed(-1)
    with pytest.raises(ValueError, match="received '3'"):
        set_seed("3")
