"""Keras callbacks that work in any user's `model.fit`, not only in trainer's recipes.

Each callback does one thing through Keras's own `Callback` seam and has side effects only.
This module must not build models, datasets or run directories.
"""

import sys
import time

import tf_keras as keras


def current_learning_rate(model) -> float | None:
    """The optimizer's learning rate at its current step, whether constant or a schedule."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    rate = optimizer.learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    try:
        return float(keras.backend.get_value(rate))
    except (TypeError, ValueError):
        return None


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate in use at each epoch's end to the logs as `learning_rate`.

    Place it before `CSVLogger`/`TensorBoard` in the callback list so they record it.

    Example:

        model.fit(x, y, epochs=3, callbacks=[LearningRateLogger(), keras.callbacks.CSVLogger("h.csv")])
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = current_learning_rate(self.model)
            if rate is not None:
                logs["learning_rate"] = rate


class EpochLogger(keras.callbacks.Callback):
    """Prints one line per epoch: metrics, learning rate and time. For logs and pipes.

    Keras's progress bar redraws itself with carriage returns, which turns a log file into
    noise; use `verbose=0` in `fit` and this callback when output is not a terminal.

    Args:
        stream: where to write (default: standard output).

    Example:

        model.fit(x, y, epochs=3, verbose=0, callbacks=[EpochLogger()])
        # epoch 1/3  loss=0.5012 accuracy=0.8210 val_loss=0.4100 val_accuracy=0.8500  lr=1.0e-03  4.2s
    """

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        rate = logs.pop("learning_rate", None) or current_learning_rate(self.model)
        values = " ".join(f"{key}={value:.4f}" for key, value in logs.items() if _is_number(value))
        total = self.params.get("epochs", "?") if self.params else "?"
        rate_text = f"  lr={rate:.1e}" if rate is not None else ""
        seconds = time.perf_counter() - self._epoch_start
        print(
            f"epoch {epoch + 1}/{total}  {values}{rate_text}  {seconds:.1f}s",
            file=self.stream or sys.stdout,
            flush=True,
        )


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
