"""The `trainer` command: list recipes and run them.

    trainer recipes                               one line per recipe
    trainer train RECIPE [--key=value ...]        RECIPE: a name (fashion_mnist) or a .py path
    trainer train RECIPE --help                   every option with its default and comment

A recipe is a module with a `Config` dataclass and `main(config) -> dict`. This module finds
and loads recipes and hands them the parsed config; it must not contain training logic.
"""

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from trainer.config import ConfigError, parse_args
from trainer.keras_path import import_tensorflow_quietly
from trainer.recipe_loader import list_recipes, load_recipe

USAGE = """usage: trainer COMMAND [options]

commands:
  recipes                          list the recipes with one line each
  train RECIPE [--key=value ...]   run a recipe (a name from `trainer recipes` or a .py file)
                                   `trainer train RECIPE --help` lists its options
  train --resume=RUN_DIR           continue a killed run from its last backup, same config
"""

# Subcommands implemented in their own modules: name -> ("module", "function", one-line help).
# Each function takes the remaining arguments (list[str]) and returns an exit code; modules are
# imported only when their command runs, so `trainer recipes` stays fast.
COMMANDS: dict[str, tuple[str, str, str]] = {}
COMMANDS["data check"] = (
    "trainer.data.check",
    "cli_main",
    "check a data source and write data_report/",
)
COMMANDS["data preview"] = ("trainer.data.preview", "cli_main", "PNG grid of augmented samples")
COMMANDS["compress"] = (
    "trainer.compression",
    "cli_main",
    "compress a trained run within an accuracy budget",
)
COMMANDS["lr-find"] = (
    "trainer.lr_finder",
    "cli_main",
    "sweep the learning rate, plot, suggest one",
)


def run_recipe(config_class: type, main: Callable, argv: list[str], program: str) -> int:
    """Parses `argv` into `config_class` and runs `main`.

    Config errors exit with 2; a missing file or bad data (FileNotFoundError, ValueError,
    e.g. a truncated IDX file) exits with 1 and its message, without a traceback unless
    TRAINER_DEBUG=1 is set.
    """
    try:
        config = parse_args(config_class, argv, program=program)
    except (ConfigError, FileNotFoundError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    try:
        main(config)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        if os.environ.get("TRAINER_DEBUG"):
            raise
        print(
            f"{program}: error: {error}\n(set TRAINER_DEBUG=1 for the traceback)", file=sys.stderr
        )
        return 1
    return 0


def _recipe_name(module: ModuleType) -> str:
    return Path(inspect.getfile(module)).stem


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
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
        if any(arg.startswith("--resume") for arg in rest):
            rest = _resume_arguments(rest)
            if rest is None:
                return 2
        if not rest or rest[0].startswith("-"):
            print("usage: trainer train RECIPE [--key=value ...]", file=sys.stderr)
            print("recipes: " + ", ".join(list_recipes()), file=sys.stderr)
            return 2
        import_tensorflow_quietly()
        try:
            module = load_recipe(rest[0])
        except (ValueError, FileNotFoundError, TypeError) as error:
            print(f"trainer train: error: {error}", file=sys.stderr)
            return 2
        program = f"trainer train {_recipe_name(module)}"
        return run_recipe(module.Config, module.main, rest[1:], program)
    for name in sorted(COMMANDS, key=len, reverse=True):
        words = name.split()
        if argv[: len(words)] == words:
            module_name, function_name, _ = COMMANDS[name]
            function = getattr(importlib.import_module(module_name), function_name)
            return int(function(argv[len(words) :]) or 0)
    print(f"trainer: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
    return 2


def _resume_arguments(rest: list[str]) -> list[str] | None:
    """`train --resume=RUN_DIR` -> the recipe and options saved in RUN_DIR (None on error)."""
    from trainer.checkpoint import has_backup, resume_arguments

    resume = [arg for arg in rest if arg.startswith("--resume")]
    others = [arg for arg in rest if not arg.startswith("--resume")]
    run_dir = resume[0].partition("=")[2]
    if len(resume) > 1 or not run_dir or others:
        print(
            "trainer train: error: use `trainer train --resume=RUN_DIR` alone: the run continues "
            f"with its saved config.yaml; received {' '.join(rest)}",
            file=sys.stderr,
        )
        return None
    try:
        recipe, options = resume_arguments(run_dir)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"trainer train: error: {error}", file=sys.stderr)
        return None
    print(f"resuming {run_dir} (recipe {recipe})", flush=True)
    if not has_backup(run_dir):
        print(
            f"note: {run_dir} holds no training backup (the recipe ran with backup_every=0, or "
            "was killed before its first backup): training starts again from epoch 1",
            flush=True,
        )
    return [recipe, *options]


def _usage() -> str:
    extra = "".join(f"  {name:<31}  {help}\n" for name, (_, _, help) in COMMANDS.items())
    return USAGE + extra


if __name__ == "__main__":
    raise SystemExit(main())
