"""`trainer export MODEL_OR_RUN`: convert any saved tf_keras model to TFLite and verify it.

    trainer export runs/fashion_mnist-20261125-131500            the run's own test set
    trainer export my_model.keras --data=photos/ --format=int8   a user's model on a folder

MODEL_OR_RUN is a run folder (`model.keras`, `run.json`, `config.yaml`) of any recipe, or any
saved tf_keras model: a `.keras` file, a SavedModel folder or an `.h5` file. A run is verified
on its recipe's test set; a bare model on `--data`, its images resized to the model's input and
divided by `--scale`. Each file is scored with LiteRT against the Keras model (and image files
with MediaPipe Tasks too) and gets a sidecar JSON with its labels and input numbers. The
command exits 1 when a format is over its accuracy budget (after writing the files and the
table) and refuses a model at chance level.

This module parses options and prints; loading, data and verification live in
`trainer.export.saved`, and errors become messages in `trainer.cli.errors`.
"""

import dataclasses
from pathlib import Path

from trainer.config import ConfigError
from trainer.export.saved import ExportOptions

PROGRAM = "trainer export MODEL_OR_RUN"


@dataclasses.dataclass
class ExportConfig(ExportOptions):
    """`trainer export`'s options (documented beside each field of `ExportOptions`)."""


def run(argv: list[str]) -> int:
    """`trainer export MODEL_OR_RUN [--key=value ...]`: see `--help` for the options.

    Returns 0 when every file is within its accuracy budget; raises otherwise (the caller,
    `trainer.cli.main`, turns the error into a message and an exit code).
    """
    from trainer.config import help_text, parse_args
    from trainer.keras_path import import_tensorflow_quietly

    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(ExportConfig, PROGRAM))
        print("\nexamples:\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    if argv[0].startswith("-"):
        raise ConfigError(
            f"the first argument must be a run folder or a saved model, received {argv[0]!r}"
        )
    config = parse_args(ExportConfig, argv[1:], program=PROGRAM)
    import_tensorflow_quietly()
    from trainer.export.saved import export_prepared, over_budget_message, prepare
    from trainer.report import export_table

    job = prepare(argv[0], config)
    print(f"verifying on {job.data.description}", flush=True)
    outcome = export_prepared(job, config)
    print(export_table(outcome.keras_accuracy, outcome.keras_size, outcome.results))
    for result in outcome.results:
        print(f"wrote {result.path} and {Path(result.sidecar_path).name}")
    if outcome.over_budget:
        raise ValueError(over_budget_message(outcome))
    return 0
