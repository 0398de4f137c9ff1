"""The recipe contract: `build(config) -> Experiment`, then `fit` and `finish`.

Every recipe is a module with a flat `Config` dataclass, `build(config) -> Experiment` and
`main(config) -> dict`. `build` loads the data and returns the compiled model with everything a
command needs, writing nothing; `main` reads top to bottom as build -> start the run folder ->
`fit` (one `model.fit` with our callbacks) -> `finish` (save, export, verify, plots,
diagnosis, report, metrics). Every command uses the same `build`: `trainer compress` rebuilds a
run's data through the recipe that made it, `trainer lr-find` sweeps its model, and `trainer
tune` searches over its config. There is no `Trainer` class: the model is a plain compiled
`tf_keras` model, and `fit` is Keras's own.

This module owns the `Experiment` type and the shared fit/finish steps; it must not know any
particular recipe or data format.

Example (a complete recipe, see README "Write your own recipe"):

    from dataclasses import dataclass
    from trainer.experiment import Experiment, finish, fit, start_run

    @dataclass
    class Config:
        run_dir: str = ""  # output folder
        epochs: int = 3  # passes over the training set

    def build(config: Config) -> Experiment:
        ...  # load data, build and compile a model
        return Experiment(model=model, train=train_dataset, x_test=x_test, y_test=y_test,
                          class_names=names, representative=x_train[:300], x_val=x_val,
                          y_val=y_val, epochs=config.epochs)

    def main(config: Config) -> dict:
        experiment = build(config)
        run_dir = start_run("my_recipe", config, config.run_dir)
        return finish(experiment, run_dir, fit(experiment, run_dir))
"""

import contextlib
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass
class Experiment:
    """What `build(config)` returns: a compiled model and the data every command needs.

    Inputs (`x_*`, `representative`) are *preprocessed*: exactly what the model, and so the
    exported TFLite file, takes (e.g. float32 NHWC images in [0, 1], or float32 token ids).
    `train` yields batches of (inputs, one-hot labels), already shuffled and augmented, and
    never contains the validation examples.
    """

    model: Any  # compiled tf_keras model whose outputs are logits
    train: Any  # tf.data.Dataset of (inputs, one-hot labels); excludes validation
    x_test: np.ndarray  # preprocessed test inputs: only scored, never used to choose
    y_test: np.ndarray  # int class ids of the test inputs
    class_names: list[str]
    representative: np.ndarray  # a few hundred preprocessed training inputs (int8 calibration)
    x_val: np.ndarray | None = None  # preprocessed validation inputs (selection, diagnosis)
    y_val: np.ndarray | None = None
    # True when validation was carved from the training data and never trained on: then the
    # best epoch is kept by validation accuracy and compress selects on it without bias.
    validation_held_out: bool = True
    epochs: int = 1
    batch_size: int = 32  # training batch size (compress fine-tunes with it)
    learning_rate: float = 1e-3  # peak learning rate (compress retrains from it)
    class_weight: dict[int, float] | None = None
    export_formats: tuple[str, ...] = ("float32", "int8")
    # Describes the model input for people and for the sidecar JSON beside each .tflite file,
    # e.g. {"shape": [28, 28, 1], "dtype": "float32", "range": [0, 1], "layout": "NHWC"}.
    input_spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    title: str = ""  # the report's title, e.g. "Fashion-MNIST small CNN"
    data_report: Any = None  # trainer.data.check.DataReport from the data check, if any
    # Extra files the run folder gets (name -> text), e.g. {"vocabulary.txt": "..."}; they are
    # written by `finish` and named in the sidecar JSON of every export.
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    report_sections: dict[str, str] = dataclasses.field(default_factory=dict)  # extra sections

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def batch_norm_momentum(steps_per_epoch: int, epochs: int) -> float:
    """A batch-norm momentum whose moving statistics keep up with the weights on any run length.

    Keras's default 0.99 averages over about 100 steps. On a short run that average still
    holds the initial statistics, or those of much earlier weights, and evaluation collapses
    to chance while training accuracy is high (measured: 2 epochs of 47 steps on Fashion-MNIST,
    75% train / 10% test; a 1,400-image folder at 20 steps per epoch, 97% train / 17% test).
    The horizon here is a tenth of the run and at most half an epoch, within [10, 100] steps,
    so long runs keep 0.99 and short ones get down to 0.9.

    Example:

        batch_norm_momentum(steps_per_epoch=469, epochs=12)   # 0.99
        batch_norm_momentum(steps_per_epoch=20, epochs=15)    # 0.9
    """
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(
            f"steps_per_epoch and epochs must be >= 1, received {steps_per_epoch} and {epochs}"
        )
    horizon = min(steps_per_epoch * epochs / 10, steps_per_epoch / 2)
    horizon = min(max(horizon, 10.0), 100.0)
    return round(1.0 - 1.0 / horizon, 4)


