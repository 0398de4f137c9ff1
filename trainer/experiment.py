"""The recipe contract: `build(config) -> Experiment`, then `train` and `finish`.

Every recipe is a module with a flat `Config` dataclass, `build(config) -> Experiment` and
`main(config) -> dict`. `build` loads the data and returns the compiled model with everything a
command needs, writing nothing; `main` reads top to bottom as build -> start the run folder ->
`train` (one `model.fit` with our callbacks) -> `finish` (save, export, verify, plots,
diagnosis, report, metrics). Every command uses the same `build`: `trainer compress` rebuilds a
run's data through the recipe that made it, `trainer lr-find` sweeps its model, and `trainer
tune` searches over its config. There is no `Trainer` class: the model is a plain compiled
`tf_keras` model, and `fit` is Keras's own.

This module owns the `Experiment` type and the shared fit/finish steps; it must not know any
particular recipe or data format.

Example (a complete recipe, see README "Write your own recipe"):

    from dataclasses import dataclass
    from trainer.experiment import Experiment, finish, start_run, train

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
        return finish(experiment, run_dir, train(experiment, run_dir))
"""

import dataclasses
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
