"""Learning-rate schedules that tf_keras lacks, and `build_schedule` to pick one by name.

tf_keras already has `CosineDecay` (with a linear warmup), `CosineDecayRestarts`,
`ExponentialDecay`, `PiecewiseConstantDecay` and `PolynomialDecay`; this module reuses them and
adds only `Warmup` (linear or exponential, around *any* schedule or a constant), `OneCycle` and
`Constant`. Every class here is registered with `register_keras_serializable(package="trainer")`,
so a model compiled with it saves and reloads (`.keras`, SavedModel, h5) without
`custom_objects`, as long as `trainer.schedules` was imported. This module must not train.

Example:

    import trainer
    from trainer import keras
    from trainer.schedules import Warmup

    schedule = Warmup(keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=900),
                      warmup_steps=100)
    optimizer = keras.optimizers.Adam(schedule)
"""

import math

import tensorflow as tf
import tf_keras as keras

schedules = keras.optimizers.schedules
LearningRateSchedule = schedules.LearningRateSchedule

WARMUP_TYPES = ("linear", "exponential")
SCHEDULE_NAMES = (
    "constant",
    "cosine",
    "cosine_restarts",
    "step",
    "exponential",
    "polynomial",
    "one_cycle",
)


def _rate_at(rate, step):
    """The value of a schedule or a constant at `step`, as float32."""
    if isinstance(rate, LearningRateSchedule):
        return tf.cast(rate(step), tf.float32)
    return tf.constant(rate, tf.float32)


def _check_positive(name: str, value, allow_zero: bool = False) -> None:
    if not isinstance(value, int | float) or value < 0 or (value == 0 and not allow_zero):
        expected = "a number >= 0" if allow_zero else "a number > 0"
        raise ValueError(f"{name} must be {expected}, received {value!r}")


@keras.saving.register_keras_serializable(package="trainer")
class Constant(LearningRateSchedule):
    """A learning rate that never changes, as a schedule (so it can be wrapped or swapped).

    Args:
        learning_rate: the rate at every step.

    Example:

        from trainer.schedules import Constant
        assert float(Constant(0.01)(500)) == 0.01
    """

    def __init__(self, learning_rate: float, name: str | None = None):
        super().__init__()
        _check_positive("learning_rate", learning_rate, allow_zero=True)
        self.learning_rate = learning_rate
        self.name = name

    def __call__(self, step):
        return tf.constant(self.learning_rate, tf.float32, name=self.name or "Constant")

    def get_config(self):
        return {"learning_rate": self.learning_rate, "name": self.name}


