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
import math
import time
from collections.abc import Iterator, Sequence
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
    # input/output type of the int8 file (float32, uint8 = raw pixels, int8) and what image
    # files return (probabilities or logits); see trainer.export.export_and_verify
    export_io: str = "float32"
    export_outputs: str = "probabilities"
    # Describes the model input for people and for the sidecar JSON beside each .tflite file,
    # e.g. {"shape": [28, 28, 1], "dtype": "float32", "range": [0, 1], "layout": "NHWC"}.
    input_spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    title: str = ""  # the report's title, e.g. "Fashion-MNIST small CNN"
    data_report: Any = None  # trainer.data.check.DataReport from the data check, if any
    # Extra files the run folder gets (name -> text), e.g. {"vocabulary.txt": "..."}; they are
    # written by `finish` and named in the sidecar JSON of every export.
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    report_sections: dict[str, str] = dataclasses.field(default_factory=dict)  # extra sections
    # The test inputs as an app hands them to a mobile runtime, when `x_test` cannot be turned
    # back into them: the raw texts of a text model (MediaPipe tokenizes them itself).
    test_texts: list[str] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class RunFailedError(ValueError):
    """A run that trained but made no usable model (it diverged, or it scores at chance level).

    `finish` raises it after writing the report, `metrics.json` (with `failed`) and
    `model.keras` for inspection, but no mobile files; the command line exits 1 with its
    message, which says how to continue.
    """


# Set by `allowing_chance` (`trainer train --allow_chance=true`): a model at chance level
# finishes its run instead of failing it.
_allow_chance = False


@contextlib.contextmanager
def allowing_chance(allow: bool = True) -> Iterator[None]:
    """Within this block `finish` accepts a model at chance level (with its loud warning)
    instead of failing the run; `trainer train --allow_chance=true` wraps the recipe's `main`
    in it. A diverged model (NaN or infinite loss or outputs) fails the run all the same.

    Example:

        >>> from trainer.experiment import allowing_chance, chance_allowed
        >>> with allowing_chance():
        ...     chance_allowed()
        True
        >>> chance_allowed()
        False
    """
    global _allow_chance
    previous, _allow_chance = _allow_chance, bool(allow)
    try:
        yield
    finally:
        _allow_chance = previous


def chance_allowed() -> bool:
    """True inside `allowing_chance()`: `finish` keeps a model at chance level."""
    return _allow_chance


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
    from trainer.batch_norm import recalibrate_batch_norm
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
    from trainer.tensorboard_logging import histogram_epochs

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
    fit_callbacks += run_callbacks(
        run_dir, backup_every=backup_every, histogram_freq=histogram_epochs()
    )
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


def finish(
    experiment: Experiment, run_dir: str | Path, fit: FitResult, *, allow_chance: bool | None = None
) -> dict:
    """The shared end of every run: save, export, verify, plots, diagnosis, report, metrics.

    Scores the Keras model (in float32, also after mixed-precision training) on the test set,
    saves `model.keras`, exports every format in
    `experiment.export_formats` and verifies each file on the whole test set with LiteRT,
    draws the learning curves, confusion matrix and per-class accuracy, adds the fit
    diagnosis (with a loud warning when the test accuracy is at chance level) and writes
    `report.md` and `metrics.json`. Returns the metrics.

    A run that made no usable model fails (`RunFailedError`) once its report, `metrics.json`
    (with `failed`) and `model.keras` are written, without mobile files: a model that diverged
    (a NaN or infinite training loss or test output), or one at chance level unless
    `allow_chance` (default: inside `allowing_chance()`, else False).
    """
    from trainer.precision import float32_copy

    run_dir = Path(run_dir)
    # A model trained in mixed precision is scored, saved and exported as its float32 copy (the
    # same weights): what the float32 and int8 files compute, and what compress and export load.
    model = float32_copy(experiment.model)
    _write_run_files(experiment, run_dir)
    logits = np.asarray(model.predict(experiment.x_test, batch_size=256, verbose=0))
    predictions = np.argmax(logits, axis=-1)
    keras_accuracy = float(np.mean(predictions == np.asarray(experiment.y_test)))
    findings, collapsed = _diagnose(experiment, fit, keras_accuracy)
    allow = chance_allowed() if allow_chance is None else allow_chance
    failure = _failure(fit, logits, None if allow else collapsed)
    if failure:
        scored = _Scored(keras_accuracy, predictions, [], f"No file was exported: {failure}.")
        _write_outcome(experiment, run_dir, fit, scored, (findings, collapsed), model, failure)
        raise RunFailedError(_failure_message(experiment, run_dir, fit, failure, allow))
    scored = _save_and_verify(model, experiment, run_dir, logits)
    return _write_outcome(experiment, run_dir, fit, scored, (findings, collapsed), model)


