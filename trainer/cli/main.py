"""The `trainer` command: list recipes and run them.

    trainer recipes                               one line per recipe
    trainer train RECIPE [--key=value ...]        RECIPE: a name (fashion_mnist) or a .py path
    trainer train RECIPE --help                   every option with its default and comment

A recipe is a module with a `Config` dataclass and `main(config) -> dict`. This module finds
and loads recipes and hands them the parsed config; it must not contain training logic.
"""

import sys

from trainer.cli.errors import report_error
from trainer.recipe_loader import list_recipes

USAGE = """usage: trainer COMMAND [options]

commands:
  recipes                          list the recipes with one line each
  train RECIPE [--key=value ...]   run a recipe (a name from `trainer recipes` or a .py file)
                                   `trainer train RECIPE --help` lists its options
  train --resume=RUN_DIR           continue a killed run from its last backup, same config
                                   (--restart: from epoch 1; --key=value: resumable options)
"""

# One line of `trainer --help` per command; `_dispatch` maps each name to its module below.
COMMANDS = {
    "data": "check SOURCE: data problems by path; preview SOURCE: augmented samples",
    "lr-find": "sweep the learning rate on a recipe, plot, suggest one",
    "compress": "compress a trained run within an accuracy budget",
    "export": "convert a run or any saved model to TFLite and verify it",
    "predict": "classify new images or texts with a run or a .tflite file (top-k labels)",
    "tune": "search a recipe's hyperparameters with keras-tuner",
}


def main(argv: list[str] | None = None) -> int:
    """Runs one `trainer` command and returns its exit code.

    The error boundary of every command: bad options exit 2, a bad path, file, disk or data
    exits 1, each as one paragraph without a traceback (`TRAINER_DEBUG=1` shows it).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except (Exception, KeyboardInterrupt) as error:
        return report_error(error, " ".join(["trainer", *argv[:1]]))


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    # An explicit chain: each command's module is imported only when it runs, so that
    # `trainer recipes` and `--help` stay fast and a reader sees which code each name runs.
    if command == "recipes":
        recipes = list_recipes()
        width = max(map(len, recipes), default=0)
        for name, summary in recipes.items():
            print(f"{name:<{width}}  {summary}")
        return 0
    if command == "train":
        from trainer.cli import train

        return train.run(rest)
    if command == "data":
        from trainer.cli import data

        return data.run(rest)
    if command == "lr-find":
        from trainer.cli import lr_find

        return lr_find.run(rest)
    if command == "compress":
        from trainer.cli import compress

        return compress.run(rest)
    if command == "export":
        from trainer.cli import export

        return export.run(rest)
    if command == "predict":
        from trainer.cli import predict

        return predict.run(rest)
    if command == "tune":
        from trainer.cli import tune

        return tune.run(rest)
    print(f"trainer: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def _usage() -> str:
    extra = "".join(f"  {name:<31}  {help}\n" for name, help in COMMANDS.items())
    return USAGE + extra


if __name__ == "__main__":
    raise SystemExit(main())
