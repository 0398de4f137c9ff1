"""Knowledge distillation: a `Distiller` model that trains a student on a teacher's soft labels.

The student learns from two signals: the true labels (hard loss) and the teacher's output
distribution softened by a temperature (Hinton et al., 2015), which says how similar the
classes look to the teacher. `Distiller` is a `keras.Model` with its own `train_step`, so it
takes our callbacks, schedules and `tf.data` pipelines through plain `compile`/`fit`. Teacher
and student must both output logits, as every builder in `trainer.models` does. The logic is
written once (`_Distillation`); `Distiller` puts it over tf_keras's `Model`, and given Keras 3
models it is built as the same logic over Keras 3's `Model` (TensorFlow backend), a class
made once from that one source. This module must not build datasets or export models.

Example (not run: needs a trained teacher run; `Distiller`'s own example runs):

    from trainer.distill import Distiller, load_teacher
    from trainer.models import small_cnn
    teacher = load_teacher("runs/fashion_mnist-teacher")
    distiller = Distiller(student=small_cnn(width=8), teacher=teacher, temperature=4.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    distiller.fit(train_dataset, epochs=5, validation_data=test_dataset)
    distiller.student.save("student.keras")
"""

from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from trainer import keras_compat
from trainer.config import check_number
from trainer.keras_path import is_keras3_object


def load_teacher(run_dir: str | Path) -> keras.Model:
    """Loads the trained Keras model of a run directory, frozen, to serve as a teacher.

    Raises:
        FileNotFoundError: the run directory has no `model.keras` (train it first).
    """
    from trainer.runs import MODEL_FILE

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no trained model at {path}; train one first (trainer train RECIPE "
            f"--run_dir={run_dir}) or pass the run directory that holds {MODEL_FILE}"
        )
    teacher = keras.models.load_model(path, compile=False)
    teacher.trainable = False
    return teacher


def distillation_loss(teacher_logits, student_logits, temperature: float):
    """KL(teacher || student) between temperature-softened distributions, times T^2.

    The T^2 factor keeps the soft term's gradient scale independent of the temperature, as in
    Hinton et al., so `alpha` means the same at every temperature.
    """
    temperature = _temperature(temperature)
    teacher_probabilities = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    student_log_probabilities = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    teacher_log_probabilities = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    kl = tf.reduce_sum(
        teacher_probabilities * (teacher_log_probabilities - student_log_probabilities), axis=-1
    )
    return tf.reduce_mean(kl) * temperature**2


def _temperature(value) -> float:
    return check_number("temperature", value, minimum=0, exclusive_minimum=True)


def _hard_loss(labels, logits):
    # One-hot (our pipelines) or integer labels, decided by the label tensor's rank.
    if labels.shape.rank == logits.shape.rank:
        return keras.losses.categorical_crossentropy(labels, logits, from_logits=True)
    return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


class _Distillation:
    """The distiller's logic, over the `Model` of the Keras in `_keras`: see `Distiller`."""

    _keras = keras  # the Keras whose `Model` follows this class in the bases

    def __init__(
        self,
        student,
        teacher,
        temperature: float = 4.0,
        alpha: float = 0.5,
        student_loss=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if is_keras3_object(student) != is_keras3_object(teacher):
            raise TypeError(
                f"student ({type(student).__module__}) and teacher ({type(teacher).__module__}) "
                "come from different Kerases; build both with one, or convert the Keras 3 one "
                "with trainer.keras_path.to_tf_keras(model)"
            )
        keras_compat.require_tensorflow_backend("Distiller", student)
        temperature = _temperature(temperature)
        alpha = check_number("alpha", alpha, minimum=0, maximum=1)
        student_classes, teacher_classes = student.output_shape[-1], teacher.output_shape[-1]
        if student_classes != teacher_classes:
            raise ValueError(
                f"student outputs {student_classes} classes but teacher outputs "
                f"{teacher_classes}; they must predict the same classes"
            )
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.student_loss_fn = student_loss or _hard_loss
        self.loss_tracker = self._keras.metrics.Mean(name="loss")
        self.student_loss_tracker = self._keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = self._keras.metrics.Mean(name="distillation_loss")

    @property
    def metrics(self):
        # Listed here so Keras resets them each epoch, next to the compiled metrics; last, so
        # that where Keras reads results by name (Keras 3's epoch logs) our `loss` wins over
        # Keras 3's own loss tracker, which this train_step leaves unused.
        trackers = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker]
        return [metric for metric in super().metrics if metric not in trackers] + trackers

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _forward(self, x, y, sample_weight, training: bool):
        student_logits = self.student(x, training=training)
        teacher_logits = self.teacher(x, training=False)
        hard = self.student_loss_fn(y, student_logits)
        if sample_weight is not None:
            hard = hard * tf.cast(tf.reshape(sample_weight, tf.shape(hard)), hard.dtype)
        hard = tf.reduce_mean(hard)
        soft = distillation_loss(teacher_logits, student_logits, self.temperature)
        return student_logits, hard, soft

    def train_step(self, data):
        x, y, sample_weight = self._keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            student_logits, hard, soft = self._forward(x, y, sample_weight, training=True)
            loss = self.alpha * hard + (1.0 - self.alpha) * soft
            if self.student.losses:  # weight regularizers of the student
                loss += tf.add_n(self.student.losses)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return self._update_metrics(y, student_logits, loss, hard, soft)

    def test_step(self, data):
        x, y, sample_weight = self._keras.utils.unpack_x_y_sample_weight(data)
        student_logits, hard, soft = self._forward(x, y, sample_weight, training=False)
        loss = self.alpha * hard + (1.0 - self.alpha) * soft
        return self._update_metrics(y, student_logits, loss, hard, soft)

    def _update_metrics(self, y, student_logits, loss, hard, soft):
        self.loss_tracker.update_state(loss)
        self.student_loss_tracker.update_state(hard)
        self.distillation_loss_tracker.update_state(soft)
        # tf_keras keeps the compiled metrics in `compiled_metrics`; Keras 3 in `_compile_metrics`
        # (its `compiled_metrics` is a deprecated shim that would feed every metric, ours too).
        if self._keras is keras:
            self.compiled_metrics.update_state(y, student_logits)
        elif self._compile_metrics is not None:
            self._compile_metrics.update_state(y, student_logits)
        results = {}
        for metric in self.metrics:  # Keras 3's compiled metrics give a dict of results
            result = metric.result()
            results.update(result if isinstance(result, dict) else {metric.name: result})
        return results

    def get_config(self) -> dict:
        return {"temperature": self.temperature, "alpha": self.alpha, "name": self.name}


