"""Fit diagnosis: verdict rules on written curves, and real runs built to fail in plain fit.

The real runs go through both Kerases' `fit` (the `keras` fixture: tf_keras and Keras 3).
"""

import io

import numpy as np
import pytest
from kerases import KERASES

from trainer.callbacks import FitDiagnosis
from trainer.diagnosis import Thresholds, diagnose, format_findings

SEED = 0  # seeds 0-6 all checked to give the same verdicts


@pytest.fixture(params=KERASES)
def keras(request):
    return request.param


def kinds(history):
    return [finding.kind for finding in diagnose(history)]


def test_rules_on_written_curves():
    falling = [1.0, 0.7, 0.5, 0.4, 0.35, 0.3]
    assert kinds({"loss": falling, "val_loss": [1.0, 0.75, 0.55, 0.45, 0.4, 0.36]}) == ["good_fit"]
    assert kinds({"loss": falling, "val_loss": [1.0, 0.7, 0.6, 0.65, 0.7, 0.8]}) == ["overfitting"]
    assert kinds({"loss": [1.0, float("nan")]}) == ["divergence"]
    assert kinds({"loss": [1.0, 0.5, 3.0, 40.0]}) == ["divergence"]
    assert kinds({"loss": [1.0, 0.5, 0.7, 0.9]})[0] == "learning_rate_too_high"
    assert kinds({"loss": [1.0, 0.99, 0.98, 0.97, 0.96]}) == ["learning_rate_too_low"]
    plateau = {"loss": [1.0, 0.7, 0.69, 0.69, 0.69, 0.69, 0.69], "accuracy": [0.5] * 7}
    assert kinds(plateau) == ["underfitting"]
    # The same plateau at 97% train accuracy is a converged model, not an underfit one.
    assert kinds({**plateau, "accuracy": [0.97] * 7}) == ["good_fit"]
    assert diagnose({"loss": [1.0, 0.5]}) == []  # too few epochs to judge trends
    stricter = Thresholds(val_rise=0.5)
    assert (
        diagnose({"loss": falling, "val_loss": [1.0, 0.7, 0.6, 0.65, 0.7, 0.8]}, stricter)[0].kind
        == "good_fit"
    )
    with pytest.raises(ValueError, match="needs a 'loss' column, received keys \\['acc'\\]"):
        diagnose({"acc": [0.1]})


def test_findings_carry_numbers_and_remedies():
    finding = diagnose({"loss": [1.0, 0.6, 0.4, 0.3, 0.2], "val_loss": [1.0, 0.6, 0.7, 0.8, 0.9]})[
        0
    ]
    assert finding.kind == "overfitting"
    assert "lowest at epoch 2 (0.6)" in finding.message and "rose to 0.9" in finding.message
    assert any("augmentation" in remedy for remedy in finding.remedies)
    assert any("early stopping" in remedy for remedy in finding.remedies)
    assert not any("never improved" in remedy for remedy in finding.remedies)
    never = diagnose({"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [2.0, 2.2, 2.4, 2.6]})[0]
    assert never.kind == "overfitting" and "batch-norm momentum 0.9" in never.remedies[-1]
    text = format_findings([finding])
    assert text.startswith("- **overfitting** (epoch 5)") and "  - more data" in text


def _fit(model, x, y, validation, epochs, **compile_args):
    model.compile(**compile_args)
    stream = io.StringIO()
    diagnosis = FitDiagnosis(stream=stream)
    history = model.fit(
        x,
        y,
        validation_data=validation,
        epochs=epochs,
        batch_size=len(x),
        verbose=0,
        callbacks=[diagnosis],
    )
    return diagnosis, history, stream.getvalue()


def test_run_built_to_overfit_is_called_overfitting(keras):
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 20)), rng.integers(0, 2, 32)  # random labels: only memorizable
    validation = (rng.normal(size=(200, 20)), rng.integers(0, 2, 200))
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(256, "relu"),
            keras.layers.Dense(256, "relu"),
            keras.layers.Dense(2),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    diagnosis, history, printed = _fit(
        model,
        x,
        y,
        validation,
        40,
        optimizer=keras.optimizers.Adam(3e-3),
        loss=loss,
        metrics=["accuracy"],
    )
    assert [finding.kind for finding in diagnosis.findings] == ["overfitting"]
    assert history.history["accuracy"][-1] == 1.0  # it did memorize the training set
    assert "fit diagnosis: [overfitting]" in printed and "more data" in printed
    assert printed.count("[overfitting]") == 2  # once when first seen, once in the summary


def test_run_built_to_underfit_is_called_underfitting(keras):
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(400, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)  # XOR quadrants: no line separates them
    validation = (x[:100] * -1.0, y[:100])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])  # logistic regression
    loss = keras.losses.BinaryCrossentropy(from_logits=True)
    diagnosis, history, printed = _fit(
        model,
        x,
        y,
        validation,
        15,
        optimizer=keras.optimizers.Adam(0.1),
        loss=loss,
        metrics=["accuracy"],
    )
    assert [finding.kind for finding in diagnosis.findings] == ["underfitting"]
    assert history.history["accuracy"][-1] < 0.7
    assert "bigger model" in printed


def test_diverging_run_is_stopped_and_called_divergence(keras):
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 4)) * 10
    y = x @ np.array([[1.0], [2.0], [3.0], [4.0]])
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    diagnosis, history, printed = _fit(
        model, x, y, None, 50, optimizer=keras.optimizers.SGD(1.0), loss="mse"
    )
    assert diagnosis.findings[0].kind == "divergence"
    assert len(history.history["loss"]) < 50  # stopped early
    assert "lower the learning rate" in printed


def test_tiny_learning_rate_is_called_too_low(keras):
    keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4))
    y = x @ np.array([[1.0], [2.0], [3.0], [4.0]])
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    diagnosis, _, printed = _fit(
        model, x, y, None, 6, optimizer=keras.optimizers.SGD(1e-4), loss="mse"
    )
    assert [finding.kind for finding in diagnosis.findings] == ["learning_rate_too_low"]
    assert "raise the learning rate" in printed


def test_confusion_matrix_and_per_class_plots(tmp_path):
    from trainer.plots import (
        confusion_matrix,
        per_class_accuracy,
        plot_confusion_matrix,
        plot_per_class_accuracy,
    )

    labels = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    predictions = [0, 0, 1, 1, 1, 2, 0, 2, 2]
    matrix = confusion_matrix(labels, predictions, 3)
    np.testing.assert_array_equal(matrix, [[2, 1, 0], [0, 2, 0], [1, 0, 3]])
    np.testing.assert_allclose(per_class_accuracy(labels, predictions, 4)[:3], [2 / 3, 1.0, 0.75])
    assert np.isnan(per_class_accuracy(labels, predictions, 4)[3])  # no examples of class 3
    names = ["shirt", "shoe", "bag"]
    for plot, name in ((plot_confusion_matrix, "cm.png"), (plot_per_class_accuracy, "pc.png")):
        path = plot(labels, predictions, names, tmp_path / name)
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5_000
    with pytest.raises(
        ValueError, match="class indices in \\[0, 3\\), received values from 0 to 5"
    ):
        confusion_matrix([0, 5], [0, 1], 3)
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        confusion_matrix([0, 1], [0], 3)
