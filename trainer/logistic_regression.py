"""Fits the linear text model (`trainer.models.text_ngrams.TfIdfLinear`) with scikit-learn's logistic
regression, choosing the strength of its L2 penalty on the validation split.

The model's TF-IDF features are fixed once its idf is set, so they are computed once, by the
layer's own feature function, as a sparse matrix. scikit-learn's `LogisticRegression` is then
fitted for each C of a grid (smallest first, each fit starting from the previous one), the C
with the lowest validation loss is chosen, and the model is fitted again at that C on
train + validation (with the idf of both), as a scikit-learn baseline fits on all of its
training data. The coefficients are written into the layer's table and bias, so the Keras
model, its saved file and the exported TFLite files compute exactly the fitted classifier.
An optimizer in Keras would need tens of epochs to reach the same optimum.

The choice rests on the validation loss (cross-entropy), not accuracy: on a few hundred
validation texts neighbouring C often tie or differ by one text in accuracy, and the
winner then depends on the solver's path, while the loss, a proper score, still ranks them.

`history.csv` gets one row per C (`inverse_regularization`, train and validation loss and
accuracy, the validation numbers from the fit on train only), then a row for the final fit
on train + validation, whose validation columns repeat its C's held-out numbers: the
estimate the choice rests on. The run's report explains the choice (`report_section`).

This module owns that fit; it must not build models, load data or export.

Example (not run: needs a folder of texts and a built experiment):

    from trainer.logistic_regression import fit_logistic_regression
    experiment = text_classifier.build(text_classifier.Config(data="texts/"))
    result = fit_logistic_regression(experiment, "runs/demo")   # a FitResult, as fit's
"""

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# scikit-learn's C: the inverse of the L2 penalty's strength (loss summed over the texts plus
# |w|^2 / 2C). The grid spans what cross-validated baselines choose on the text sets of
# bench/real_data.py (30 to 300) with room on both sides.
INVERSE_REGULARIZATIONS = (3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
# C without validation texts to choose it: the middle of the grid, near what cross-validated
# baselines choose on the text sets of bench/real_data.py.
UNVALIDATED_INVERSE_REGULARIZATION = 100.0
# A class absent from the training texts gets this logit bias: never predicted.
_ABSENT_CLASS_BIAS = -30.0


@dataclasses.dataclass
class RegularizationStep:
    """One fit of the grid: C and the train and validation loss and accuracy it reached."""

    inverse_regularization: float
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


def tf_idf_matrix(layer, ids: np.ndarray, batch_size: int = 512):
    """The TF-IDF features of `ids` as the layer computes them, a scipy CSR matrix of shape
    (texts, n-gram ids): the rows its table multiplies.

    Example (not run: needs a built TfIdfLinear model):

        features = tf_idf_matrix(model.get_layer("logits"), x_train)
    """
    import scipy.sparse

    rows, columns, values = [], [], []
    for start in range(0, len(ids), batch_size):
        grams, weights = layer.features(np.asarray(ids[start : start + batch_size], np.float32))
        grams, weights = grams.numpy(), weights.numpy()
        row, position = np.nonzero(weights)
        rows.append(row + start)
        columns.append(grams[row, position])
        values.append(weights[row, position])
    matrix = scipy.sparse.csr_matrix(
        (
            np.concatenate(values or [np.zeros(0)]),
            (
                np.concatenate(rows or [np.zeros(0, int)]),
                np.concatenate(columns or [np.zeros(0, int)]),
            ),
        ),
        shape=(len(ids), layer.size),
        dtype=np.float64,
    )
    matrix.sum_duplicates()  # a repeated n-gram's positions add up to its TF-IDF value
    return matrix


def _linear_layer(model):
    from trainer.models.text_ngrams import TfIdfLinear

    found = [layer for layer in model.layers if isinstance(layer, TfIdfLinear)]
    if len(found) != 1:
        raise ValueError(
            f"fit_logistic_regression needs a model with one TfIdfLinear layer (--model=linear), "
            f"received {model.name!r} with {len(found)}"
        )
    return found[0]


def _training_arrays(experiment) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the training batches: (ids, class ids)."""
    ids, labels = [], []
    for x, y in experiment.train:
        ids.append(np.asarray(x))
        labels.append(np.argmax(np.asarray(y), axis=-1))
    if not ids:
        raise ValueError("the experiment's training dataset is empty: nothing to fit")
    return np.concatenate(ids), np.concatenate(labels)


def _sample_weights(labels: np.ndarray, class_weight: dict | None) -> np.ndarray | None:
    if not class_weight:
        return None
    return np.array([class_weight.get(int(label), 1.0) for label in labels], np.float64)


def _set_coefficients(layer, classifier, num_classes: int) -> None:
    """Writes the classifier's coefficients into the layer's table and bias (its idf stays)."""
    table = np.zeros((layer.size, num_classes), np.float32)
    bias = np.full(num_classes, _ABSENT_CLASS_BIAS, np.float32)
    classes = classifier.classes_.astype(int)
    if len(classes) == 2:  # one logit for the second class: split it as two softmax logits
        coefficients = np.stack([-classifier.coef_[0], classifier.coef_[0]]) / 2
        intercepts = np.array([-classifier.intercept_[0], classifier.intercept_[0]]) / 2
    else:
        coefficients, intercepts = classifier.coef_, classifier.intercept_
    table[:, classes] = coefficients.T
    bias[classes] = intercepts
    layer.table.assign(table)
    layer.bias.assign(bias)


def _scores(classifier, features, labels: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(cross-entropy, accuracy) of the classifier, over every class of the run."""
    from sklearn.metrics import log_loss

    probabilities = classifier.predict_proba(features)
    accuracy = float(np.mean(classifier.classes_[np.argmax(probabilities, axis=1)] == labels))
    full = np.full((len(labels), num_classes), 1e-12)
    full[:, classifier.classes_.astype(int)] = probabilities
    return float(log_loss(labels, full, labels=list(range(num_classes)))), accuracy


def choose_regularization(
    features,
    labels: np.ndarray,
    val_features,
    val_labels: np.ndarray,
    num_classes: int,
    inverse_regularizations: Sequence[float] = INVERSE_REGULARIZATIONS,
    sample_weight: np.ndarray | None = None,
) -> tuple[list[RegularizationStep], RegularizationStep, object]:
    """Fits logistic regression at each C (smallest first, each starting from the previous
    fit) and scores it on the validation features (None: no validation, NaN scores, the last
    C kept). Returns the steps, the chosen one (the lowest validation loss, the larger C on
    a tie) and its classifier.

    Example (not run: needs TF-IDF features of a text set):

        steps, chosen, classifier = choose_regularization(x, y, x_val, y_val, num_classes=3)
    """
    import copy

    from sklearn.linear_model import LogisticRegression

    if len(np.unique(labels)) < 2:
        raise ValueError(
            f"logistic regression needs training texts of at least 2 classes, received "
            f"{len(np.unique(labels))}; add texts of the other classes"
        )
    # saga visits the texts in a random order: seeded, a run repeats its fit.
    classifier = LogisticRegression(
        solver="saga", warm_start=True, max_iter=1000, tol=1e-4, random_state=0
    )
    steps, best, chosen = [], None, None
    for inverse_regularization in sorted(inverse_regularizations):
        started = time.perf_counter()
        classifier.set_params(C=inverse_regularization)
        classifier.fit(features, labels, sample_weight=sample_weight)
        loss, accuracy = _scores(classifier, features, labels, num_classes)
        val_loss, val_accuracy = (
            (math.nan, math.nan)
            if val_features is None
            else _scores(classifier, val_features, val_labels, num_classes)
        )
        step = RegularizationStep(
            inverse_regularization,
            loss,
            accuracy,
            val_loss,
            val_accuracy,
            time.perf_counter() - started,
        )
        steps.append(step)
        if best is None or not val_loss > best.val_loss:  # NaN: the only C
            best, chosen = step, copy.deepcopy(classifier)
    return steps, best, chosen


def fit_logistic_regression(
    experiment,
    run_dir: str | Path,
    inverse_regularizations: Sequence[float] = INVERSE_REGULARIZATIONS,
    refit: bool = True,
):
    """Fits the experiment's TfIdfLinear model: C chosen on the validation split, then (with
    `refit`) the final fit at that C on train + validation, with the idf of both. Without
    validation texts a grid cannot be scored: one C is fitted on train, the only one given or
    `UNVALIDATED_INVERSE_REGULARIZATION`. Writes `history.csv` and adds the choice to the
    experiment's report sections. Returns a `trainer.experiment.FitResult` for `finish`, like
    `fit`'s.
    """
    from trainer.experiment import FitResult

    started, cpu_started = time.perf_counter(), time.process_time()
    layer = _linear_layer(experiment.model)
    num_classes = experiment.num_classes
    x_train, y_train = _training_arrays(experiment)
    validated = experiment.x_val is not None and len(experiment.x_val) > 0
    if validated:
        x_val, y_val = np.asarray(experiment.x_val), np.asarray(experiment.y_val).astype(int)
        val_features = tf_idf_matrix(layer, x_val)
    else:
        x_val, y_val, val_features, refit = x_train[:0], y_train[:0], None, False
        if len(inverse_regularizations) > 1:
            inverse_regularizations = (UNVALIDATED_INVERSE_REGULARIZATION,)
    steps, chosen, classifier = choose_regularization(
        tf_idf_matrix(layer, x_train),
        y_train,
        val_features,
        y_val,
        num_classes,
        inverse_regularizations,
        _sample_weights(y_train, experiment.class_weight),
    )
    final = chosen
    if refit:
        x_all, y_all = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
        layer.adapt(x_all)
        features = tf_idf_matrix(layer, x_all)
        fit_started = time.perf_counter()
        classifier.set_params(C=chosen.inverse_regularization)
        classifier.fit(
            features, y_all, sample_weight=_sample_weights(y_all, experiment.class_weight)
        )
        loss, accuracy = _scores(classifier, features, y_all, num_classes)
        final = dataclasses.replace(
            chosen, loss=loss, accuracy=accuracy, seconds=time.perf_counter() - fit_started
        )
        # The final model was fitted on the validation texts: reports and model cards must
        # not call its accuracy on them held out (`held_out_val_accuracy` keeps the estimate).
        experiment.validation_held_out = False
    _set_coefficients(layer, classifier, num_classes)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    history = _write_history(Path(run_dir), [*steps, final] if refit else steps)
    experiment.report_sections["Logistic regression"] = report_section(
        steps, chosen, len(x_train), len(x_val), refit
    )
    where = f"on {len(x_val)} validation texts" if validated else "without validation texts"
    print(
        f"logistic regression: C={chosen.inverse_regularization:g} {where}"
        + (
            f" (loss {chosen.val_loss:.4f}, accuracy {chosen.val_accuracy:.4f})"
            if validated
            else ""
        )
        + (f", refit on {len(x_train) + len(x_val)} texts" if refit else "")
        + f"; {seconds:.1f} s",
        flush=True,
    )
    return FitResult(history, seconds, cpu_seconds, None, [])


def held_out_val_accuracy(run_dir: str | Path) -> float | None:
    """The validation accuracy a run's C was chosen on, when its final model was fitted
    again on train + validation (`refit`): the model's own accuracy on those texts is then
    optimistic (it was fitted on them), and this held-out estimate is what to compare it by
    against models that never saw them. None for any other run: a Keras fit, or a fit
    without refit (its history has no repeated last C).

    Example:

        >>> import tempfile
        >>> from pathlib import Path
        >>> from trainer.logistic_regression import RegularizationStep, _write_history
        >>> from trainer.logistic_regression import held_out_val_accuracy
        >>> run = Path(tempfile.mkdtemp())
        >>> grid = [RegularizationStep(c, 0.5, 0.9, 0.6, acc, 1.0) for c, acc in ((1, 0.8), (10, 0.85))]
        >>> refit = RegularizationStep(10, 0.3, 0.97, 0.6, 0.85, 1.0)
        >>> _ = _write_history(run, [*grid, refit]); held_out_val_accuracy(run)
        0.85
        >>> _ = _write_history(run, grid); held_out_val_accuracy(run) is None
        True
    """
    from trainer.runs import HISTORY_FILE, read_history

    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return None
    history = read_history(path)
    grid = history.get("inverse_regularization", [])
    if len(grid) < 2 or grid[-1] not in grid[:-1] or "val_accuracy" not in history:
        return None
    return history["val_accuracy"][-1]


def _write_history(run_dir: Path, steps: list[RegularizationStep]) -> dict[str, list[float]]:
    """history.csv: one row per fit (`epoch` numbers them); returns its columns."""
    from trainer.files import atomic_write_text
    from trainer.runs import HISTORY_FILE

    columns = [field.name for field in dataclasses.fields(RegularizationStep)]
    rows = [[index, *(getattr(step, name) for name in columns)] for index, step in enumerate(steps)]
    lines = [",".join(["epoch", *columns])]
    lines += [
        ",".join(f"{value:.6g}" if isinstance(value, float) else str(value) for value in row)
        for row in rows
    ]
    atomic_write_text(run_dir / HISTORY_FILE, "\n".join(lines) + "\n")
    history = {name: [float(getattr(step, name)) for step in steps] for name in columns}
    del history["seconds"]
    # Without validation its columns are NaN (the CSV says nan), as Keras logs no val_ keys.
    return {name: values for name, values in history.items() if not all(map(math.isnan, values))}


def report_section(
    steps: Sequence[RegularizationStep],
    chosen: RegularizationStep,
    train_texts: int,
    val_texts: int,
    refit: bool,
) -> str:
    """The report's account of the fit: the grid's validation scores and what was kept."""
    solver = "scikit-learn's LogisticRegression (saga solver, L2 penalty) on the model's TF-IDF"
    if not val_texts:
        return (
            f"{solver} features, fitted on {train_texts:,} training texts at C = "
            f"{chosen.inverse_regularization:g}, not chosen: there were no validation texts "
            "to choose it on (`--val_fraction` above 0 chooses it among "
            f"{', '.join(f'{c:g}' for c in INVERSE_REGULARIZATIONS)}). Training accuracy "
            f"{chosen.accuracy * 100:.2f}%."
        )
    lines = [
        f"{solver} features, fitted on {train_texts:,} training texts for each C below; C = "
        f"{chosen.inverse_regularization:g} had the lowest loss on the {val_texts:,} validation "
        "texts held out of them (the larger C on a tie; the loss ranks C where accuracy on a "
        "few hundred texts ties).",
        "",
        "| C | train loss | train accuracy | validation loss | validation accuracy |",
        "|---:|---:|---:|---:|---:|",
    ]
    for step in steps:
        mark = " (chosen)" if step is chosen else ""
        lines.append(
            f"| {step.inverse_regularization:g}{mark} | {step.loss:.4f} | "
            f"{step.accuracy * 100:.2f}% | {step.val_loss:.4f} | {step.val_accuracy * 100:.2f}% |"
        )
    if chosen is steps[-1] and len(steps) > 1:
        lines += ["", "The largest C scored best: a weaker penalty might score better still."]
    if refit:
        lines += [
            "",
            f"The kept model was then fitted again at C = {chosen.inverse_regularization:g} on "
            f"train + validation ({train_texts + val_texts:,} texts, idf from both): the "
            "learning curves' last point. Its validation columns repeat the held-out numbers "
            "of that C, since the final model has seen the validation texts.",
        ]
    return "\n".join(lines)
