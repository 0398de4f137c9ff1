"""Learning-rate schedules that tf_keras lacks, and `build_schedule` to pick one by name.

tf_keras already has `CosineDecay` (with a linear warmup), `CosineDecayRestarts`,
`ExponentialDecay`, `PiecewiseConstantDecay` and `PolynomialDecay`; this module reuses them and
adds only `Warmup` (linear or exponential, around *any* schedule or a constant), `OneCycle` and
`Constant`. Every class here is registered with `register_keras_serializable(package="trainer")`,
so a model compiled with it saves and reloads (`.keras`, SavedModel, h5) without
`custom_objects`, as long as `trainer.schedules` was imported. This module must not train.

The same classes serve Keras 3 (`import keras`): when the process has imported Keras 3, a
schedule is built as a subclass that is also a Keras 3 `LearningRateSchedule` (made once per
class, registered with Keras 3's serialization too), and its arithmetic goes through
`trainer.keras_compat.math_ops`: TensorFlow ops, or `keras.ops` under a JAX or PyTorch
backend. `build_schedule` builds tf_keras's own schedules (the recipes' path).

Example:

    >>> from trainer import keras
    >>> from trainer.schedules import Warmup
    >>> schedule = Warmup(keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=900),
    ...                   warmup_steps=100)
    >>> optimizer = keras.optimizers.Adam(schedule)
    >>> [round(float(schedule(step)), 6) for step in (0, 50, 100)]
    [0.0, 0.0005, 0.001]
"""

import math
import numbers

import tf_keras as keras

from trainer import keras_compat
from trainer.config import check_number

schedules = keras.optimizers.schedules
LearningRateSchedule = schedules.LearningRateSchedule

WARMUP_TYPES = ("linear", "exponential")


def _rate_at(rate, step, ops):
    """The value of a schedule or a constant at `step`, as float32."""
    if keras_compat.is_schedule(rate):
        return ops.cast(rate(step), "float32")
    return ops.convert_to_tensor(rate, "float32")


class _Schedule(LearningRateSchedule):
    """Base of our schedules: a tf_keras schedule, and also a Keras 3 one once Keras 3 is loaded."""

    _keras3 = False  # True on the subclasses made by `_keras3_class`

    def __new__(cls, *args, **kwargs):
        keras3 = keras_compat.loaded_keras3()
        if keras3 is not None and not cls._keras3:
            cls = _keras3_class(cls, keras3)
        return super().__new__(cls)

    @classmethod
    def _deserialize(cls, config: dict):
        # Keras 3's loader finds the Keras 3 subclass (registered with Keras 3), tf_keras's the
        # base class, so `cls` says which Keras wrote the nested schedule's config.
        keras_module = keras_compat.loaded_keras3() if cls._keras3 else keras
        return keras_module.optimizers.schedules.deserialize(config)


_KERAS3_CLASSES: dict[type, type] = {}


def _keras3_class(cls: type, keras3) -> type:
    """`cls` with Keras 3's `LearningRateSchedule` as a second base, registered with Keras 3.

    Both bases are plain classes with `__call__`, `get_config` and `from_config`, so the
    subclass is the same schedule to either Keras: one implementation, two isinstance checks.
    """
    if cls not in _KERAS3_CLASSES:
        attributes = {
            "_keras3": True,
            "__module__": cls.__module__,
            "__doc__": cls.__doc__,
            "__qualname__": cls.__qualname__,
        }
        both = type(
            cls.__name__, (cls, keras3.optimizers.schedules.LearningRateSchedule), attributes
        )
        keras3.saving.register_keras_serializable(package="trainer", name=cls.__name__)(both)
        _KERAS3_CLASSES[cls] = both
    return _KERAS3_CLASSES[cls]


def _rate(name: str, value, allow_zero: bool = False) -> float:
    """A learning rate or factor as a Python float: finite, > 0 (or >= 0), NumPy scalars too."""
    return check_number(name, value, minimum=0, exclusive_minimum=not allow_zero)


def _steps(name: str, value, minimum: int) -> int:
    """A step count as a Python int (NumPy integers too)."""
    return check_number(name, value, minimum=minimum, integer=True)


