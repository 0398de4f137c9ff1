"""Keras callbacks that work in any user's `model.fit`, not only in trainer's recipes.

Each callback does one thing through Keras's own `Callback` seam and has side effects only.
They are tf_keras `Callback`s and also work in a Keras 3 `model.fit`, which calls any object
with the callback hooks: what differs between the two Kerases (reading a learning rate,
schedules) goes through `trainer.keras_compat`, detected from the model the callback is given.
`ExponentialMovingAverage` and `LearningRateWarmup` change weights or the optimizer between
steps with TensorFlow ops, so under Keras 3's JAX or PyTorch backends they refuse at
construction, naming the backend. This module must not build models, datasets or run
directories.
"""

import sys
import time

import numpy as np
import tf_keras as keras

from trainer import keras_compat
from trainer.config import check_number


def current_learning_rate(model) -> float | None:
    """The optimizer's learning rate at its current step, whether constant or a schedule.

    Works for tf_keras and Keras 3 models (on Keras 3 `optimizer.learning_rate` is already
    the current value; under JAX the model's state is synced first, as Keras 3 callbacks do).
    """
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return None
    rate = optimizer.learning_rate
    if keras_compat.is_schedule(rate):
        rate = rate(optimizer.iterations)
    try:
        return keras_compat.to_float(rate)
    except (TypeError, ValueError):
        return None


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the learning rate in use at each epoch's end to the logs as `learning_rate`.

    Place it before `CSVLogger`/`TensorBoard` in the callback list so they record it.

    Example:

        >>> import numpy as np
        >>> from trainer import keras
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(keras.optimizers.Adam(1e-3), "mse")
        >>> from trainer.callbacks import LearningRateLogger
        >>> logger, csv = LearningRateLogger(), keras.callbacks.CSVLogger("history.csv")
        >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[logger, csv])
        >>> [round(rate, 6) for rate in history.history["learning_rate"]]
        [0.001, 0.001]
        >>> open("history.csv").readline().split(",")[:3]  # CSVLogger wrote the rate too
        ['epoch', 'learning_rate', 'loss']
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

        >>> import numpy as np
        >>> from trainer import keras
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(keras.optimizers.Adam(1e-3), "mse")
        >>> from trainer.callbacks import EpochLogger
        >>> history = model.fit(x, y, epochs=2, verbose=0, callbacks=[EpochLogger()])
        epoch 1/2  loss=...  lr=1.0e-03  ...s
        epoch 2/2  loss=...  lr=1.0e-03  ...s
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


class FitDiagnosis(keras.callbacks.Callback):
    """Watches train and validation curves and reports what goes wrong, with remedies.

    After each epoch it runs `trainer.diagnosis.diagnose` on the history so far and prints
    any new verdict (overfitting, underfitting, divergence, learning rate too high or too low)
    with concrete remedies; after training it prints the final verdict. A NaN or infinite
    batch loss (checked every `check_every` batches) is reported at once and, with `stop_on_divergence`, stops training. The
    findings stay on the callback (`findings`) for reports.

    Args:
        thresholds: `trainer.diagnosis.Thresholds`, the numbers behind each verdict.
        stop_on_divergence: stop training when the loss is NaN/inf or explodes.
        check_every: batches between NaN/inf checks of the batch loss (each check waits for
            the step to finish); epoch ends are always checked.
        verbose: 0 silent, 1 print verdicts.
        stream: where to print (default: standard output).

    Example:

        >>> import numpy as np
        >>> from trainer import keras
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(keras.optimizers.Adam(1e-2),
        ...               keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        >>> from trainer.callbacks import FitDiagnosis
        >>> diagnosis = FitDiagnosis(verbose=0)
        >>> history = model.fit(x, y, validation_split=0.25, epochs=10, verbose=0,
        ...                     callbacks=[diagnosis])
        >>> [finding.kind for finding in diagnosis.findings]
        ['good_fit']
    """

    def __init__(
        self,
        thresholds=None,
        stop_on_divergence: bool = True,
        verbose: int = 1,
        stream=None,
        check_every: int = 25,
    ):
        super().__init__()
        check_every = check_number("check_every", check_every, minimum=1, integer=True)
        # Batch logs stay tensors: reading the loss forces a host sync, which stalls the
        # input pipeline and op dispatch, so it is read only every `check_every` batches.
        self._supports_tf_logs = True
        self.check_every = check_every
        self.thresholds = thresholds
        self.stop_on_divergence = stop_on_divergence
        self.verbose = verbose
        self.stream = stream
        self.history: dict[str, list[float]] = {}
        self.findings: list = []
        self._reported: set[str] = set()

    def on_train_begin(self, logs=None):
        self.history, self.findings, self._reported = {}, [], set()

    def on_train_batch_end(self, batch, logs=None):
        if batch % self.check_every:
            return
        loss = (logs or {}).get("loss")
        if loss is None or np.isfinite(float(loss)):
            return
        from trainer.diagnosis import REMEDIES, Finding

        epoch = len(self.history.get("loss", [])) + 1
        finding = Finding(
            "divergence",
            f"batch {batch} loss is {float(loss)}.",
            epoch,
            list(REMEDIES["divergence"]),
        )
        self.findings = [finding]
        self._report(finding)
        if self.stop_on_divergence:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            if _is_number(value):
                self.history.setdefault(key, []).append(float(value))
        from trainer.diagnosis import diagnose

        self.findings = diagnose(self.history, self.thresholds)
        for finding in self.findings:
            if finding.kind != "good_fit":
                self._report(finding)
                if finding.kind == "divergence" and self.stop_on_divergence:
                    self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.verbose and self.findings:
            kinds = ", ".join(finding.kind for finding in self.findings)
            self._print(f"fit diagnosis: {kinds}")
            for finding in self.findings:
                self._print(f"  {finding}")

    def _report(self, finding) -> None:
        if finding.kind not in self._reported:
            self._reported.add(finding.kind)
            self._print(f"fit diagnosis: {finding}")

    def _print(self, text: str) -> None:
        if self.verbose:
            print(text, file=self.stream or sys.stdout, flush=True)