def _write_outcome(
    experiment: Experiment,
    run_dir: Path,
    fit: FitResult,
    scored,
    diagnosis: tuple,
    model,
    failure: str = "",
) -> dict:
    """Plots, report.md, metrics.json and (with exported files) model_card.md; returns the
    metrics. `diagnosis` is `_diagnose`'s (findings, chance-level finding or None). A failed
    run also gets `model.keras`, for inspection, and `failed` in its metrics and report."""
    findings, collapsed = diagnosis
    from trainer.model_card import write_model_card
    from trainer.report import write_report

    if failure:
        from trainer.files import atomic_save
        from trainer.runs import MODEL_FILE

        atomic_save(run_dir / MODEL_FILE, lambda temporary: model.save(temporary))
    _plot(experiment, fit.history, scored.predictions, run_dir)
    kept = f" (weights of epoch {fit.best_epoch}, best on validation)" if fit.best_epoch else ""
    print(
        f"Keras test accuracy: {scored.keras_accuracy:.4f}{kept} (training took {fit.seconds:.0f}s)"
    )
    metrics = _metrics(experiment, fit, scored, findings, collapsed, model.count_params())
    sections = _report_sections(experiment, fit, scored, metrics, findings, collapsed)
    sections.update(_confident_errors(experiment, model, scored.predictions, run_dir))
    if failure:
        metrics["failed"] = failure
        sections = {"RUN FAILED": f"{failure[0].upper()}{failure[1:]}.", **sections}
    write_report(run_dir, experiment.title or f"Run {run_dir.name}", sections, metrics)
    if not failure:
        write_model_card(experiment, run_dir, metrics, scored.predictions)
        print(scored.table)
    print(f"report: {run_dir / 'report.md'}")
    _log_to_tensorboard(run_dir, metrics, model)
    return metrics


