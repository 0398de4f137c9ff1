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
    if not is_schedule and (not isinstance(learning_rate, int | float) or learning_rate <= 0):
        raise ValueError(
            f"learning_rate must be a number > 0 or a LearningRateSchedule, "
            f"received {learning_rate!r}"
        )
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, received {weight_decay!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), received {momentum!r}")
    for clip_name, clip in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
        if clip is not None and clip <= 0:
            raise ValueError(f"{clip_name} must be > 0 or None, received {clip!r}")
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

    if not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be an int >= 1, received {steps_per_epoch!r}")
    if epochs <= 0 or warmup_epochs < 0:
        raise ValueError(
            f"epochs must be > 0 and warmup_epochs >= 0, received {epochs!r} and {warmup_epochs!r}"
        )
    total_steps = max(1, int(round(epochs * steps_per_epoch)))
    warmup_steps = min(int(warmup_epochs * steps_per_epoch), total_steps - 1)
    if schedule == "one_cycle":
        warmup_steps = 0
    rate = build_schedule(schedule, learning_rate, total_steps, warmup_steps)
    return build_optimizer(name, rate, weight_decay=weight_decay, clipnorm=clipnorm or None)
