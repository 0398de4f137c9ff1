"""The recipe as a keras-tuner `HyperModel`: `build(hp)` is `recipe.build(config)` with the
trial's values, `fit` trains on the recipe's own data and validates on its held-out split.

Two callbacks every trial gets: `DeadlineStop` ends a trial at an epoch end once the search's
time budget is spent, and `PreciseValidation` re-estimates the batch-norm statistics before
each validation pass. keras-tuner comes from `keras_tuner()` (see `keras_tuner_import` for
why), so importing this module imports keras-tuner and TensorFlow; `trainer.tuning` imports it
only when a search starts.
"""

import math
import time

import tf_keras as keras

from trainer.batch_norm import recalibrate_batch_norm
from trainer.experiment import validation_dataset
from trainer.tuning.keras_tuner_import import keras_tuner
from trainer.tuning.options import OBJECTIVE, PRECISE_BN_BATCHES
from trainer.tuning.space import trial_config

kt = keras_tuner()


class DeadlineStop(keras.callbacks.Callback):
    """Stops the trial at the end of an epoch once the search's deadline has passed."""

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline

    def on_epoch_end(self, epoch, logs=None):
        if self.deadline is not None and time.time() >= self.deadline:
            self.model.stop_training = True


class PreciseValidation(keras.callbacks.Callback):
    """Re-estimates the batch-norm statistics on training batches before each validation
    pass (`trainer.batch_norm.recalibrate_batch_norm`), so that a trial is scored the way
    `trainer train` scores its final model. Without it a short trial validates with moving
    statistics that still hold the initial weights' (measured: Fashion-MNIST, 10,000
    images, 1 epoch: 10% to 24% validation accuracy for configurations that reach 73% to
    84% at 3 epochs), and Hyperband's 1-epoch round ranks noise."""

    def __init__(self, train, batches: int):
        super().__init__()
        self.train, self.batches = train, batches

    def on_test_begin(self, logs=None):
        recalibrate_batch_norm(self.model, self.train, batches=self.batches)


class RecipeHyperModel(kt.HyperModel):
    """A keras-tuner `HyperModel` over a recipe: `build(hp)` is `recipe.build(config)` with
    the trial's values; `fit` trains on the recipe's own data (pass no x or y).

    Example:

        hypermodel = recipe_hypermodel(digits, digits.Config(), "width=8,16", max_epochs=3)
        tuner = keras_tuner().RandomSearch(hypermodel, objective="val_accuracy",
                                           max_trials=2, directory="/tmp/kt")
        tuner.search()
    """

    def __init__(self, recipe, base_config, space, max_epochs=0, patience=3):
        super().__init__(name=getattr(recipe, "__name__", "recipe"))
        self.recipe, self.base_config, self.space = recipe, base_config, list(space)
        self.max_epochs, self.patience = max_epochs, patience
        self.deadline: float | None = None
        self.declare_only = False  # keras-tuner's space exploration: skip recipe.build
        self.experiment = None
        self.epochs_run = 0

    def declare_hyperparameters(self, hp):
        for dimension in self.space:
            dimension.declare(hp)

    def build(self, hp):
        values = {dimension.name: dimension.declare(hp) for dimension in self.space}
        if self.declare_only:
            return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        config = trial_config(self.base_config, values, self.max_epochs)
        experiment = self.recipe.build(config)
        if experiment.x_val is None or len(experiment.x_val) == 0:
            raise ValueError(
                f"recipe {self.name!r} returned no validation set from build(config): a "
                "search scores trials on validation data held out of the training data "
                "(never the test set); set Experiment.x_val/y_val"
            )
        if not experiment.validation_held_out:
            raise ValueError(
                f"recipe {self.name!r} validates on data it also trains on "
                "(validation_held_out=False): a search needs a held-out validation set"
            )
        self.experiment = experiment
        return experiment.model

    def fit(self, hp, model, *args, **kwargs):
        if args or "x" in kwargs:
            raise TypeError("RecipeHyperModel trains on the recipe's data: pass no x or y")
        experiment, self.experiment = self.experiment, None  # release the data after
        if experiment is None or experiment.model is not model:
            raise RuntimeError("RecipeHyperModel.fit needs the model its build() returned")
        callbacks = list(kwargs.pop("callbacks", []))
        callbacks.append(keras.callbacks.TerminateOnNaN())
        if self.patience:
            callbacks.append(
                keras.callbacks.EarlyStopping(OBJECTIVE, patience=self.patience, mode="max")
            )
        callbacks.append(DeadlineStop(self.deadline))
        callbacks.append(PreciseValidation(experiment.train, PRECISE_BN_BATCHES))
        history = model.fit(
            experiment.train,
            validation_data=validation_dataset(experiment),
            epochs=kwargs.pop("epochs", self.max_epochs or experiment.epochs),
            initial_epoch=kwargs.pop("initial_epoch", 0),
            class_weight=experiment.class_weight,
            callbacks=callbacks,
            verbose=kwargs.pop("verbose", 0),
        )
        losses = history.history.get("loss", [])
        self.epochs_run = len(losses)
        for epoch, loss in enumerate(losses, start=1):
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {loss} in epoch {epoch} (learning rate too "
                    "high for this combination?)"
                )
        if OBJECTIVE not in history.history:
            raise ValueError(
                f"the model reports no {OBJECTIVE}: compile it with metrics=['accuracy'] "
                f"(it reported: {', '.join(history.history)})"
            )
        return history