@keras.saving.register_keras_serializable(package="trainer")
class Warmup(LearningRateSchedule):
    """Ramps the learning rate up over `warmup_steps`, then hands over to another schedule.

    The ramp goes from `initial_learning_rate` to the wrapped schedule's rate, linearly or
    exponentially (geometric steps, which need `initial_learning_rate > 0`). With
    `delay_decay=True` (default, like `CosineDecay(warmup_steps=...)`) the wrapped schedule
    starts counting its steps when warmup ends; with `False` it runs from step 0 and the
    warmup only scales its early values, which suits a schedule already sized for the whole run.

    Args:
        after_warmup: any `LearningRateSchedule`, or a float for a constant rate.
        warmup_steps: number of optimizer steps the ramp lasts (0 disables warmup).
        initial_learning_rate: rate at step 0.
        warmup_type: "linear" or "exponential".
        delay_decay: whether `after_warmup` starts at the end of warmup (True) or at step 0.

    Example:

        import trainer
        from trainer import keras
        from trainer.schedules import Warmup
        cosine = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=1000)
        schedule = Warmup(cosine, warmup_steps=100)
        assert abs(float(schedule(50)) - 5e-4) < 1e-9
    """

    def __init__(
        self,
        after_warmup,
        warmup_steps: int,
        initial_learning_rate: float = 0.0,
        warmup_type: str = "linear",
        delay_decay: bool = True,
        name: str | None = None,
    ):
        super().__init__()
        if not isinstance(after_warmup, LearningRateSchedule | int | float):
            raise TypeError(
                "after_warmup must be a tf_keras LearningRateSchedule or a float, received "
                f"{type(after_warmup).__module__}.{type(after_warmup).__qualname__}"
            )
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, received {warmup_steps!r}")
        if warmup_type not in WARMUP_TYPES:
            raise ValueError(f"warmup_type must be one of {WARMUP_TYPES}, received {warmup_type!r}")
        _check_positive("initial_learning_rate", initial_learning_rate, allow_zero=True)
        if warmup_type == "exponential" and initial_learning_rate <= 0:
            raise ValueError(
                "exponential warmup multiplies the rate by a constant factor per step, so it "
                f"needs initial_learning_rate > 0, received {initial_learning_rate!r}; "
                "try 1% of the peak rate"
            )
        self.after_warmup = after_warmup
        self.warmup_steps = warmup_steps
        self.initial_learning_rate = initial_learning_rate
        self.warmup_type = warmup_type
        self.delay_decay = delay_decay
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name or "Warmup"):
            step = tf.cast(step, tf.float32)
            warmup_steps = tf.constant(float(self.warmup_steps), tf.float32)
            decay_step = tf.maximum(step - warmup_steps, 0.0) if self.delay_decay else step
            target = _rate_at(self.after_warmup, decay_step)
            if self.warmup_steps == 0:
                return target
            fraction = tf.minimum(step / warmup_steps, 1.0)
            start = tf.constant(self.initial_learning_rate, tf.float32)
            if self.warmup_type == "linear":
                ramp = start + (target - start) * fraction
            else:
                ramp = start * tf.pow(target / start, fraction)
            return tf.where(step < warmup_steps, ramp, target)

    def get_config(self):
        after = self.after_warmup
        if isinstance(after, LearningRateSchedule):
            after = schedules.serialize(after)
        return {
            "after_warmup": after,
            "warmup_steps": self.warmup_steps,
            "initial_learning_rate": self.initial_learning_rate,
            "warmup_type": self.warmup_type,
            "delay_decay": self.delay_decay,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["after_warmup"], dict):
            config["after_warmup"] = schedules.deserialize(config["after_warmup"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="trainer")
class OneCycle(LearningRateSchedule):
    """The one-cycle policy (Smith & Topin, 2018): cosine up to a peak, then cosine far down.

    From `max_learning_rate / div_factor` the rate rises to `max_learning_rate` over the first
    `pct_start` of `total_steps`, then falls to `max_learning_rate / (div_factor *
    final_div_factor)` at `total_steps` and stays there. Argument names follow PyTorch's
    `OneCycleLR` so its published settings carry over.

    Args:
        max_learning_rate: peak rate.
        total_steps: optimizer steps in the whole run.
        pct_start: fraction of the steps spent rising, in (0, 1).
        div_factor: the start rate is `max_learning_rate / div_factor`.
        final_div_factor: the final rate is the start rate divided by this.

    Example:

        from trainer.schedules import OneCycle
        schedule = OneCycle(0.1, total_steps=1000)
        assert abs(float(schedule(300)) - 0.1) < 1e-7
    """

    def __init__(
        self,
        max_learning_rate: float,
        total_steps: int,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        name: str | None = None,
    ):
        super().__init__()
        _check_positive("max_learning_rate", max_learning_rate)
        if not isinstance(total_steps, int) or total_steps < 2:
            raise ValueError(f"total_steps must be an int >= 2, received {total_steps!r}")
        if not 0.0 < pct_start < 1.0:
            raise ValueError(f"pct_start must be in (0, 1), received {pct_start!r}")
        _check_positive("div_factor", div_factor)
        _check_positive("final_div_factor", final_div_factor)
        self.max_learning_rate = max_learning_rate
        self.total_steps = total_steps
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.name = name

    def __call__(self, step):
        with tf.name_scope(self.name or "OneCycle"):
            step = tf.minimum(tf.cast(step, tf.float32), float(self.total_steps))
            peak = float(self.max_learning_rate)
            start = peak / self.div_factor
            final = start / self.final_div_factor
            rise_steps = float(self.pct_start * self.total_steps)
            fall_steps = float(self.total_steps) - rise_steps

            def cosine(from_rate, to_rate, fraction):
                return to_rate + (from_rate - to_rate) * 0.5 * (1.0 + tf.cos(math.pi * fraction))

            rising = cosine(start, peak, step / rise_steps)
            falling = cosine(peak, final, (step - rise_steps) / fall_steps)
            return tf.where(step <= rise_steps, rising, falling)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }


