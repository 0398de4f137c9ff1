"""The `trainer` command: list recipes and run them.

    trainer recipes                               one line per recipe
    trainer train RECIPE [--key=value ...]        RECIPE: a name (fashion_mnist) or a .py path
    trainer train RECIPE --help                   every option with its default and comment

A recipe is a module with a `Config` dataclass and `main(config) -> dict`. This module finds
and loads recipes and hands them the parsed config; it must not contain training logic.
"""

import importlib
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

# Subcommands implemented in their own modules: name -> ("module", "function", one-line help).
# Each function takes the remaining arguments (list[str]) and returns an exit code; modules are
# imported only when their command runs, so `trainer recipes` stays fast.
COMMANDS: dict[str, tuple[str, str, str]] = {}
COMMANDS["data"] = (
    "trainer.cli.data",
    "run",
    "check SOURCE: data problems by path; preview SOURCE: augmented samples",
)
COMMANDS["compress"] = (
    "trainer.cli.compress",
    "run",
    "compress a trained run within an accuracy budget",
)
COMMANDS["lr-find"] = (
    "trainer.cli.lr_find",
    "run",
    "sweep the learning rate, plot, suggest one",
)
COMMANDS["export"] = ("trainer.cli.export", "run", "convert a saved model to TFLite and verify it")


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
    if command == "recipes":
        recipes = list_recipes()
        width = max(map(len, recipes), default=0)
        for name, summary in recipes.items():
            print(f"{name:<{width}}  {summary}")
        return 0
    if command == "train":
        from trainer.cli.train import run

        return run(rest)
    for name in sorted(COMMANDS, key=len, reverse=True):
        words = name.split()
        if argv[: len(words)] == words:
            module_name, function_name, _ = COMMANDS[name]
            function = getattr(importlib.import_module(module_name), function_name)
            return int(function(argv[len(words) :]) or 0)
    print(f"trainer: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def _usage() -> str:
    extra = "".join(f"  {name:<31}  {help}\n" for name, (_, _, help) in COMMANDS.items())
    return USAGE + extra


if __name__ == "__main__":
    raise SystemExit(main())