def _log_to_tensorboard(run_dir: Path, metrics: dict, model) -> None:
    """The run's config and final metrics (HParams), plots and saved model's graph, in `logs/`."""
    import yaml

    from trainer.runs import CONFIG_FILE, LOGS_DIR
    from trainer.tensorboard_logging import log_run

    config_path = run_dir / CONFIG_FILE
    config = (
        yaml.safe_load(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    )
    log_run(run_dir / LOGS_DIR, config or {}, metrics, sorted(run_dir.glob("*.png")), model)


def _failure(fit: FitResult, logits: np.ndarray, collapsed) -> str:
    """Why the run's model is unusable, as the start of a sentence, or "": a non-finite
    training loss or test output (diverged), or `collapsed` (the chance-level finding, None
    when the model learned or the caller accepts chance)."""
    loss = [float(value) for value in fit.history.get("loss", [])]
    bad_epochs = [epoch for epoch, value in enumerate(loss, 1) if not math.isfinite(value)]
    if bad_epochs:
        return (
            f"training diverged: the training loss became {loss[bad_epochs[0] - 1]} at epoch "
            f"{bad_epochs[0]}"
        )
    finite = np.isfinite(logits)
    if not finite.all():
        return (
            f"the model diverged: {int(np.sum(~finite))} of its {finite.size} outputs on the "
            "test set are NaN or infinite"
        )
    if collapsed is not None:
        return f"the model did not learn: {collapsed.message.split(':')[0]}"
    return ""


def _failure_message(
    experiment: Experiment, run_dir: Path, fit: FitResult, failure: str, allow_chance: bool
) -> str:
    """`RunFailedError`'s message: what happened, what is kept, and how to continue."""
    from trainer.runs import resume_recipe

    rate = f"{experiment.learning_rate:g}"
    lr_find = f"`trainer lr-find {resume_recipe(run_dir) or 'RECIPE'}`"
    # Cross-entropy of a model that knows nothing is ln(classes); far above it, the steps
    # were too large (the loss jumped), even when it came back down before the end.
    losses = [value for value in fit.history.get("loss", []) if math.isfinite(value)]
    chance_loss = math.log(max(experiment.num_classes, 2))
    jumped = bool(losses) and max(losses) > 10 * chance_loss
    lower = (
        f"lower --learning_rate (this run used {rate}; try 3-10x lower, or measure one with "
        f"{lr_find})"
    )
    if jumped:
        remedy = (
            f"The training loss reached {max(losses):.4g} (a model that knows nothing scores "
            f"{chance_loss:.2f}): {lower}"
        )
    elif failure.startswith(("training diverged", "the model diverged")):
        remedy = lower[0].upper() + lower[1:]
    else:
        remedy = (
            f"See the fit diagnosis in the report: usually the learning rate is off (this run "
            f"used {rate}: lower --learning_rate if the loss jumped, raise it if the loss "
            f"barely fell, or measure one with {lr_find}) or the run is too short (more "
            "--epochs)"
        )
    chance = ""
    if not allow_chance and failure.startswith("the model did not"):
        chance = " To keep a model at chance level anyway, add --allow_chance=true."
    return (
        f"the run failed: {failure}. The run folder {run_dir} is kept with its report "
        f"({run_dir / 'report.md'}), metrics and model.keras, but no mobile file. {remedy}, "
        f"then train again in the same folder with `trainer train --resume={run_dir} --restart "
        f"--learning_rate=...`, or start a new run.{chance}"
    )


@dataclasses.dataclass
class _Scored:
    """What `finish` measured on the test set: the Keras model and every exported file."""

    keras_accuracy: float
    predictions: np.ndarray  # the Keras model's class ids on x_test
    exports: list  # trainer.export.ExportResult per format
    table: str  # the Markdown table of the exports, for the report and the console


def _write_run_files(experiment: Experiment, run_dir: Path) -> None:
    """Writes the recipe's extra files and the data check's report into the run folder."""
    from trainer.files import atomic_write_text

    for name, text in experiment.artifacts.items():
        atomic_write_text(run_dir / name, text)
    if experiment.data_report is not None:
        from trainer.data.check import write_data_report

        write_data_report(experiment.data_report, run_dir)


def _save_and_verify(
    model, experiment: Experiment, run_dir: Path, logits: np.ndarray | None = None
) -> _Scored:
    """Saves `model.keras`, exports every format and verifies each on the whole test set
    (`logits`: the model's outputs on the test set, computed when not given)."""
    from trainer.export import save_and_verify
    from trainer.report import export_table
    from trainer.runs import MODEL_FILE

    keras_accuracy, predictions, exports = save_and_verify(
        model,
        experiment.x_test,
        experiment.y_test,
        run_dir,
        list(experiment.export_formats),
        representative_images=experiment.representative,
        class_names=list(experiment.class_names),
        input_spec=experiment.input_spec,
        artifacts=list(experiment.artifacts),
        io=experiment.export_io,
        outputs=experiment.export_outputs,
        title=experiment.title,
        test_texts=experiment.test_texts,
        keras_outputs=logits,
    )
    table = export_table(keras_accuracy, (run_dir / MODEL_FILE).stat().st_size, exports)
    return _Scored(keras_accuracy, predictions, exports, table)


def _plot(experiment: Experiment, history: dict, predictions: np.ndarray, run_dir: Path) -> None:
    """Draws the learning curves (if any epoch was logged) and the per-class error plots."""
    from trainer.plots import plot_confusion_matrix, plot_learning_curves, plot_per_class_accuracy

    names = experiment.class_names
    if history:
        plot_learning_curves(history, run_dir / "learning_curves.png")
    plot_confusion_matrix(experiment.y_test, predictions, names, run_dir / "confusion_matrix.png")
    plot_per_class_accuracy(
        experiment.y_test, predictions, names, run_dir / "per_class_accuracy.png"
    )


def _confident_errors(experiment: Experiment, model, predictions, run_dir: Path) -> dict:
    """The report section on the 16 test errors the model was surest of: a grid of images
    (`confident_errors.png`) or a table of texts; none without errors or viewable inputs."""
    from trainer.plots import plot_confident_errors
    from trainer.report import confident_errors_section

    labels = np.asarray(experiment.y_test)
    wrong = np.flatnonzero(np.asarray(predictions) != labels)
    images = np.asarray(experiment.x_test).ndim == 4
    if not len(wrong) or not (images or experiment.test_texts is not None):
        return {}
    logits = np.asarray(model.predict(experiment.x_test[wrong], batch_size=256, verbose=0))
    logits = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    confidence = (np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)).max(axis=-1)
    order = np.argsort(-confidence, kind="stable")[:16]
    shown, names = wrong[order], experiment.class_names
    predicted = np.asarray(predictions)[shown]
    heading = "Most confident test errors"
    if images:
        path = run_dir / "confident_errors.png"
        x = np.asarray(experiment.x_test)[shown]
        plot_confident_errors(x, labels[shown], predicted, confidence[order], names, path)
        return {heading: confident_errors_section(len(wrong), picture=path.name)}
    rows = [
        (experiment.test_texts[i], names[labels[i]], names[p], c)
        for i, p, c in zip(shown, predicted, confidence[order], strict=True)
    ]
    return {heading: confident_errors_section(len(wrong), texts=rows)}


