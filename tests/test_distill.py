"""Distiller: the loss formula, training lowers the loss and leaves the teacher alone, the student
saves and reloads, our callbacks and schedules work, bad arguments are rejected."""

import numpy as np
import pytest
import tensorflow as tf
from kerases import KERASES, tf_keras

from conftest import make_class_images
from trainer.callbacks import LearningRateLogger
from trainer.distill import Distiller, distillation_loss, load_teacher
from trainer.models import small_cnn


@pytest.fixture(scope="module", params=KERASES)
def keras(request):
    """tf_keras, then Keras 3: the same Distiller class takes either's models."""
    return request.param


def cnn(keras, width, num_classes=10):
    """trainer's small CNN (tf_keras); for Keras 3 the same layers from Keras 3."""
    if keras is tf_keras:
        return small_cnn(width=width, dropout=0.0, num_classes=num_classes)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(width * 2, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(num_classes),
        ]
    )


@pytest.fixture(scope="module")
def data():
    x, y = make_class_images(256, seed=5)
    return x[..., None].astype(np.float32) / 255.0, y, np.eye(10, dtype=np.float32)[y]


@pytest.fixture(scope="module")
def teacher(data, keras):
    x, _, y_one_hot = data
    keras.utils.set_random_seed(0)
    model = cnn(keras, 8)
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.CategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y_one_hot, epochs=3, batch_size=32, verbose=0)
    return model


def test_distillation_loss_matches_the_formula():
    teacher_logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]], np.float32)
    student_logits = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5]], np.float32)
    temperature = 3.0

    def softmax(z):
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p, q = softmax(teacher_logits / temperature), softmax(student_logits / temperature)
    expected = np.mean(np.sum(p * np.log(p / q), axis=-1)) * temperature**2
    got = float(
        distillation_loss(tf.constant(teacher_logits), tf.constant(student_logits), temperature)
    )
    assert got == pytest.approx(expected, rel=1e-5)
    same = float(
        distillation_loss(tf.constant(teacher_logits), tf.constant(teacher_logits), temperature)
    )
    assert same == pytest.approx(0.0, abs=1e-6)


def test_training_lowers_the_loss_and_never_touches_the_teacher(data, teacher, keras, tmp_path):
    x, y, y_one_hot = data
    teacher_weights = [weight.copy() for weight in teacher.get_weights()]
    keras.utils.set_random_seed(1)
    student = cnn(keras, 4)
    distiller = Distiller(student, teacher, temperature=4.0, alpha=0.3)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=40)
    distiller.compile(optimizer=keras.optimizers.Adam(schedule), metrics=["accuracy"])
    history = distiller.fit(
        x, y_one_hot, epochs=5, batch_size=32, verbose=0, callbacks=[LearningRateLogger()]
    ).history
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]
    assert history["learning_rate"][-1] < history["learning_rate"][0]  # the schedule ran
    for before, after in zip(teacher_weights, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    # The distiller scores its student; integer labels work too.
    accuracy = np.mean(np.argmax(student.predict(x, verbose=0), axis=-1) == y)
    assert accuracy > 0.3
    sparse = Distiller(student, teacher)
    sparse.compile(optimizer="adam")
    assert np.isfinite(sparse.evaluate(x, y, verbose=0, return_dict=True)["student_loss"])
    # The student is an ordinary model: it saves and reloads with the same predictions.
    student.save(tmp_path / "student.keras")
    reloaded = keras.models.load_model(tmp_path / "student.keras")
    np.testing.assert_allclose(
        reloaded.predict(x[:8], verbose=0), student.predict(x[:8], verbose=0), atol=1e-6
    )


def test_alpha_one_is_plain_training(data, teacher, keras):
    """With alpha=1 the teacher has no say: the result equals training on labels alone."""
    x, _, y_one_hot = data
    results = []
    for use_distiller in (True, False):
        keras.utils.set_random_seed(2)
        student = cnn(keras, 4)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        if use_distiller:
            model = Distiller(student, teacher, alpha=1.0, student_loss=loss)
            model.compile(optimizer=keras.optimizers.SGD(0.05))
        else:
            model = student
            model.compile(keras.optimizers.SGD(0.05), loss)
        model.fit(x[:64], y_one_hot[:64], epochs=1, batch_size=32, shuffle=False, verbose=0)
        results.append(student.predict(x[:8], verbose=0))
    np.testing.assert_allclose(results[0], results[1], atol=1e-4)


def test_bad_arguments_are_rejected(teacher, keras):
    with pytest.raises(ValueError, match="-1"):
        Distiller(cnn(keras, 4), teacher, temperature=-1)
    with pytest.raises(ValueError, match="1.5"):
        Distiller(cnn(keras, 4), teacher, alpha=1.5)
    with pytest.raises(ValueError, match="3 classes"):
        Distiller(cnn(keras, 4, num_classes=3), teacher)
    other = tf_keras if keras is not tf_keras else __import__("keras")
    with pytest.raises(TypeError, match="come from different Kerases.*to_tf_keras"):
        Distiller(cnn(other, 4), teacher)


def test_load_teacher_from_a_run_directory(tmp_path):
    teacher = small_cnn(width=4)  # a run folder's model is tf_keras
    with pytest.raises(FileNotFoundError, match="trainer train"):
        load_teacher(tmp_path)
    teacher.save(tmp_path / "model.keras")
    loaded = load_teacher(tmp_path)
    assert not loaded.trainable
    assert loaded.count_params() == teacher.count_params()
