"""Schedules against their plain-Python formulas, and save/reload without custom_objects.

The tests that wrap or save a schedule run with both Kerases (the `keras` fixture): tf_keras
and Keras 3 take the same classes.
"""

import math

import numpy as np
import pytest
from kerases import KERASES, keras3, tf_keras

from trainer.schedules import Constant, OneCycle, Warmup, build_schedule


@pytest.fixture(params=KERASES)
def keras(request):
    return request.param


STEPS = [0, 1, 2, 7, 49, 50, 51, 99, 100, 101, 250, 499, 500, 777, 999, 1000, 1500]


def cosine(rate, step, decay_steps, alpha=0.0):
    step = min(step, decay_steps)
    return rate * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * step / decay_steps)) + alpha)


def one_cycle(peak, total, step, pct=0.3, div=25.0, final_div=1e4):
    step = min(step, total)
    start, end, rise = peak / div, peak / div / final_div, pct * total

    def anneal(a, b, f):
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * f))

    if step <= rise:
        return anneal(start, peak, step / rise)
    return anneal(peak, end, (step - rise) / (total - rise))


def assert_matches(schedule, formula):
    got = [float(schedule(step)) for step in STEPS]
    want = [formula(step) for step in STEPS]
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-9)


def test_linear_warmup_then_cosine_delays_the_decay(keras):
    schedule = Warmup(keras.optimizers.schedules.CosineDecay(0.1, 900), warmup_steps=100)

    def formula(step):
        return 0.1 * step / 100 if step < 100 else cosine(0.1, step - 100, 900)

    assert_matches(schedule, formula)


def test_exponential_warmup_is_geometric():
    schedule = Warmup(0.1, warmup_steps=100, initial_learning_rate=1e-3, warmup_type="exponential")

    def formula(step):
        return 1e-3 * (0.1 / 1e-3) ** (step / 100) if step < 100 else 0.1

    assert_matches(schedule, formula)
    assert float(schedule(50)) == pytest.approx(1e-2, rel=1e-5)  # halfway in log space


def test_warmup_without_delay_scales_the_running_schedule(keras):
    inner = keras.optimizers.schedules.CosineDecay(0.1, 1000)
    schedule = Warmup(inner, warmup_steps=100, delay_decay=False)

    def formula(step):
        target = cosine(0.1, step, 1000)
        return target * step / 100 if step < 100 else target

    assert_matches(schedule, formula)


def test_one_cycle_and_constant_follow_their_formulas():
    assert_matches(OneCycle(0.2, total_steps=1000), lambda step: one_cycle(0.2, 1000, step))
    assert_matches(
        OneCycle(0.2, 1000, pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
        lambda step: one_cycle(0.2, 1000, step, 0.25, 10.0, 100.0),
    )
    assert_matches(Constant(0.03), lambda step: 0.03)


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("constant", lambda s: 0.1 * s / 100 if s < 100 else 0.1),
        ("cosine", lambda s: 0.1 * s / 100 if s < 100 else cosine(0.1, s - 100, 900, 0.05)),
        (
            "step",
            lambda s: (
                0.1 * s / 100
                if s < 100
                else 0.1 * (1 if s - 100 <= 450 else 0.1 if s - 100 <= 675 else 0.01)
            ),
        ),
        ("exponential", lambda s: 0.1 * s / 100 if s < 100 else 0.1 * 0.1 ** ((s - 100) / 900)),
        (
            "polynomial",
            lambda s: (
                0.1 * s / 100 if s < 100 else 0.005 + (0.1 - 0.005) * (1 - min(s - 100, 900) / 900)
            ),
        ),
    ],
)
def test_build_schedule_by_name(name, formula):
    schedule = build_schedule(name, 0.1, total_steps=1000, warmup_steps=100, final_fraction=0.05)
    assert_matches(schedule, formula)


def test_build_schedule_cosine_restarts_and_one_cycle():
    restarts = build_schedule("cosine_restarts", 0.1, total_steps=400)
    # First cycle is 100 steps, the second 200: the rate jumps back to the peak at step 100.
    assert float(restarts(99)) < 0.001 and float(restarts(100)) == pytest.approx(0.1)
    assert float(restarts(200)) == pytest.approx(cosine(0.1, 100, 200), rel=1e-5)
    assert_matches(build_schedule("one_cycle", 0.2, 1000), lambda s: one_cycle(0.2, 1000, s))


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'; choose one of constant"):
        build_schedule("cosin", 0.1, 100)
    with pytest.raises(ValueError, match="warmup_steps must be .* received 100"):
        build_schedule("cosine", 0.1, 100, warmup_steps=100)
    with pytest.raises(ValueError, match="initial_learning_rate > 0, received 0.0"):
        Warmup(0.1, 10, warmup_type="exponential")
    with pytest.raises(ValueError, match="warmup_type must be one of .* received 'cos'"):
        Warmup(0.1, 10, warmup_type="cos")
    with pytest.raises(
        TypeError, match="after_warmup must be a LearningRateSchedule .* or a float"
    ):
        Warmup("0.1", 10)
    with pytest.raises(ValueError, match="pct_start must be in \\(0, 1\\), received 1.5"):
        OneCycle(0.1, 100, pct_start=1.5)


def _schedule_under_test(keras):
    # Nesting covers both our classes and a Keras one inside ours.
    return Warmup(
        keras.optimizers.schedules.CosineDecayRestarts(0.05, 40),
        warmup_steps=10,
        initial_learning_rate=1e-4,
        warmup_type="exponential",
    )


# Keras 3 saves whole models only as .keras.
SAVE_FORMATS = [
    pytest.param(tf_keras, name, id=f"tf_keras-{name}")
    for name in ("model.keras", "saved_model", "model.h5")
] + [pytest.param(keras3, "model.keras", id="keras3-model.keras")]


@pytest.mark.parametrize(("keras", "file_name"), SAVE_FORMATS)
@pytest.mark.parametrize("make_schedule", [_schedule_under_test, lambda _: OneCycle(0.1, 50)])
def test_model_with_schedule_saves_and_reloads_without_custom_objects(
    tmp_path, file_name, make_schedule, keras
):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    schedule = make_schedule(keras)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    x, y = np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
    model.fit(x, y, batch_size=4, epochs=3, verbose=0)  # 6 optimizer steps
    path = str(tmp_path / file_name)
    model.save(path)
    restored = keras.models.load_model(path)
    restored_schedule = restored.optimizer.learning_rate
    if not isinstance(restored_schedule, keras.optimizers.schedules.LearningRateSchedule):
        restored_schedule = restored.optimizer._learning_rate
    assert type(restored_schedule) is type(schedule)
    assert restored_schedule.get_config() == schedule.get_config()
    for step in (0, 5, 12, 30, 60):
        assert float(restored_schedule(step)) == pytest.approx(float(schedule(step)), rel=1e-6)
    if file_name.endswith(".keras"):  # only .keras restores the optimizer's state
        assert int(restored.optimizer.iterations) == 6