def _diagnose(experiment: Experiment, fit: FitResult, keras_accuracy: float):
    """The fit's findings, led by a loud warning when the test accuracy is at chance level.

    Returns (findings, the chance-level finding or None)."""
    from trainer.diagnosis import chance_finding

    history = fit.history
    findings = list(fit.findings)
    train_accuracy = (history.get("accuracy") or [None])[-1]
    collapsed = chance_finding(
        keras_accuracy, experiment.y_test, train_accuracy, len(history.get("loss", []))
    )
    if collapsed is not None:
        findings.insert(0, collapsed)
        print(f"WARNING {collapsed}", flush=True)
    return findings, collapsed


def _metrics(
    experiment: Experiment, fit: FitResult, scored: _Scored, findings, collapsed, parameters: int
) -> dict:
    """`metrics.json`'s content: the scores, times, size and diagnosis of the run."""
    history = fit.history
    metrics = {
        "test_accuracy": scored.keras_accuracy,
        "val_accuracy": (history.get("val_accuracy") or [None])[-1],
        "best_epoch": fit.best_epoch,
        "at_chance": collapsed is not None,
        "train_seconds": round(fit.seconds, 1),
        "train_cpu_seconds": round(fit.cpu_seconds, 1),
        "parameters": parameters,
        "epochs": len(history.get("loss", [])) or experiment.epochs,
        "class_names": list(experiment.class_names),
        "diagnosis": [finding.kind for finding in findings],
        "exports": [result.to_dict() for result in scored.exports],
    }
    if experiment.data_report is not None:
        metrics["data_problems"] = experiment.data_report.problem_counts()
    return metrics


def _report_sections(
    experiment: Experiment, fit: FitResult, scored: _Scored, metrics: dict, findings, collapsed
) -> dict[str, str]:
    """`report.md`'s sections, in order: result, warning, exports, data check, the recipe's
    own sections, learning curves, fit diagnosis, errors by class."""
    from trainer.diagnosis import format_findings

    kept = f" (weights of epoch {fit.best_epoch}, best on validation)" if fit.best_epoch else ""
    validation = (
        f"Validation = {len(experiment.x_val)} examples held out of the training data"
        + ("; the best epoch by validation accuracy is kept" if fit.best_epoch else "")
        if experiment.x_val is not None and experiment.validation_held_out
        else "Validation = data the model also trained on or the test set: monitored only"
    )
    sections = {
        "Result": f"Keras test accuracy **{scored.keras_accuracy * 100:.2f}%**{kept} after "
        f"{metrics['epochs']} epochs ({fit.seconds:.0f}s training, {metrics['parameters']:,} "
        f"parameters). Classes: {', '.join(experiment.class_names)}.",
    }
    if collapsed is not None:
        sections["WARNING: test accuracy at chance level"] = str(collapsed)
    sections["TFLite verification (whole test set, LiteRT interpreter)"] = scored.table
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
    return sections