def start_run(recipe: str, config: Any, run_dir: str | Path = "") -> Path:
    """Creates the run folder (config.yaml, run.json) and prints where it is."""
    from trainer.distribute import worker_run_dir
    from trainer.runs import create_run_dir

    # Multi-worker (trainer.distribute): only the chief writes the run folder; the others
    # train into a scratch folder they remove, reading the chief's backup.
    scratch = worker_run_dir(run_dir)
    if scratch is not None:
        return scratch
    path = create_run_dir(recipe, config, run_dir or None)
    print(f"run directory: {path}", flush=True)
    return path


@dataclasses.dataclass
class FitResult:
    """What `fit` measured: the per-epoch history (all sessions of a resumed run), times,
    the epoch whose weights the model holds, and the fit diagnosis."""

    history: dict[str, list[float]]
    seconds: float  # training wall time, summed over the sessions of a resumed run
    cpu_seconds: float  # process CPU time of this session
    best_epoch: int | None = None  # 1-based epoch whose weights were kept; None = the last
    findings: list = dataclasses.field(default_factory=list)


def validation_dataset(experiment: Experiment, batch_size: int = 256):
    """The validation arrays as batches of (inputs, one-hot labels), or None."""
    if experiment.x_val is None or experiment.y_val is None or len(experiment.x_val) == 0:
        return None
    import tensorflow as tf

    from trainer.data.pipeline import finish as finish_pipeline

    labels = tf.one_hot(np.asarray(experiment.y_val, np.int64), experiment.num_classes)
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(experiment.x_val), labels))
    return finish_pipeline(dataset.batch(batch_size))


