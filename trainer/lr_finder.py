"""Learning-rate finder: an exponential sweep that shows where training is fast and stable.

`find_learning_rate(model, data)` trains a copy of the model's optimizer for a few hundred
steps while the learning rate grows exponentially from `min_learning_rate` to
`max_learning_rate`, records the smoothed loss, stops once the loss has blown up, puts the
model's weights back, and suggests a rate: one tenth of the rate where the smoothed loss was
lowest (Smith 2017; fastai's "minimum/10"), which sits on the steep, stable part of the curve.
The user's model, optimizer and weights are left as they were. `trainer lr-find RECIPE` runs it
on a recipe's model and data. It takes tf_keras and Keras 3 (TensorFlow backend) models alike
(`trainer.keras_compat`). This module must not train for real or choose the schedule.

Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from trainer import keras
    >>> from trainer.lr_finder import find_learning_rate
    >>> keras.utils.set_random_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> train_dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    >>> result = find_learning_rate(model, train_dataset, steps=60)  # weights left unchanged
    >>> result.plot("lr_find.png").name
    'lr_find.png'
    >>> 1e-7 < result.suggestion < 10.0  # inside the swept range
    True
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import keras_compat
from trainer.keras_path import is_keras3_object


@dataclass
class LearningRateFinderResult:
    """The sweep: rates tried, raw and smoothed losses, and the suggested rate."""

    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    suggestion: float
    minimum_loss_rate: float
    steepest_rate: float
    stopped_early: bool = False
    notes: list[str] = field(default_factory=list)

    def plot(self, path: str | Path) -> Path:
        """Writes the loss-vs-rate curve (log x axis) with the suggestion marked, as a PNG."""
        from trainer.plots import pyplot, save_figure

        figure, axis = pyplot().subplots(figsize=(6, 4))
        axis.plot(self.learning_rates, self.losses, color="lightgray", lw=1, label="loss")
        axis.plot(self.learning_rates, self.smoothed_losses, lw=2, label="smoothed loss")
        axis.axvline(
            self.suggestion, color="green", ls="--", label=f"suggested {self.suggestion:.1e}"
        )
        axis.axvline(
            self.minimum_loss_rate,
            color="red",
            ls=":",
            label=f"minimum loss {self.minimum_loss_rate:.1e}",
        )
        axis.set_xscale("log")
        finite = [value for value in self.smoothed_losses if math.isfinite(value)]
        if finite:  # keep the blown-up tail from squashing the useful part of the curve
            axis.set_ylim(min(finite) * 0.9, min(max(finite), finite[0] * 2.0) * 1.05)
        axis.set_xlabel("learning rate")
        axis.set_ylabel("training loss")
        axis.set_title("learning-rate finder")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8)
        return save_figure(figure, path)


def _sweep_optimizer(model, optimizer):
    source = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    if source is None:
        return keras_compat.keras_of(model).optimizers.Adam(1e-3)
    config = source.get_config()
    config["learning_rate"] = 1e-3  # replaced by a plain variable: the sweep sets it each step
    return type(source).from_config(config)


def find_learning_rate(
    model: keras.Model,
    data,
    steps: int = 200,
    min_learning_rate: float = 1e-7,
    max_learning_rate: float = 10.0,
    optimizer: keras.optimizers.Optimizer | None = None,
    diverge_factor: float = 4.0,
) -> LearningRateFinderResult:
    """Sweeps the learning rate exponentially over `steps` batches and suggests one.

    Args:
        model: a compiled tf_keras or Keras 3 model (its compiled loss, with regularization,
            is used); Keras 3 needs its TensorFlow backend.
        data: a `tf.data.Dataset` of (inputs, targets) batches; repeated if too short.
        steps: batches in the sweep; a few hundred is enough.
        min_learning_rate: first rate tried.
        max_learning_rate: last rate tried.
        optimizer: optimizer to sweep; default a fresh copy of the model's (same settings).
        diverge_factor: stop once the smoothed loss exceeds this many times its minimum.

    Raises:
        ValueError: model not compiled, bad range or step count.
        RuntimeError: a Keras 3 model on the JAX or PyTorch backend.
    """
    _check_arguments(model, data, steps, min_learning_rate, max_learning_rate)
    saved_weights = model.get_weights()
    train_step = _train_step(model, _sweep_optimizer(model, optimizer))
    try:
        rates, losses, smoothed, stopped_early = _sweep(
            train_step, data, steps, (min_learning_rate, max_learning_rate), diverge_factor
        )
    finally:
        model.set_weights(saved_weights)
    return _summarize(rates, losses, smoothed, stopped_early)


def _check_arguments(model, data, steps, min_learning_rate, max_learning_rate) -> None:
    keras_compat.require_tensorflow_backend("find_learning_rate", model)
    if not keras_compat.is_compiled(model):
        raise ValueError("find_learning_rate needs a compiled model (model.compile(...) first)")
    if not 0 < min_learning_rate < max_learning_rate:
        raise ValueError(
            "need 0 < min_learning_rate < max_learning_rate, received "
            f"{min_learning_rate!r} and {max_learning_rate!r}"
        )
    if not isinstance(steps, int) or steps < 10:
        raise ValueError(f"steps must be an int >= 10, received {steps!r}")
    if not isinstance(data, tf.data.Dataset):
        raise TypeError(
            f"data must be a tf.data.Dataset of batches, received {type(data).__name__}"
        )


def _train_step(model, sweep_optimizer):
    """One compiled training step at a given rate, returning the batch loss."""
    keras3 = is_keras3_object(model)
    if keras3:  # Keras 3 creates optimizer variables on first use: not inside the tf.function
        sweep_optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(inputs, targets, rate):
        sweep_optimizer.learning_rate.assign(rate)
        with tf.GradientTape() as tape:
            predictions = model(inputs, training=True)
            if keras3:  # the compiled loss plus the model's regularization losses
                loss = model.compute_loss(x=inputs, y=targets, y_pred=predictions)
            else:
                loss = model.compiled_loss(targets, predictions, regularization_losses=model.losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        sweep_optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    return train_step


def _sweep(train_step, data, steps, rate_range, diverge_factor):
    """Runs the exponential sweep; returns (rates, losses, smoothed losses, stopped early)."""
    min_learning_rate, max_learning_rate = rate_range
    ratio = max_learning_rate / min_learning_rate
    # Smooth over about 1/15 of the sweep: enough to see through batch noise, little enough
    # that the curve does not lag behind the rate (a lagging minimum inflates the suggestion).
    beta = max(0.0, 1.0 - 15.0 / steps)
    rates, losses, smoothed = [], [], []
    average, best = 0.0, math.inf
    batches = iter(data.repeat())
    for step in range(steps):
        rate = min_learning_rate * ratio ** (step / (steps - 1))
        inputs, targets = next(batches)[:2]
        loss = float(train_step(inputs, targets, tf.constant(rate, tf.float32)))
        rates.append(rate)
        losses.append(loss)
        if not math.isfinite(loss):
            smoothed.append(math.inf)
            return rates, losses, smoothed, True
        average = beta * average + (1.0 - beta) * loss
        value = average / (1.0 - beta ** (step + 1))  # bias correction for the first steps
        smoothed.append(value)
        best = min(best, value)
        if step > steps // 10 and value > diverge_factor * best:
            return rates, losses, smoothed, True
    return rates, losses, smoothed, False


def _summarize(rates, losses, smoothed, stopped_early) -> LearningRateFinderResult:
    values = np.array(smoothed, dtype=np.float64)
    finite = np.isfinite(values)
    lowest = int(np.nanargmin(np.where(finite, values, np.nan)))
    log_rates = np.log10(np.array(rates))
    # Steepest descent of the smoothed loss before its minimum (skipping the noisy start).
    start = min(len(rates) // 10, max(lowest - 1, 0))
    slopes = np.gradient(values[: lowest + 1], log_rates[: lowest + 1]) if lowest >= 2 else None
    steepest = start + int(np.argmin(slopes[start:])) if slopes is not None else lowest
    notes = []
    if not stopped_early:
        notes.append("the loss never blew up: raise max_learning_rate to see where training breaks")
    if lowest < len(rates) // 10:
        notes.append("the loss was lowest at the start of the sweep: lower min_learning_rate")
    return LearningRateFinderResult(
        learning_rates=[float(rate) for rate in rates],
        losses=[float(loss) for loss in losses],
        smoothed_losses=[float(value) for value in values],
        suggestion=float(rates[lowest]) / 10.0,
        minimum_loss_rate=float(rates[lowest]),
        steepest_rate=float(rates[steepest]),
        stopped_early=stopped_early,
        notes=notes,
    )
