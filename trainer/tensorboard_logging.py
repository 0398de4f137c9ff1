"""What TensorBoard shows of a run or a search beyond Keras's per-epoch scalars.

Keras's own `TensorBoard` callback (`runs.run_callbacks`) logs the epoch scalars into
`logs/train` and `logs/validation`, and the weight histograms every N epochs when
`trainer train --histograms=N` asks (`histograms_every`, `histogram_epochs`). What only the end
of a run knows is logged here, by `log_run` into the run's `logs/` folder itself: one session
of the HParams plugin (the resolved config as hparams, the final validation and test metrics
as scalars, so the HParams dashboard compares runs side by side), every PNG plot the run wrote
as an image, and the graph of the saved float32 model (the callback's graph would be the
mixed-precision training graph, so it is turned off). `log_trials` gives each trial of a
`trainer tune` search its own session under the tuning folder's `logs/`. This module writes
event files only; it must not train, and it reads nothing of a run but its config and plots.
"""

import contextlib
import math
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Set by `histograms_every` (`trainer train --histograms=N`): weight histograms every N epochs.
_histogram_epochs = 0


@contextlib.contextmanager
def histograms_every(epochs: int) -> Iterator[None]:
    """Within this block every run's TensorBoard logs hold weight histograms every `epochs`
    epochs (0 = none, the default: they make the log files several times larger).

    Example:

        >>> from trainer.tensorboard_logging import histogram_epochs, histograms_every
        >>> with histograms_every(5):
        ...     histogram_epochs()
        5
        >>> histogram_epochs()
        0
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise ValueError(f"histograms must be a number of epochs >= 0, received {epochs!r}")
    global _histogram_epochs
    previous, _histogram_epochs = _histogram_epochs, epochs
    try:
        yield
    finally:
        _histogram_epochs = previous


def histogram_epochs() -> int:
    """Every how many epochs runs log weight histograms (0 = never); see `histograms_every`."""
    return _histogram_epochs


def hparam_value(value: Any) -> bool | int | float | str:
    """A config value as the HParams plugin stores it: bool, int, float or str (others as text).

    Example:

        >>> from trainer.tensorboard_logging import hparam_value
        >>> [hparam_value(value) for value in (0.01, 3, True, "cnn", None, [1, 2])]
        [0.01, 3, True, 'cnn', 'None', '[1, 2]']
    """
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def run_metrics(metrics: dict) -> dict[str, float]:
    """The final metrics of a run's `metrics.json` that TensorBoard gets: the test and
    validation accuracy, and each exported file's test accuracy (`test_accuracy_<format>`).

    Example:

        >>> from trainer.tensorboard_logging import run_metrics
        >>> run_metrics({"test_accuracy": 0.9, "val_accuracy": 0.875, "epochs": 3,
        ...              "exports": [{"format": "int8", "accuracy": 0.89}]})
        {'test_accuracy': 0.9, 'val_accuracy': 0.875, 'test_accuracy_int8': 0.89}
    """
    found = {name: metrics.get(name) for name in ("test_accuracy", "val_accuracy")}
    for export in metrics.get("exports") or []:
        found[f"test_accuracy_{export.get('format')}"] = export.get("accuracy")
    return {
        name: float(value)
        for name, value in found.items()
        if isinstance(value, int | float) and math.isfinite(value)
    }


def log_run(
    log_dir: str | Path, config: dict, metrics: dict, images: Iterable[Path], model=None
) -> Path:
    """Logs a finished run into `log_dir`: hparams, final metrics, plots and the model's graph.

    Args:
        log_dir: the run's TensorBoard folder (`RUN/logs`), whose name TensorBoard shows.
        config: the resolved config (`config.yaml`), logged as the session's hparams.
        metrics: the run's `metrics.json` content; `run_metrics` picks the scalars, logged at
            the step of the last epoch.
        images: PNG files to log as images, each under its file name without `.png`.
        model: the saved (float32) Keras model whose graph and Keras config are logged; None
            logs no graph.

    Returns:
        `log_dir`.

    Example (not run: needs a finished run; `experiment.finish` does this):

        log_run(run_dir / "logs", config, metrics, sorted(run_dir.glob("*.png")), model)
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    log_dir = Path(log_dir)
    step = int(metrics.get("epochs") or 0)
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp.hparams({name: hparam_value(value) for name, value in config.items()})
        for name, value in run_metrics(metrics).items():
            tf.summary.scalar(name, value, step=step)
        for path in images:
            image = tf.io.decode_png(Path(path).read_bytes(), channels=4)
            tf.summary.image(Path(path).stem, image[None], step=step)
        if model is not None:
            _log_graph(model)
    writer.close()
    return log_dir


def _log_graph(model) -> None:
    """The model's inference graph (the Graphs dashboard's op graph) and its Keras config
    (the conceptual graph), in the default summary writer. A subclassed model that was never
    called on a Keras `Input` has neither an input signature nor a layer graph: nothing."""
    import tensorflow as tf
    from tf_keras.src.callbacks import keras_model_summary  # what Keras's TensorBoard calls

    if not getattr(model, "inputs", None):
        return
    specs = tf.nest.map_structure(
        lambda tensor: tf.TensorSpec(tensor.shape, tensor.dtype), model.input
    )
    inference = tf.function(lambda inputs: model(inputs, training=False))
    tf.summary.graph(inference.get_concrete_function(specs).graph)
    if getattr(model, "_is_graph_network", False) or type(model).__name__ == "Sequential":
        keras_model_summary("keras", model, step=0)


def log_trials(log_dir: str | Path, trials: Iterable, objective: str = "val_accuracy") -> Path:
    """Logs each trial of a search as an HParams session in `log_dir/trial_<id>`.

    The trial's searched values are its hparams; its `objective` (best validation accuracy)
    and epochs are its metrics, absent for a failed trial. `log_dir` is rewritten whole, so a
    resumed search logs every trial once.

    Args:
        log_dir: the tuning folder's TensorBoard folder (`TUNE_DIR/logs`).
        trials: `trainer.tuning.results.TrialRecord`s (`trial_id`, `values`, `objective`,
            `epochs`, `status`).
        objective: the metric name the objective is logged under.

    Example (not run: needs a search; `trainer.tuning.report.write_results` does this):

        log_trials(directory / "logs", trials)
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    log_dir = Path(log_dir)
    shutil.rmtree(log_dir, ignore_errors=True)
    trials = list(trials)
    names = sorted({name for trial in trials for name in trial.values})
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in names],
            metrics=[
                hp.Metric(objective, display_name=f"{objective} (best epoch)"),
                hp.Metric("epochs"),
            ],
        )
    writer.close()
    for trial in trials:
        writer = tf.summary.create_file_writer(str(log_dir / f"trial_{trial.trial_id}"))
        with writer.as_default():
            hparams = {name: hparam_value(value) for name, value in trial.values.items()}
            hp.hparams(hparams, trial_id=f"trial_{trial.trial_id}")
            if trial.objective is not None and math.isfinite(trial.objective):
                tf.summary.scalar(objective, float(trial.objective), step=trial.epochs)
                tf.summary.scalar("epochs", trial.epochs, step=trial.epochs)
        writer.close()
    return log_dir