def fit(
    experiment: Experiment,
    run_dir: str | Path,
    *,
    backup_every: int = 200,
    callbacks: Sequence = (),
    keep_best: bool = True,
    initial_epoch: int = 0,
) -> FitResult:
    """Runs `model.fit` on the experiment with the run's callbacks and returns what it measured.

    The callbacks: fit diagnosis, learning rate and `history.csv` logging, TensorBoard, one line
    per epoch when output is not a terminal, resume backups every `backup_every` steps (0 = off;
    `trainer train --resume=RUN_DIR` continues a killed run), and, when validation is held out
    of the training data and `keep_best`, the best epoch by validation accuracy (its weights
    are restored after the last epoch; the test set is never used to choose). A second phase
    of the same run (e.g. fine-tuning after the head) passes `initial_epoch`, the epochs
    already logged, and trains epochs `initial_epoch`..`experiment.epochs - 1`, so that its
    epochs follow the first phase's in `history.csv` instead of replacing them.
    """
    from trainer.callbacks import FitDiagnosis
    from trainer.checkpoint import BestModelCheckpoint
    from trainer.runs import (
        BEST_MODEL_FILE,
        HISTORY_FILE,
        add_training_seconds,
        fit_verbosity,
        read_history,
        run_callbacks,
    )

    run_dir = Path(run_dir)
    validation = validation_dataset(experiment)
    # tf.distribute (trainer.distribute): the input's auto-shard policy, and backups at every
    # epoch at least in a multi-worker job, which restarts from them when a worker dies.
    from trainer.distribute import in_multi_worker, prepare_input

    train, validation = prepare_input(experiment.train), prepare_input(validation)
    backup_every = backup_every or ("epoch" if in_multi_worker() else 0)
    diagnosis = FitDiagnosis()
    best = None
    if keep_best and validation is not None and experiment.validation_held_out:
        best = BestModelCheckpoint(run_dir / BEST_MODEL_FILE, monitor="val_accuracy")
    fit_callbacks = [diagnosis, *callbacks, *([best] if best else [])]
    fit_callbacks += run_callbacks(run_dir, backup_every=backup_every)
    started, cpu_started = time.perf_counter(), time.process_time()
    experiment.model.fit(
        train,
        epochs=experiment.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        class_weight=experiment.class_weight,
        callbacks=fit_callbacks,
        verbose=fit_verbosity(),
    )
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    # A resumed run reports its training time over every session, not only the last one.
    seconds = add_training_seconds(run_dir, seconds)
    # history.csv rather than fit's History, so that a resumed run reports all its epochs.
    history = read_history(run_dir / HISTORY_FILE)
    best_epoch = _restore_best(experiment.model, best, history)
    recalibrate_batch_norm(experiment.model, experiment.train)
    return FitResult(history, seconds, cpu_seconds, best_epoch, list(diagnosis.findings))