class ExponentialMovingAverage(keras.callbacks.Callback):
    """Keeps an exponential moving average of the weights; validates and ends with it.

    After each batch the average moves toward the current weights by `1 - decay` (with a
    smaller effective decay in the first steps, as in `tf.train.ExponentialMovingAverage`,
    so early noise fades quickly). From `fit`'s validation until the next epoch begins the
    model holds the averaged weights, so `val_*` metrics score them and checkpoint callbacks
    save them at epoch end; when training ends they stay in the model, so a following
    `evaluate` or `save` uses them. Batch-norm statistics are left as they are.

    Args:
        decay: weight of the old average per step, in [0, 1); 0.999 suits a few thousand steps.

    Example:

        >>> import numpy as np
        >>> from trainer import keras
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(keras.optimizers.Adam(1e-2), "mse")
        >>> from trainer.callbacks import ExponentialMovingAverage
        >>> average = ExponentialMovingAverage(0.9)
        >>> history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[average])
        >>> model.save("averaged.keras")  # the model now holds the averaged weights
    """

    def __init__(self, decay: float = 0.999):
        super().__init__()
        keras_compat.require_tensorflow_backend("ExponentialMovingAverage")
        self.decay = check_number("decay", decay, minimum=0, maximum=1, exclusive_maximum=True)
        self._average = []
        self._updates = None
        self._in_fit = False
        self._holds_average = False  # the model holds the average, `_average` the raw weights

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        keras_compat.require_tensorflow_backend("ExponentialMovingAverage", self.model)
        self._in_fit, self._holds_average = True, False
        weights = self.model.trainable_weights
        self._average = [tf.Variable(weight, trainable=False) for weight in weights]
        self._updates = tf.Variable(0.0, trainable=False)
        decay = tf.constant(self.decay, tf.float32)

        @tf.function
        def update():
            self._updates.assign_add(1.0)
            rate = tf.minimum(decay, (1.0 + self._updates) / (10.0 + self._updates))
            for average, weight in zip(self._average, weights, strict=True):
                average.assign(rate * average + (1.0 - rate) * tf.cast(weight, average.dtype))

        self._update = update

    def on_train_batch_end(self, batch, logs=None):
        self._update()

    def _swap(self):
        for average, weight in zip(self._average, self.model.trainable_weights, strict=True):
            current = weight.numpy()
            weight.assign(average)
            average.assign(current)

    def on_test_begin(self, logs=None):
        if self._in_fit and not self._holds_average:
            self._swap()
            self._holds_average = True

    def on_epoch_begin(self, epoch, logs=None):
        # Training goes on from the raw weights, not from the average.
        if self._holds_average:
            self._swap()
            self._holds_average = False

    def on_train_end(self, logs=None):
        self._in_fit = False
        if not self._holds_average:
            for average, weight in zip(self._average, self.model.trainable_weights, strict=True):
                weight.assign(average)
        self._holds_average = False

    def get_config(self):
        return {"decay": self.decay}


