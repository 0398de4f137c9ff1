"""How `trainer compress` trains its candidates: the run's own data, loss and class weights,
Adam with cosine decay, and distillation from a teacher when asked.

Fine-tuning runs at a sixth of the run's peak learning rate unless `--learning_rate` says
otherwise, and the steps of an epoch are the run's own (re-batched by `--batch_size`). This
module must not choose, convert or measure candidates (`trainer.compress.search` does).

Example (not run: needs a trained run folder):

    from trainer.compress import CompressConfig
    from trainer.compress.finetune import FineTuning
    tuning = FineTuning(experiment, CompressConfig(finetune_epochs=2))
    tuning.fit(pruned_model, pruning_callbacks, epochs=2)
"""

import math

import tf_keras as keras

from trainer.compress.options import CompressConfig
from trainer.experiment import Experiment

# Fine-tuning runs at a sixth of the run's peak learning rate unless --learning_rate says
# otherwise (Fashion-MNIST: 5e-4 against 3e-3), QAT and clustering at a fifth of that again.
FINETUNE_FRACTION = 1 / 6
GENTLE_FRACTION = 1 / 5


def batches_per_epoch(dataset) -> int:
    """The batches of one pass over `dataset` (counted once when tf.data does not know)."""
    count = int(dataset.cardinality())
    if count == -1:  # tf.data.INFINITE_CARDINALITY
        raise ValueError(
            "experiment.train repeats forever; build() must return one epoch of batches "
            "(no .repeat()), so compress can count the steps of an epoch"
        )
    if count < 0:  # unknown (e.g. after filter): count it once
        count = sum(1 for _ in dataset)
    return max(1, count)


class FineTuning:
    """Trains candidates on the run's training data with the run's loss.

    Args:
        experiment: what the run's recipe built (its compiled model gives the loss).
        config: the command's options (batch size, learning rate, distillation settings).

    Raises:
        ValueError: the recipe's model is not compiled, or its training data repeats forever.
    """

    def __init__(self, experiment: Experiment, config: CompressConfig):
        self.experiment = experiment
        self.config = config
        loss = experiment.model.loss
        self.loss = keras.losses.get(loss) if isinstance(loss, str) else loss
        if self.loss is None:
            raise ValueError("experiment.model is not compiled: build() must compile it")
        self.steps_per_epoch = batches_per_epoch(experiment.train)
        if config.batch_size > 0:
            examples = self.steps_per_epoch * experiment.batch_size
            self.steps_per_epoch = max(1, math.ceil(examples / config.batch_size))
        self.learning_rate = config.learning_rate or experiment.learning_rate * FINETUNE_FRACTION

    def dataset(self):
        """The run's training batches, re-batched to `--batch_size` when it is set."""
        train = self.experiment.train
        if self.config.batch_size > 0:
            train = train.unbatch().batch(self.config.batch_size)
        return train

    def steps(self, epochs: float) -> int:
        return max(1, int(round(epochs * self.steps_per_epoch)))

    def fit(
        self,
        model: keras.Model,
        callbacks: list,
        epochs: float,
        learning_rate: float | None = None,
        teacher: keras.Model | None = None,
        warmup: bool = False,
    ) -> None:
        """Compiles with the run's loss and trains for `epochs` (fractions allowed) with Adam,
        cosine decay from `learning_rate` (default: the fine-tuning rate).

        With a `teacher`, the model trains as the student of a `Distiller` (the run's loss on
        the hard labels, `temperature` and `alpha` from the options). With `warmup` the
        learning rate rises linearly over the first half epoch, for models trained from
        scratch.
        """
        from trainer.callbacks import EpochLogger
        from trainer.distill import Distiller
        from trainer.optimizers import scheduled_optimizer

        total = self.steps(epochs)
        rounds = max(1, math.ceil(epochs))  # Keras epochs, so callbacks see epoch ends
        optimizer = scheduled_optimizer(
            "adam",
            learning_rate or self.learning_rate,
            steps_per_epoch=self.steps_per_epoch,
            epochs=epochs,
            warmup_epochs=0.5 if warmup else 0.0,
        )
        class_weight = self.experiment.class_weight
        if teacher is None:
            trained = model
            trained.compile(optimizer, self.loss, metrics=["accuracy"])
        else:
            trained = Distiller(
                model, teacher, self.config.temperature, self.config.alpha, student_loss=self.loss
            )
            trained.compile(optimizer=optimizer, metrics=["accuracy"])
            class_weight = None  # the distiller's hard loss is already reduced to a scalar
        trained.fit(
            self.dataset().repeat(),
            epochs=rounds,
            steps_per_epoch=math.ceil(total / rounds),
            class_weight=class_weight,
            callbacks=[*callbacks, EpochLogger()],
            verbose=0,
        )
