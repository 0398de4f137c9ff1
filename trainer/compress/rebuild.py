"""The run that `trainer compress` starts from: its recipe, config, data and trained model.

`rebuild_run` rebuilds a run through the recipe that made it (`run.json` names it, and
`config.yaml` holds its config), so the data, preprocessing, loss and learning rate are the
run's own, whatever the recipe. `run_model` reads its model (`load_original`),
`refuse_untrained` refuses a model that never learned, and `student_factory` says how to
make a distillation student of the run's own architecture.

This module must not train, convert or measure models (`trainer.compress.search` does).

Example (not run: needs a trained run folder):

    from trainer.compress.rebuild import rebuild_run
    recipe, config, experiment = rebuild_run("runs/fm")
    print(len(experiment.x_val), experiment.class_names)
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import tf_keras as keras

from trainer.compress.options import CompressConfig
from trainer.compression import prune_filters
from trainer.experiment import Experiment

STUDENT_RATIO = 0.5  # filters removed from the original for a student of a width-less recipe

# Makes the untrained distillation student: (model, settings for the candidate's name, a
# phrase for the log and the report).
StudentFactory = Callable[[], tuple[keras.Model, str, str]]


def rebuild_run(run_dir: str | Path) -> tuple[ModuleType, Any, Experiment]:
    """The recipe module, its config and `recipe.build(config)` for the run in `run_dir`.

    Raises:
        FileNotFoundError: `run.json` or `config.yaml` is missing, or names a recipe file that
            no longer exists.
        ValueError: `run.json` names no recipe, or the recipe has no `build` (the recipe
            contract), or its `build` returned no validation data.
    """
    from trainer.recipe_loader import build_experiment, load_run_recipe

    recipe, config = load_run_recipe(run_dir, "rebuild the run's data and model for compress")
    recipe_name = recipe.__name__
    if getattr(config, "precision", "float32") != "float32":
        # TF-MOT's fake-quantization and clustering ops take float32 only (measured: bfloat16
        # inputs fail in FakeQuantWithMinMaxVars and KmeansPlusPlusInitialization).
        print(f"compress fine-tunes in float32 (the run's precision: {config.precision})")
        config = dataclasses.replace(config, precision="float32")
    experiment = build_experiment(recipe, config, "rebuild the run's data for compress")
    if experiment.x_val is None or experiment.y_val is None or len(experiment.x_val) == 0:
        raise ValueError(
            f"recipe {recipe_name!r} built no validation data for {run_dir} (x_val is None). "
            "Compress chooses candidates on validation data, never on the test set: train the "
            "run again with a validation share (e.g. --validation_size=N if the recipe has it)"
        )
    from trainer.logistic_regression import held_out_val_accuracy

    if held_out_val_accuracy(run_dir) is not None:
        # a linear text run fitted again on train + validation: selection on those texts is
        # biased, and compress's report says so
        experiment.validation_held_out = False
    return recipe, config, experiment


def load_original(path: str | Path) -> keras.Model:
    """The run's trained model; a truncated or unreadable file fails with a one-paragraph
    ValueError naming it, not a traceback from h5py or zipfile."""
    import zipfile

    from trainer.export.saved import model_file_problem

    problem = model_file_problem(path)
    if problem:
        raise ValueError(
            f"{problem}. Train the run again, or copy model.keras from where it was made."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} could not be read as a Keras model ({type(error).__name__}: {reason}); "
            "the file is probably truncated or was written by an interrupted run. Train the run "
            "again, or copy model.keras from where it was made."
        ) from None


def run_model(run_dir: str | Path) -> keras.Model:
    """The run's trained model as compress starts from it: without its test-time flip (the
    candidates do not average an image with its mirror image) and in float32 (a mixed-precision
    run is compressed as its float32 copy, the same weights)."""
    from trainer.models.image import without_test_time_flip
    from trainer.precision import float32_copy
    from trainer.runs import MODEL_FILE

    loaded = load_original(Path(run_dir) / MODEL_FILE)
    original = without_test_time_flip(loaded)
    if original is not loaded:
        print(
            "compress works on the model without its test-time flip (the run's model averages "
            "the logits of each image and its mirror image; its candidates do not)"
        )
    return float32_copy(original)


def student_factory(
    recipe: ModuleType, recipe_config: Any, original: keras.Model, config: CompressConfig
) -> StudentFactory:
    """How to make the distillation student: the run's own architecture, shrunk.

    If the recipe's Config has a `width`, the student is `recipe.build(config with width
    halved, at least 4, or --student_width)`'s fresh model; otherwise the original with half
    its filters removed (`prune_filters`) and its weights re-initialised.
    """
    if hasattr(recipe_config, "width"):
        width = config.student_width or max(4, int(recipe_config.width) // 2)

        def build_student() -> tuple[keras.Model, str, str]:
            smaller = dataclasses.replace(recipe_config, width=width)
            model = recipe.build(smaller).model
            return model, f"width={width}", f"the recipe's model at width={width}"

        return build_student

    def prune_student() -> tuple[keras.Model, str, str]:
        pruned = prune_filters(original, STUDENT_RATIO, criterion="l1")
        if pruned.count_params() >= original.count_params():
            raise ValueError("no layer of the model can lose filters")
        # clone_model builds new layers from the config: fresh, re-initialised weights.
        fresh = keras.models.clone_model(pruned)
        description = f"the original without {STUDENT_RATIO:.0%} of its filters, re-initialised"
        return fresh, f"ratio={STUDENT_RATIO:g}", description

    return prune_student


def refuse_untrained(
    val_accuracy: float, y_val: np.ndarray, test_accuracy: float, y_test: np.ndarray
) -> None:
    """Fails when the original scores at chance on validation or test data: compressing a
    model that never learned would only measure noise (and may call noise "within budget")."""
    from trainer.diagnosis import CHANCE_MARGIN, at_chance, majority_share

    for split, accuracy, labels in (
        ("validation", val_accuracy, y_val),
        ("test", test_accuracy, y_test),
    ):
        if at_chance(accuracy, labels):
            raise ValueError(
                f"the run's model never learned: its {split} accuracy {accuracy:.1%} is at "
                f"chance level (the majority class is {majority_share(labels):.1%} of the "
                f"{split} labels, +{CHANCE_MARGIN * 100:g} pp). There is nothing to compress. "
                "Train it again with more epochs (or a smaller batch size, for more steps) and "
                "read the fit diagnosis in the run's report.md for what else to change."
            )
