"""Optimizers chosen by name from a recipe's config, and the one scheduled optimizer every
recipe and `trainer compress` use (warmup into a decay schedule).

Each builder maps a config string to a tf_keras object through an explicit `if` chain, checks
every number and says what it received when something is off. Losses live in `trainer.losses`,
regularizers in `trainer.regularizers`. This module must not train or build datasets.

Example:

    >>> from trainer.optimizers import build_optimizer, scheduled_optimizer
    >>> optimizer = build_optimizer("adamw", 1e-3, weight_decay=5e-4, clipnorm=1.0)
    >>> type(optimizer).__name__, optimizer.clipnorm
    ('AdamW', 1.0)
    >>> optimizer = scheduled_optimizer("adamw", 3e-3, steps_per_epoch=469, epochs=12)
    >>> optimizer.get_config()["learning_rate"]["class_name"]  # linear warmup, then cosine
    'Warmup'
"""

import tf_keras as keras

from trainer.config import check_number

OPTIMIZER_NAMES = ("sgd", "adam", "adamw", "rmsprop")


def build_optimizer(
    name: str,
    learning_rate,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
) -> keras.optimizers.Optimizer:
    """An optimizer by name: sgd, adam, adamw, rmsprop.

    Args:
        name: one of `OPTIMIZER_NAMES`.
        learning_rate: a float or a `LearningRateSchedule` (see `trainer.schedules`).
        weight_decay: decoupled weight decay (sgd, adamw, rmsprop); Adam with weight decay is
            AdamW, so "adam" refuses it.
        momentum: SGD momentum (ignored by the adaptive optimizers).
        nesterov: Nesterov momentum, SGD only.
        clipnorm: clip each gradient to this L2 norm; None disables.
        clipvalue: clip each gradient element to [-clipvalue, clipvalue]; None disables.

    Raises:
        ValueError: unknown name or an out-of-range number, quoting the value received.

    Example:

        >>> from trainer.optimizers import build_optimizer
        >>> optimizer = build_optimizer("sgd", 0.1, momentum=0.9, nesterov=True, clipnorm=1.0)
        >>> optimizer.get_config()["nesterov"], round(float(optimizer.learning_rate), 6)
        (True, 0.1)
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZER_NAMES)}")
    is_schedule = isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    if not is_schedule:
        try:
            learning_rate = check_number(
                "learning_rate", learning_rate, minimum=0, exclusive_minimum=True
            )
        except ValueError as error:
            raise ValueError(f"{error} (or pass a LearningRateSchedule)") from None
    weight_decay = check_number("weight_decay", weight_decay, minimum=0)
    momentum = check_number("momentum", momentum, minimum=0, maximum=1, exclusive_maximum=True)
    if clipnorm is not None:
        clipnorm = check_number("clipnorm", clipnorm, minimum=0, exclusive_minimum=True)
    if clipvalue is not None:
        clipvalue = check_number("clipvalue", clipvalue, minimum=0, exclusive_minimum=True)
    if nesterov and name != "sgd":
        raise ValueError(f"nesterov applies to sgd only, received optimizer {name!r}")
    if name == "adam" and weight_decay:
        raise ValueError(
            f"Adam with weight_decay={weight_decay} is AdamW: use optimizer 'adamw' "
            "(or an L2 kernel regularizer with 'adam')"
        )
    clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue}
    decay = {"weight_decay": weight_decay or None}
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate, momentum=momentum, nesterov=nesterov, **decay, **clipping
        )
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, **clipping)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay, **clipping)
    return keras.optimizers.RMSprop(learning_rate, **decay, **clipping)


def scheduled_optimizer(
    name: str,
    learning_rate: float,
    *,
    steps_per_epoch: int,
    epochs: float,
    warmup_epochs: float = 1.0,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    clipnorm: float = 0.0,
) -> keras.optimizers.Optimizer:
    """An optimizer whose learning rate warms up linearly to `learning_rate`, then follows
    `schedule` (see `trainer.schedules.build_schedule`) to the end of the run.

    Warmup is capped below the run length; "one_cycle" has its own rising phase and no warmup.
    `clipnorm=0` disables clipping.

    Example:

        >>> from trainer.optimizers import scheduled_optimizer
        >>> optimizer = scheduled_optimizer("sgd", 0.1, steps_per_epoch=390, epochs=30,
        ...                                 warmup_epochs=2, weight_decay=5e-4)
        >>> schedule = optimizer.get_config()["learning_rate"]
        >>> schedule["class_name"], schedule["config"]["warmup_steps"]  # 2 epochs of 390 steps
        ('Warmup', 780)
        >>> decay = schedule["config"]["after_warmup"]  # over the 28 epochs left
        >>> decay["class_name"], decay["config"]["decay_steps"]
        ('CosineDecay', 10920)
    """
    from trainer.schedules import build_schedule

    steps_per_epoch = check_number("steps_per_epoch", steps_per_epoch, minimum=1, integer=True)
    epochs = check_number("epochs", epochs, minimum=0, exclusive_minimum=True)
    warmup_epochs = check_number("warmup_epochs", warmup_epochs, minimum=0)
    clipnorm = check_number("clipnorm", clipnorm, minimum=0)
    total_steps = max(1, int(round(epochs * steps_per_epoch)))
    warmup_steps = min(int(warmup_epochs * steps_per_epoch), total_steps - 1)
    if schedule == "one_cycle":
        warmup_steps = 0
    rate = build_schedule(schedule, learning_rate, total_steps, warmup_steps)
    return build_optimizer(name, rate, weight_decay=weight_decay, clipnorm=clipnorm or None)