def recalibrate_batch_norm(model, dataset, batches: int = 50) -> int:
    """Re-estimates every trainable batch-norm layer's moving mean and variance with the final
    weights, as a plain average over `batches` training batches. Returns the layers updated.

    During `fit` the moving statistics are an exponential average over weights that kept
    changing; on a run of a few dozen steps they never catch up, and evaluation collapses to
    chance while training accuracy is high (measured: Fashion-MNIST, 1 epoch of 15 steps:
    10% test accuracy). Averaging the statistics of the finished model over the training data
    ("precise BN") is exact whatever the run length and costs a few seconds. Layers that are
    frozen (`trainable=False`, e.g. a pretrained backbone kept in inference mode) are left as
    they are.

    Under a tf.distribute strategy (the model's `distribute_strategy`) it runs the way `fit`
    updates the statistics: each batch is split over the replicas with `strategy.run`, and
    each replica averages the statistics of its share into its own copy. The moving mean and
    variance are SyncOnRead variables (tf_keras creates them ON_READ with MEAN aggregation):
    written per replica, averaged when read outside a replica. The trainable weights are
    MirroredVariables that only the optimizer's all-reduced update may change; nothing here
    assigns them. At the end each moving statistic is read outside the replicas (the mean of
    every replica's copy; an all-reduce across the workers of a multi-worker job) and that
    mean is assigned to every copy, so every replica of every worker predicts, saves and
    exports the same statistics. With `MultiWorkerMirroredStrategy` every worker must call
    this function (each worker runs the same `fit`, which does); each then reads only its
    shard of the batches. Without a strategy there is one replica and the same code averages
    whole batches.
    """
    import tf_keras as keras

    from trainer.distribute import prepare_input

    layers = [
        layer
        for layer in model.submodules
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if not layers:
        return 0
    strategy = model.distribute_strategy
    with strategy.scope(), _without_eager_strategy_warning():
        saved = [
            (layer.momentum, layer.moving_mean.numpy(), layer.moving_variance.numpy())
            for layer in layers
        ]
        try:
            shares = strategy.experimental_distribute_dataset(prepare_input(dataset.take(batches)))
            for index, batch in enumerate(shares):
                for layer in layers:
                    # momentum k/(k+1) makes the moving value the plain mean of the k+1
                    # batches this replica has seen.
                    layer.momentum = index / (index + 1)
                strategy.run(lambda batch: model(batch[0], training=True), args=(batch,))
            if strategy.num_replicas_in_sync > 1:
                for layer in layers:
                    for variable in (layer.moving_mean, layer.moving_variance):
                        variable.assign(variable.read_value())
        except Exception:
            for layer, (_, mean, variance) in zip(layers, saved, strict=True):
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
            raise
        finally:
            for layer, (momentum, _, _) in zip(layers, saved, strict=True):
                layer.momentum = momentum
    return len(layers)


@contextlib.contextmanager
def _without_eager_strategy_warning():
    """Drops TensorFlow's "Using MirroredStrategy eagerly has significant overhead" warning,
    logged at every `strategy.run` outside a `tf.function`: a few dozen forward passes do not
    need a traced function (which would also freeze the momentum changed at every batch)."""
    import logging

    import tensorflow as tf

    def keep(record: logging.LogRecord) -> bool:
        return "eagerly has significant overhead" not in record.getMessage()

    logger = tf.get_logger()
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _restore_best(model, best, history: dict[str, list[float]]) -> int | None:
    """Loads the best epoch's weights if it beat the last epoch on validation accuracy."""
    last = (history.get("val_accuracy") or [None])[-1]
    if best is None or best.best is None or last is None or best.best <= last:
        return None
    import tf_keras as keras

    saved = keras.models.load_model(best.filepath, compile=False)
    model.set_weights(saved.get_weights())
    print(
        f"kept the weights of epoch {best.best_epoch} (validation accuracy {best.best:.4f}; "
        f"last epoch {last:.4f})",
        flush=True,
    )
    return int(best.best_epoch)


def finish(experiment: Experiment, run_dir: str | Path, fit: FitResult) -> dict:
    """The shared end of every run: save, export, verify, plots, diagnosis, report, metrics.

    Scores the Keras model (in float32, also after mixed-precision training) on the test set,
    saves `model.keras`, exports every format in
    `experiment.export_formats` and verifies each file on the whole test set with LiteRT,
    draws the learning curves, confusion matrix and per-class accuracy, adds the fit
    diagnosis (with a loud warning when the test accuracy is at chance level) and writes
    `report.md` and `metrics.json`. Returns the metrics.
    """
    from trainer.diagnosis import chance_finding, format_findings
    from trainer.export import save_and_verify
    from trainer.files import atomic_write_text
    from trainer.plots import plot_confusion_matrix, plot_learning_curves, plot_per_class_accuracy
    from trainer.precision import float32_copy
    from trainer.report import export_table, write_report
    from trainer.runs import MODEL_FILE

    run_dir = Path(run_dir)
    # A model trained in mixed precision is scored, saved and exported as its float32 copy (the
    # same weights): what the float32 and int8 files compute, and what compress and export load.
    model, names = float32_copy(experiment.model), experiment.class_names
    for name, text in experiment.artifacts.items():
        atomic_write_text(run_dir / name, text)
    if experiment.data_report is not None:
        from trainer.data.check import write_data_report

        write_data_report(experiment.data_report, run_dir)
    keras_accuracy, predictions, exports = save_and_verify(
        model,
        experiment.x_test,
        experiment.y_test,
        run_dir,
        list(experiment.export_formats),
        representative_images=experiment.representative,
        class_names=list(names),
        input_spec=experiment.input_spec,
        artifacts=list(experiment.artifacts),
    )
    table = export_table(keras_accuracy, (run_dir / MODEL_FILE).stat().st_size, exports)
    history = fit.history
    if history:
        plot_learning_curves(history, run_dir / "learning_curves.png")
    plot_confusion_matrix(experiment.y_test, predictions, names, run_dir / "confusion_matrix.png")
    plot_per_class_accuracy(
        experiment.y_test, predictions, names, run_dir / "per_class_accuracy.png"
    )

    findings = list(fit.findings)
    train_accuracy = (history.get("accuracy") or [None])[-1]
    collapsed = chance_finding(
        keras_accuracy, experiment.y_test, train_accuracy, len(history.get("loss", []))
    )
    if collapsed is not None:
        findings.insert(0, collapsed)
        print(f"WARNING {collapsed}", flush=True)
    epochs_run = len(history.get("loss", [])) or experiment.epochs
    kept = f" (weights of epoch {fit.best_epoch}, best on validation)" if fit.best_epoch else ""
    parameters = model.count_params()
    print(f"Keras test accuracy: {keras_accuracy:.4f}{kept} (training took {fit.seconds:.0f}s)")
    metrics = {
        "test_accuracy": keras_accuracy,
        "val_accuracy": (history.get("val_accuracy") or [None])[-1],
        "best_epoch": fit.best_epoch,
        "at_chance": collapsed is not None,
        "train_seconds": round(fit.seconds, 1),
        "train_cpu_seconds": round(fit.cpu_seconds, 1),
        "parameters": parameters,
        "epochs": epochs_run,
        "class_names": list(names),
        "diagnosis": [finding.kind for finding in findings],
        "exports": [result.to_dict() for result in exports],
    }
    if experiment.data_report is not None:
        metrics["data_problems"] = experiment.data_report.problem_counts()
    validation = (
        f"Validation = {len(experiment.x_val)} examples held out of the training data"
        + ("; the best epoch by validation accuracy is kept" if fit.best_epoch else "")
        if experiment.x_val is not None and experiment.validation_held_out
        else "Validation = data the model also trained on or the test set: monitored only"
    )
    sections = {
        "Result": f"Keras test accuracy **{keras_accuracy * 100:.2f}%**{kept} after "
        f"{epochs_run} epochs ({fit.seconds:.0f}s training, {parameters:,} parameters). "
        f"Classes: {', '.join(names)}.",
    }
    if collapsed is not None:
        sections["WARNING: test accuracy at chance level"] = str(collapsed)
    sections["TFLite verification (whole test set, LiteRT interpreter)"] = table
    if experiment.data_report is not None:
        sections["Data check (fast)"] = (
            f"```\n{experiment.data_report.summary()}\n```\n\n"
            "Details: [data_report.md](data_report.md)"
        )
    sections.update(experiment.report_sections)
    sections["Learning curves"] = f"{validation}.\n\n![learning curves](learning_curves.png)"
    sections["Fit diagnosis"] = format_findings(findings)
    sections["Errors by class"] = (
        "![confusion matrix](confusion_matrix.png)\n\n![per-class accuracy](per_class_accuracy.png)"
    )
    write_report(run_dir, experiment.title or f"Run {run_dir.name}", sections, metrics)
    print(table)
    print(f"report: {run_dir / 'report.md'}")
    return metrics


def holdout_size(train_count: int, requested: int = -1) -> int:
    """How many training examples to hold out for validation: `requested` if >= 0, otherwise
    (-1, the recipes' default) 10% of the training set, at least 1 and at most 5,000.

    5,000 examples measure accuracy to about +-0.4 pp (one standard error at 90%); more would
    only take training data away.
    """
    if requested >= 0:
        if requested > train_count // 2:
            raise ValueError(
                f"validation_size={requested} would hold out more than half of the "
                f"{train_count} training examples; choose at most {train_count // 2}, or -1 "
                "for the default (10%, at most 5000)"
            )
        return requested
    if requested != -1:
        raise ValueError(f"validation_size must be -1 (auto) or >= 0, received {requested}")
    return min(5000, max(1, round(train_count * 0.1))) if train_count >= 10 else 0


def auto_batch_size(train_count: int, largest: int = 64) -> int:
    """A batch size for `train_count` examples: the largest power of two giving at least 50
    steps per epoch, between 16 and `largest`.

    Small data sets need steps more than they need big batches: a 1,400-image folder at batch
    64 gets 20 steps per epoch, too few for the moving statistics and the schedule to settle.
    """
    if train_count < 1:
        raise ValueError(f"train_count must be >= 1, received {train_count}")
    size = 16
    while size * 2 <= largest and train_count / (size * 2) >= 50:
        size *= 2
    return size