class TimeBudget(keras.callbacks.Callback):
    """Stops training before it runs over a wall-clock budget.

    At each epoch's end it stops if another epoch of the average length so far would not fit
    in the time left; within an epoch it stops after the batch that crosses the budget.
    `stopped_epoch` records where it stopped (None if it did not).

    Args:
        seconds: the budget for the whole `fit`, in seconds.
        verbose: 1 prints a line when it stops.

    Example:

        >>> import numpy as np
        >>> from trainer import keras
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(keras.optimizers.Adam(1e-3), "mse")
        >>> from trainer.callbacks import TimeBudget
        >>> history = model.fit(x, y, epochs=3, verbose=0, callbacks=[TimeBudget(seconds=600)])
        >>> len(history.epoch)  # well inside 10 minutes: every epoch ran
        3
    """

    def __init__(self, seconds: float, verbose: int = 1):
        super().__init__()
        self.seconds = check_number("seconds", seconds, minimum=0, exclusive_minimum=True)
        self.verbose = verbose
        self.stopped_epoch = None
        self._start = 0.0
        self._epochs_done = 0

    def on_train_begin(self, logs=None):
        self._start, self._epochs_done, self.stopped_epoch = time.perf_counter(), 0, None

    def _stop(self, epoch: int, reason: str) -> None:
        self.model.stop_training = True
        if self.stopped_epoch is None:
            self.stopped_epoch = epoch
            if self.verbose:
                print(f"time budget: stopping at epoch {epoch + 1}, {reason}", flush=True)

    def on_train_batch_end(self, batch, logs=None):
        elapsed = time.perf_counter() - self._start
        if elapsed > self.seconds:
            self._stop(self._epochs_done, f"{elapsed:.0f}s used of {self.seconds:.0f}s")

    def on_epoch_end(self, epoch, logs=None):
        self._epochs_done += 1
        elapsed = time.perf_counter() - self._start
        per_epoch = elapsed / self._epochs_done
        if elapsed + per_epoch > self.seconds:
            self._stop(epoch, f"another epoch (~{per_epoch:.0f}s) would pass {self.seconds:.0f}s")

    def get_config(self):
        return {"seconds": self.seconds, "verbose": self.verbose}


class LearningRateWarmup(keras.callbacks.Callback):
    """Ramps up any optimizer's learning rate over the first `warmup_steps` steps.

    Works with the user's own optimizer and learning rate: a constant rate is scaled from
    `initial_factor` x rate up to the rate; a `LearningRateSchedule` is wrapped in
    `trainer.schedules.Warmup(delay_decay=False)`, so the schedule keeps its own step count and
    only its first values are scaled. The step is the optimizer's `iterations`, so a resumed
    run continues the ramp where it was. The original schedule is put back when training ends.

    Args:
        warmup_steps: optimizer steps the ramp lasts.
        initial_factor: fraction of the rate used at step 0, in [0, 1).

    Example:

        >>> import numpy as np
        >>> from trainer import keras
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> model.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
        >>> from trainer.callbacks import LearningRateLogger, LearningRateWarmup
        >>> callbacks = [LearningRateLogger(), LearningRateWarmup(warmup_steps=8)]
        >>> history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
        >>> [round(rate, 4) for rate in history.history["learning_rate"]]  # 4 steps an epoch
        [0.0375, 0.0875, 0.1]
    """

    def __init__(self, warmup_steps: int, initial_factor: float = 0.0):
        super().__init__()
        warmup_steps = check_number("warmup_steps", warmup_steps, minimum=1, integer=True)
        initial_factor = check_number(
            "initial_factor", initial_factor, minimum=0, maximum=1, exclusive_maximum=True
        )
        keras_compat.require_tensorflow_backend("LearningRateWarmup")
        self.warmup_steps = warmup_steps
        self.initial_factor = initial_factor
        self._base_rate = None
        self._original_schedule = None

    def on_train_begin(self, logs=None):
        from trainer.schedules import Warmup

        keras_compat.require_tensorflow_backend("LearningRateWarmup", self.model)
        optimizer = self.model.optimizer
        schedule = getattr(optimizer, "_learning_rate", None)
        if keras_compat.is_schedule(schedule):
            self._original_schedule = schedule
            start = float(schedule(0)) * self.initial_factor
            optimizer.learning_rate = Warmup(schedule, self.warmup_steps, start, delay_decay=False)
            # fit traced its train step before this hook; trace again so the wrapper is used
            # (tf_keras returns the new function, Keras 3 only sets it: both set it).
            self.model.make_train_function(force=True)
        else:
            self._base_rate = keras_compat.to_float(optimizer.learning_rate)

    def on_train_batch_begin(self, batch, logs=None):
        if self._base_rate is None:
            return
        step = int(self.model.optimizer.iterations.numpy())
        if step <= self.warmup_steps:
            fraction = min(step / self.warmup_steps, 1.0)
            factor = self.initial_factor + (1.0 - self.initial_factor) * fraction
            self.model.optimizer.learning_rate.assign(self._base_rate * factor)

    def on_train_end(self, logs=None):
        if self._original_schedule is not None:
            self.model.optimizer.learning_rate = self._original_schedule
            self._original_schedule = None
        elif self._base_rate is not None:
            self.model.optimizer.learning_rate.assign(self._base_rate)
        self._base_rate = None

    def get_config(self):
        return {"warmup_steps": self.warmup_steps, "initial_factor": self.initial_factor}