@keras.saving.register_keras_serializable(package="trainer")
class Constant(_Schedule):
    """A learning rate that never changes, as a schedule (so it can be wrapped or swapped).

    Args:
        learning_rate: the rate at every step.

    Example:

        >>> from trainer.schedules import Constant
        >>> round(float(Constant(0.01)(500)), 6)  # a float32 tensor
        0.01
    """

    def __init__(self, learning_rate: float, name: str | None = None):
        super().__init__()
        self.learning_rate = _rate("learning_rate", learning_rate, allow_zero=True)
        self.name = name

    def __call__(self, step):
        return keras_compat.math_ops(step).convert_to_tensor(self.learning_rate, "float32")

    def get_config(self):
        return {"learning_rate": self.learning_rate, "name": self.name}


@keras.saving.register_keras_serializable(package="trainer")
class Warmup(_Schedule):
    """Ramps the learning rate up over `warmup_steps`, then hands over to another schedule.

    The ramp goes from `initial_learning_rate` to the wrapped schedule's rate, linearly or
    exponentially (geometric steps, which need `initial_learning_rate > 0`). With
    `delay_decay=True` (default, like `CosineDecay(warmup_steps=...)`) the wrapped schedule
    starts counting its steps when warmup ends; with `False` it runs from step 0 and the
    warmup only scales its early values, which suits a schedule already sized for the whole run.

    Args:
        after_warmup: any `LearningRateSchedule` (tf_keras or Keras 3), or a float for a
            constant rate.
        warmup_steps: number of optimizer steps the ramp lasts (0 disables warmup).
        initial_learning_rate: rate at step 0.
        warmup_type: "linear" or "exponential".
        delay_decay: whether `after_warmup` starts at the end of warmup (True) or at step 0.

    Example:

        >>> from trainer import keras
        >>> from trainer.schedules import Warmup
        >>> cosine = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=1000)
        >>> schedule = Warmup(cosine, warmup_steps=100)
        >>> round(float(schedule(50)), 6)  # halfway up the ramp
        0.0005
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
        is_number = isinstance(after_warmup, numbers.Real) or getattr(after_warmup, "ndim", 1) == 0
        if not (keras_compat.is_schedule(after_warmup) or is_number):
            raise TypeError(
                "after_warmup must be a LearningRateSchedule (tf_keras or Keras 3) or a float, "
                "received "
                f"{type(after_warmup).__module__}.{type(after_warmup).__qualname__}"
            )
        if not keras_compat.is_schedule(after_warmup):
            after_warmup = _rate("after_warmup", after_warmup, allow_zero=True)
        warmup_steps = _steps("warmup_steps", warmup_steps, 0)
        if warmup_type not in WARMUP_TYPES:
            raise ValueError(f"warmup_type must be one of {WARMUP_TYPES}, received {warmup_type!r}")
        initial_learning_rate = _rate("initial_learning_rate", initial_learning_rate, True)
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
        ops = keras_compat.math_ops(step)
        step = ops.cast(step, "float32")
        warmup_steps = float(self.warmup_steps)
        decay_step = ops.maximum(step - warmup_steps, 0.0) if self.delay_decay else step
        target = _rate_at(self.after_warmup, decay_step, ops)
        if self.warmup_steps == 0:
            return target
        fraction = ops.minimum(step / warmup_steps, 1.0)
        start = float(self.initial_learning_rate)
        if self.warmup_type == "linear":
            ramp = start + (target - start) * fraction
        else:
            ramp = start * ops.power(target / start, fraction)
        return ops.where(step < warmup_steps, ramp, target)

    def get_config(self):
        after = self.after_warmup
        if keras_compat.is_schedule(after):
            after = keras_compat.keras_of(after).optimizers.schedules.serialize(after)
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
            config["after_warmup"] = cls._deserialize(config["after_warmup"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="trainer")
class OneCycle(_Schedule):
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

        >>> from trainer.schedules import OneCycle
        >>> schedule = OneCycle(0.1, total_steps=1000)
        >>> [round(float(schedule(step)), 4) for step in (0, 300, 1000)]  # peak at pct_start
        [0.004, 0.1, 0.0]
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
        self.max_learning_rate = _rate("max_learning_rate", max_learning_rate)
        self.total_steps = _steps("total_steps", total_steps, 2)
        self.pct_start = check_number(
            "pct_start",
            pct_start,
            minimum=0,
            maximum=1,
            exclusive_minimum=True,
            exclusive_maximum=True,
        )
        self.div_factor = _rate("div_factor", div_factor)
        self.final_div_factor = _rate("final_div_factor", final_div_factor)
        self.name = name

    def __call__(self, step):
        ops = keras_compat.math_ops(step)
        step = ops.minimum(ops.cast(step, "float32"), float(self.total_steps))
        peak = float(self.max_learning_rate)
        start = peak / self.div_factor
        final = start / self.final_div_factor
        rise_steps = float(self.pct_start * self.total_steps)
        fall_steps = float(self.total_steps) - rise_steps

        def cosine(from_rate, to_rate, fraction):
            return to_rate + (from_rate - to_rate) * 0.5 * (1.0 + ops.cos(math.pi * fraction))

        rising = cosine(start, peak, step / rise_steps)
        falling = cosine(peak, final, (step - rise_steps) / fall_steps)
        return ops.where(step <= rise_steps, rising, falling)

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "name": self.name,
        }


def _step_decay(learning_rate: float, decay_steps: int, final_fraction: float):
    boundaries = [max(decay_steps // 2, 1), max(decay_steps * 3 // 4, 2)]
    values = [learning_rate, learning_rate * 0.1, learning_rate * 0.01]
    return schedules.PiecewiseConstantDecay(boundaries, values)


# Every name `build_schedule` accepts, with the factory of the schedule after warmup, built from
# (learning_rate, decay_steps, final_fraction). one_cycle takes no warmup, so its decay steps
# are the whole run.
SCHEDULES = {
    "constant": lambda rate, steps, final: Constant(rate),
    "cosine": lambda rate, steps, final: schedules.CosineDecay(rate, steps, alpha=final),
    "cosine_restarts": lambda rate, steps, final: schedules.CosineDecayRestarts(
        rate, max(steps // 4, 1), t_mul=2.0, alpha=final
    ),
    "step": _step_decay,
    "exponential": lambda rate, steps, final: schedules.ExponentialDecay(
        rate, steps, decay_rate=0.1
    ),
    "polynomial": lambda rate, steps, final: schedules.PolynomialDecay(
        rate, steps, rate * final, power=1.0
    ),
    "one_cycle": lambda rate, steps, final: OneCycle(rate, total_steps=max(steps, 2)),
}
SCHEDULE_NAMES = tuple(SCHEDULES)


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

        >>> from trainer.schedules import build_schedule
        >>> schedule = build_schedule("cosine", 1e-3, total_steps=1000, warmup_steps=100)
        >>> round(float(schedule(100)), 6)
        0.001
    """
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    learning_rate = _rate("learning_rate", learning_rate)
    total_steps = _steps("total_steps", total_steps, 1)
    warmup_steps = _steps("warmup_steps", warmup_steps, 0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"warmup_steps must be an int in [0, total_steps={total_steps}), "
            f"received {warmup_steps!r}"
        )
    final_fraction = check_number("final_fraction", final_fraction, minimum=0, maximum=1)
    if name == "one_cycle" and warmup_steps:
        raise ValueError(
            f"one_cycle has its own rising phase; use warmup_steps=0, received {warmup_steps}"
        )
    after = SCHEDULES[name](learning_rate, total_steps - warmup_steps, final_fraction)
    if warmup_steps == 0:
        return after
    start = learning_rate * 0.01 if warmup_type == "exponential" else 0.0
    return Warmup(after, warmup_steps, initial_learning_rate=start, warmup_type=warmup_type)


# An h5 file stores the optimizer's schedule under its bare class name ("Warmup"), and the legacy
# loader looks that name up in the global custom objects, where `register_keras_serializable`
# put only "trainer>Warmup"; without this alias h5 reloads fail with "Unknown decay".
for _schedule_class in (Constant, Warmup, OneCycle):
    keras.utils.get_custom_objects().setdefault(_schedule_class.__name__, _schedule_class)


def _register_with_keras3(keras3) -> None:
    for schedule_class in (Constant, Warmup, OneCycle):
        _keras3_class(schedule_class, keras3)


# Keras 3's loader needs the classes registered before it reads a file, even when no schedule
# was built yet in this process: now if Keras 3 is loaded, else when it is first imported.
keras_compat.when_keras3_imported(_register_with_keras3)