def build_schedule(
    name: str,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    warmup_type: str = "linear",
    final_fraction: float = 0.0,
) -> LearningRateSchedule:
    """A schedule by name, sized for a run of `total_steps`, with optional warmup in front.

    After warmup the decay covers the remaining `total_steps - warmup_steps` steps:

    - "constant": `learning_rate` throughout.
    - "cosine": cosine from `learning_rate` to `final_fraction * learning_rate`.
    - "cosine_restarts": SGDR; first cycle a quarter of the run, each next one twice as long.
    - "step": x0.1 at 50% and again at 75% of the decay steps (piecewise constant).
    - "exponential": smooth x0.1 over the decay steps (`ExponentialDecay`, rate 0.1).
    - "polynomial": linear (power 1) down to `final_fraction * learning_rate`.
    - "one_cycle": `OneCycle`, whose rising phase replaces warmup (warmup_steps must be 0).

    Raises:
        ValueError: unknown name (listing the valid ones) or inconsistent step counts.

    Example:

        from trainer.schedules import build_schedule
        schedule = build_schedule("cosine", 1e-3, total_steps=1000, warmup_steps=100)
        assert abs(float(schedule(100)) - 1e-3) < 1e-9
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    _check_positive("learning_rate", learning_rate)
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, received {total_steps!r}")
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps must be an int in [0, total_steps={total_steps}), "
            f"received {warmup_steps!r}"
        )
    if not 0.0 <= final_fraction <= 1.0:
        raise ValueError(f"final_fraction must be in [0, 1], received {final_fraction!r}")
    if name == "one_cycle":
        if warmup_steps:
            raise ValueError(
                f"one_cycle has its own rising phase; use warmup_steps=0, received {warmup_steps}"
            )
        return OneCycle(learning_rate, total_steps=max(total_steps, 2))
    decay_steps = total_steps - warmup_steps
    if name == "constant":
        after = Constant(learning_rate)
    elif name == "cosine":
        after = schedules.CosineDecay(learning_rate, decay_steps, alpha=final_fraction)
    elif name == "cosine_restarts":
        after = schedules.CosineDecayRestarts(
            learning_rate, max(decay_steps // 4, 1), t_mul=2.0, alpha=final_fraction
        )
    elif name == "step":
        boundaries = [max(decay_steps // 2, 1), max(decay_steps * 3 // 4, 2)]
        values = [learning_rate, learning_rate * 0.1, learning_rate * 0.01]
        after = schedules.PiecewiseConstantDecay(boundaries, values)
    elif name == "exponential":
        after = schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate=0.1)
    else:  # polynomial
        end = learning_rate * final_fraction
        after = schedules.PolynomialDecay(learning_rate, decay_steps, end, power=1.0)
    if warmup_steps == 0:
        return after
    start = learning_rate * 0.01 if warmup_type == "exponential" else 0.0
    return Warmup(after, warmup_steps, initial_learning_rate=start, warmup_type=warmup_type)


# An h5 file stores the optimizer's schedule under its bare class name ("Warmup"), and the legacy
# loader looks that name up in the global custom objects, where `register_keras_serializable`
# put only "trainer>Warmup"; without this alias h5 reloads fail with "Unknown decay".
for _schedule_class in (Constant, Warmup, OneCycle):
    keras.utils.get_custom_objects().setdefault(_schedule_class.__name__, _schedule_class)
