"""Losses, optimizers and regularization by name: right objects, right numbers, clear errors."""

import math

import numpy as np
import pytest
import tf_keras as keras

from trainer.losses import SparseCategoricalCrossentropy, build_loss
from trainer.models import small_cnn
from trainer.optimizers import build_optimizer, scheduled_optimizer
from trainer.regularizers import build_regularizer, regularize


def test_sparse_cross_entropy_with_smoothing_equals_one_hot_version():
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], np.float32)
    labels = np.array([0, 2])
    sparse = build_loss("sparse_categorical_crossentropy", label_smoothing=0.2)
    dense = build_loss("categorical_crossentropy", label_smoothing=0.2)
    assert isinstance(sparse, SparseCategoricalCrossentropy)
    expected = float(dense(np.eye(3)[labels], logits))
    assert float(sparse(labels, logits)) == pytest.approx(expected, rel=1e-6)
    # By hand for the first row: targets 0.8+0.2/3 and 0.2/3, softmax cross-entropy.
    log_softmax = logits[0] - math.log(np.exp(logits[0]).sum())
    targets = np.array([0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3])
    assert float(sparse(labels[:1], logits[:1])) == pytest.approx(
        -(targets * log_softmax).sum(), rel=1e-5
    )
    # Without smoothing the stock Keras loss is returned.
    assert (
        type(build_loss("sparse_categorical_crossentropy"))
        is keras.losses.SparseCategoricalCrossentropy
    )


def test_regression_losses_compute_their_formulas():
    y_true, y_pred = np.array([[0.0], [2.0]]), np.array([[0.5], [-1.0]])
    assert float(build_loss("mse")(y_true, y_pred)) == pytest.approx((0.25 + 9) / 2)
    assert float(build_loss("mae")(y_true, y_pred)) == pytest.approx((0.5 + 3) / 2)
    huber = (0.5 * 0.25 + (3 - 0.5)) / 2  # delta 1: quadratic below 1, linear above
    assert float(build_loss("huber")(y_true, y_pred)) == pytest.approx(huber)
    bce = build_loss("binary_crossentropy", from_logits=False, label_smoothing=0.1)
    assert bce.get_config()["label_smoothing"] == 0.1


def test_loss_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'; choose one of mse"):
        build_loss("crossentropy")
    with pytest.raises(ValueError, match="label_smoothing applies to cross-entropy.*'mse'"):
        build_loss("mse", label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing must be in \\[0, 1\\), received 1.5"):
        build_loss("categorical_crossentropy", label_smoothing=1.5)


def test_optimizers_get_their_settings():
    sgd = build_optimizer("sgd", 0.1, momentum=0.8, nesterov=True, clipnorm=1.0, weight_decay=1e-4)
    assert isinstance(sgd, keras.optimizers.SGD)
    config = sgd.get_config()
    assert config["momentum"] == 0.8 and config["nesterov"] and config["clipnorm"] == 1.0
    assert config["weight_decay"] == pytest.approx(1e-4)
    adamw = build_optimizer("adamw", 1e-3, weight_decay=5e-4, clipvalue=0.5)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.get_config()["weight_decay"] == pytest.approx(5e-4)
    assert adamw.get_config()["clipvalue"] == 0.5
    assert isinstance(build_optimizer("adam", 1e-3), keras.optimizers.Adam)
    assert isinstance(build_optimizer("rmsprop", 1e-3), keras.optimizers.RMSprop)


def test_gradient_clipping_by_norm_limits_the_step():
    import tensorflow as tf

    weights = tf.Variable([0.0, 0.0])
    optimizer = build_optimizer("sgd", 1.0, momentum=0.0, clipnorm=1.0)
    optimizer.apply_gradients([(tf.constant([30.0, 40.0]), weights)])
    np.testing.assert_allclose(weights.numpy(), [-0.6, -0.8], rtol=1e-6)  # norm 50 -> 1


def test_optimizer_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'; choose one of sgd"):
        build_optimizer("adagrad", 0.1)
    with pytest.raises(ValueError, match="Adam with weight_decay=0.01 is AdamW"):
        build_optimizer("adam", 0.1, weight_decay=0.01)
    with pytest.raises(ValueError, match="nesterov applies to sgd only, received .*'adamw'"):
        build_optimizer("adamw", 0.1, nesterov=True)
    with pytest.raises(ValueError, match="clipnorm must be a number > 0, received 0"):
        build_optimizer("sgd", 0.1, clipnorm=0)
    with pytest.raises(ValueError, match="learning_rate must be .* received -1"):
        build_optimizer("sgd", -1)


def test_regularize_changes_layers_keeps_weights_and_adds_losses():
    model = small_cnn(width=4, dropout=0.3)
    assert model.losses == []
    regularized = regularize(model, l1=1e-5, l2=1e-3, dropout=0.5, batch_norm_momentum=0.9)
    assert regularized is not model
    assert len(regularized.losses) == 4  # three conv kernels and the logits kernel
    assert regularized.get_layer("dropout").rate == 0.5
    assert regularized.get_layer("stage1_bn").momentum == 0.9
    assert model.get_layer("dropout").rate == 0.3  # the original is untouched
    for before, after in zip(model.get_weights(), regularized.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    kernel = regularized.get_layer("logits").kernel.numpy()
    expected = 1e-5 * np.abs(kernel).sum() + 1e-3 * np.square(kernel).sum()
    assert float(regularized.get_layer("logits").losses[0]) == pytest.approx(expected, rel=1e-4)
    assert build_regularizer() is None
    with pytest.raises(ValueError, match="dropout must be in \\[0, 1\\), received 1.0"):
        regularize(model, dropout=1.0)


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs", "warmup_epochs", "schedule", "warmup_steps", "total_steps"),
    [
        (100, 5, 1.0, "cosine", 100, 500),
        (10, 1, 2.0, "cosine", 9, 10),
        (50, 2, 1.0, "one_cycle", 0, 100),
    ],
)
def test_scheduled_optimizer_warms_up_then_decays(
    steps_per_epoch, epochs, warmup_epochs, schedule, warmup_steps, total_steps
):
    optimizer = scheduled_optimizer(
        "adamw",
        0.01,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        warmup_epochs=warmup_epochs,
        schedule=schedule,
        weight_decay=1e-4,
    )
    rate = optimizer._learning_rate  # the schedule; the public property is its current value
    peak = max(float(rate(step)) for step in range(total_steps))
    assert math.isclose(peak, 0.01, rel_tol=0.02)
    if warmup_steps:
        assert float(rate(0)) == 0.0
        assert math.isclose(float(rate(warmup_steps)), 0.01, rel_tol=1e-5)
    assert float(rate(total_steps)) < 0.01 * 0.05
    with pytest.raises(ValueError, match="steps_per_epoch must be an int >= 1, received 0"):
        scheduled_optimizer("adamw", 0.01, steps_per_epoch=0, epochs=1)
