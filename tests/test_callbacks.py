"""Each callback inside a plain `model.fit`, with no other part of trainer.

Every test runs twice through the `keras` fixture: in a tf_keras `fit` and in a Keras 3 `fit`
(TensorFlow backend), with the same formula checks. Helper callbacks are the user's Keras's
own `LambdaCallback`s, as a user would write them.
"""

import io
import time

import numpy as np
import pytest
from kerases import KERASES

from trainer.callbacks import (
    EpochLogger,
    ExponentialMovingAverage,
    LearningRateLogger,
    LearningRateWarmup,
    TimeBudget,
)


@pytest.fixture(params=KERASES)
def keras(request):
    return request.param


def regression_data(count=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    return x, y


def linear_model(keras, optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def kernel(model):
    return np.array(model.layers[0].kernel.numpy())


def recorder(keras, model):
    """A callback that records the kernel after every batch and the learning rate before it."""
    kernels, rates = [], []
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(
            float(np.asarray(model.optimizer.learning_rate))
        ),
        on_train_batch_end=lambda batch, logs: kernels.append(kernel(model)),
    )
    callback.kernels, callback.rates = kernels, rates
    return callback


def test_moving_average_matches_formula_and_is_used_for_validation_and_after_fit(keras):
    x, y = regression_data()
    model = linear_model(keras, keras.optimizers.SGD(0.05))
    initial = kernel(model)
    record, average = recorder(keras, model), ExponentialMovingAverage(decay=0.9)
    at_epoch_end = []
    # Where a checkpoint callback would save.
    snapshot = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: at_epoch_end.append(kernel(model))
    )
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        validation_data=(x, y),
        verbose=0,
        shuffle=False,
        callbacks=[record, average, snapshot],
    )
    expected, averages = initial, []
    for step, raw in enumerate(record.kernels, start=1):
        rate = min(0.9, (1 + step) / (10 + step))
        expected = rate * expected + (1 - rate) * raw
        averages.append(expected)
    np.testing.assert_allclose(kernel(model), expected, rtol=1e-5)
    np.testing.assert_allclose(at_epoch_end[0], averages[7], rtol=1e-5)  # saved: the average
    # Training itself went on from the raw weights: the same run without the callback has
    # the same raw trajectory.
    plain = linear_model(keras, keras.optimizers.SGD(0.05))
    plain_record = recorder(keras, plain)
    plain.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        validation_data=(x, y),
        verbose=0,
        shuffle=False,
        callbacks=[plain_record],
    )
    np.testing.assert_allclose(plain_record.kernels, record.kernels, rtol=1e-6)
    assert not np.allclose(expected, record.kernels[-1])  # the average differs from raw
    # val_loss of the last epoch scored the averaged weights, which the model now holds.
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        history.history["val_loss"][-1], rel=1e-5
    )
    with pytest.raises(ValueError, match="decay must be in \\[0, 1\\), received 1.5"):
        ExponentialMovingAverage(1.5)


def test_moving_average_model_saves_averaged_weights(tmp_path, keras):
    x, y = regression_data()
    model = linear_model(keras, keras.optimizers.SGD(0.05))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[ExponentialMovingAverage(0.8)])
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(kernel(restored), kernel(model))


def test_time_budget_stops_before_the_budget(keras):
    x, y = regression_data()
    model = linear_model(keras, keras.optimizers.SGD(0.01))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # tracing is not part of the budget
    budget = TimeBudget(seconds=0.5, verbose=0)
    slow_batches = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: time.sleep(0.02)
    )
    history = model.fit(x, y, batch_size=8, epochs=200, verbose=0, callbacks=[slow_batches, budget])
    epochs_run = len(history.history["loss"])
    assert budget.stopped_epoch is not None and 1 <= epochs_run < 200
    assert epochs_run == budget.stopped_epoch + 1
    # Each epoch sleeps 8 x 20 ms, so at most three epochs fit in half a second.
    assert epochs_run <= 3
    ample = TimeBudget(seconds=600, verbose=0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[ample])
    assert ample.stopped_epoch is None
    with pytest.raises(ValueError, match="seconds must be a number > 0, received 0"):
        TimeBudget(0)


def test_warmup_ramps_a_users_constant_learning_rate(keras):
    x, y = regression_data()
    model = linear_model(keras, keras.optimizers.SGD(0.1, momentum=0.9))
    record = recorder(keras, model)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[LearningRateWarmup(warmup_steps=10), record],
    )
    expected = [0.1 * min(step / 10, 1.0) for step in range(16)]
    np.testing.assert_allclose(record.rates, expected, rtol=1e-6, atol=1e-9)
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.1)


def test_warmup_wraps_a_users_schedule_and_gives_it_back(keras):
    x, y = regression_data()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=8, decay_rate=0.5)
    model = linear_model(keras, keras.optimizers.Adam(schedule))
    seen = []
    # After a step, tf_keras's `learning_rate` is the rate that step used; Keras 3's is the
    # schedule at the new step count, the rate the next step will use.
    offset = 1 if keras.__version__.startswith("3") else 0
    applied_rate = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(
            float(np.asarray(model.optimizer.learning_rate))
        )
    )
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[LearningRateWarmup(warmup_steps=4, initial_factor=0.2), applied_rate],
    )
    expected = []
    for step in range(offset, 16 + offset):
        target = 0.1 * 0.5 ** (step / 8)
        start = 0.1 * 0.2
        expected.append(start + (target - start) * step / 4 if step < 4 else target)
    np.testing.assert_allclose(seen, expected, rtol=1e-5)
    assert model.optimizer._learning_rate is schedule  # the user's schedule is back
    # The compiled train step used the warmup: the same run without it ends elsewhere.
    plain = linear_model(keras, keras.optimizers.Adam(schedule))
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert not np.allclose(kernel(plain), kernel(model), rtol=1e-4)


def test_existing_loggers_still_work(keras):
    x, y = regression_data()
    model = linear_model(keras, keras.optimizers.SGD(0.01))
    stream = io.StringIO()
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[LearningRateLogger(), EpochLogger(stream=stream)],
    )
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.01])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss=") and "lr=1.0e-02" in lines[1]
