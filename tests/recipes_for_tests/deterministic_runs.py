"""Trains a tiny model three times, twice with seed 7 and once with seed 8, under
`set_seed(seed, deterministic=True)`, and prints "identical N metric values" when the two seed-7
runs gave exactly the same metrics and weights and the seed-8 run did not. Run as a script by
tests/test_reproducibility.py, in a process of its own: op determinism cannot be switched off
in the process that switched it on.
"""

import numpy as np

from trainer import keras  # tf_keras, imported the way trainer's users get it
from trainer.reproducibility import set_seed


def tiny_run(seed: int) -> tuple[list[float], list[np.ndarray]]:
    import tensorflow as tf

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


first_metrics, first_weights = tiny_run(7)
second_metrics, second_weights = tiny_run(7)
assert first_metrics == second_metrics  # exactly equal, not approximately
for a, b in zip(first_weights, second_weights, strict=True):
    np.testing.assert_array_equal(a, b)
other_metrics, _ = tiny_run(8)
assert other_metrics != first_metrics  # the seed really drives the run
print("identical", len(first_metrics), "metric values")
