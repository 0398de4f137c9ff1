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


def _recipes(argv: list[str]) -> int:
    recipes = list_recipes()
    width = max(map(len, recipes), default=0)
    for name, summary in recipes.items():
        print(f"{name:<{width}}  {summary}")
    return 0


# Each command's module is imported only when it runs, so that `trainer recipes` and `--help`
# stay fast; one small function per command shows which code its name runs.
def _train(argv: list[str]) -> int:
    from trainer.cli import train

    return train.run(argv)


def _data(argv: list[str]) -> int:
    from trainer.cli import data

    return data.run(argv)


def _lr_find(argv: list[str]) -> int:
    from trainer.cli import lr_find

    return lr_find.run(argv)


def _compress(argv: list[str]) -> int:
    from trainer.cli import compress

    return compress.run(argv)


def _export(argv: list[str]) -> int:
    from trainer.cli import export

    return export.run(argv)


def _predict(argv: list[str]) -> int:
    from trainer.cli import predict

    return predict.run(argv)


def _tune(argv: list[str]) -> int:
    from trainer.cli import tune

    return tune.run(argv)


def _auto(argv: list[str]) -> int:
    from trainer.cli import auto

    return auto.run(argv)


# Every command: its line in `trainer --help` ("" for recipes and train, which USAGE describes)
# and the function that runs it on the arguments after its name.
COMMANDS = {
    "recipes": ("", _recipes),
    "train": ("", _train),
    "data": ("check SOURCE: data problems by path; preview SOURCE: augmented samples", _data),
    "lr-find": ("sweep the learning rate on a recipe, plot, suggest one", _lr_find),
    "compress": ("compress a trained run within an accuracy budget", _compress),
    "export": ("convert a run or any saved model to TFLite and verify it", _export),
    "predict": (
        "classify new images or texts with a run or a .tflite file (top-k labels)",
        _predict,
    ),
    "tune": ("search a recipe's hyperparameters with keras-tuner", _tune),
    "auto": ("from data to the most accurate model within --max_kib/--max_ms", _auto),
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
    if command in COMMANDS:
        _, run = COMMANDS[command]
        return run(rest)
    print(f"trainer: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def _usage() -> str:
    extra = "".join(
        f"  {name:<31}  {summary}\n" for name, (summary, _) in COMMANDS.items() if summary
    )
    return USAGE + extra


if __name__ == "__main__":
    raise SystemExit(main())