class Distiller(_Distillation, keras.Model):
    """Trains `student` on `alpha * hard-label loss + (1 - alpha) * T^2 * KL(teacher || student)`.

    The teacher runs in inference mode and is never updated; only the student's weights
    train. Calling the distiller runs the student, so `evaluate`, `predict` and metrics score
    the student. Save `distiller.student`, which is an ordinary model.

    Args:
        student: the model to train (outputs logits).
        teacher: a trained model with the same inputs and number of classes (outputs logits).
        temperature: softens both distributions; 2-8 is usual, higher shares more of the
            teacher's knowledge about similar classes.
        alpha: weight of the hard-label loss in [0, 1]; 1 - alpha goes to the soft loss.
        student_loss: loss on the true labels, `fn(labels, logits)`; default cross-entropy
            from logits, one-hot or integer labels.

    Example:

        >>> import numpy as np
        >>> from trainer import keras
        >>> from trainer.distill import Distiller
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
        >>> y_one_hot = keras.utils.to_categorical((x[:, 0] > 0).astype("int32"), 2)
        >>> def classifier(width):
        ...     hidden = keras.layers.Dense(width, activation="relu")
        ...     return keras.Sequential([keras.Input((8,)), hidden, keras.layers.Dense(2)])
        >>> teacher = classifier(32)
        >>> teacher.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
        >>> _ = teacher.fit(x, y_one_hot, epochs=5, verbose=0)
        >>> distiller = Distiller(classifier(4), teacher, temperature=4.0, alpha=0.5)
        >>> distiller.compile(optimizer="adam", metrics=["accuracy"])
        >>> history = distiller.fit(x, y_one_hot, epochs=3, verbose=0)
        >>> distiller.student.save("student.keras")  # an ordinary model
        >>> distiller.student.count_params() < teacher.count_params()
        True
    """

    def __new__(cls, *args, **kwargs):
        student = kwargs["student"] if "student" in kwargs else (args[0] if args else None)
        if cls is Distiller and is_keras3_object(student):
            twin = _keras3_distiller(keras_compat.keras_of(student))
            distiller = twin.__new__(twin, *args, **kwargs)
            # Not a Distiller subclass, so Python would not call __init__ itself.
            distiller.__init__(*args, **kwargs)
            return distiller
        return super().__new__(cls, *args, **kwargs)


_KERAS3_DISTILLERS: dict[object, type] = {}


def _keras3_distiller(keras3) -> type:
    """The `_Distillation` logic over Keras 3's `Model`, made once per process."""
    if keras3 not in _KERAS3_DISTILLERS:
        attributes = {"_keras": keras3, "__module__": __name__, "__doc__": Distiller.__doc__}
        _KERAS3_DISTILLERS[keras3] = type("Distiller", (_Distillation, keras3.Model), attributes)
    return _KERAS3_DISTILLERS[keras3]
