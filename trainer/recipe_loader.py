"""Finding and loading recipes: a name from the `recipes` package or a `.py` file path.

A recipe is a module with a `Config` dataclass and `main(config) -> dict`; those following the
full contract also have `build(config) -> Experiment` (see `trainer.experiment`). Commands
(`train`, `compress`, `lr-find`, `tune`) and library code that rebuilds a run (compress) load
recipes through here. Recipes are imported by name at run time, never by a static import, so
library modules stay below `recipes/` in the layering. This module must not run recipes.
"""

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _recipes_package() -> ModuleType:
    return importlib.import_module("recipes")


def list_recipes() -> dict[str, str]:
    """Maps each recipe name to the first line of its docstring."""
    package = _recipes_package()
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        spec = info.module_finder.find_spec(f"recipes.{info.name}", None)
        summary = ""
        if spec and spec.origin:
            summary = _first_docstring_line(Path(spec.origin))
        found[info.name] = summary
    return dict(sorted(found.items()))


def _first_docstring_line(path: Path) -> str:
    # Read the docstring without importing: listing recipes must not load TensorFlow.
    import ast

    try:
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    except SyntaxError:
        return "(syntax error in recipe)"
    return (doc or "").strip().splitlines()[0] if doc else ""


def load_recipe(name_or_path: str) -> ModuleType:
    """Imports a recipe by name (`fashion_mnist`) or from a file path (`my/recipe.py`)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {name_or_path!r} does not exist")
        if path.suffix != ".py":
            raise ValueError(
                f"recipe {name_or_path!r} is not a .py file; pass a recipe name "
                f"({', '.join(list_recipes())}) or the path of a recipe .py file"
            )
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        available = list_recipes()
        if name_or_path not in available:
            raise ValueError(
                f"unknown recipe {name_or_path!r}; available: {', '.join(available)} "
                "(or pass a path to a recipe .py file)"
            )
        module = importlib.import_module(f"recipes.{name_or_path}")
    for attribute in ("Config", "main"):
        if not hasattr(module, attribute):
            raise TypeError(
                f"recipe {name_or_path!r} has no `{attribute}`: a recipe defines a Config "
                "dataclass and main(config) -> dict"
            )
    return module


def load_recipe_argument(name_or_path: str) -> ModuleType:
    """The recipe a command line names (`trainer train RECIPE`, `trainer tune RECIPE`), loaded
    with TensorFlow's start-up messages quiet.

    A recipe that cannot be found or loaded is a bad argument, so every failure is raised as
    `ConfigError` (exit 2 at the command-line boundary) with the name received and what to do.
    """
    from trainer.config import ConfigError
    from trainer.keras_path import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        return load_recipe(name_or_path)
    except SyntaxError as error:
        raise ConfigError(
            f"recipe file {error.filename} has a syntax error at line {error.lineno}: "
            f"{error.msg}; fix it and run again"
        ) from None
    except (ValueError, FileNotFoundError, TypeError) as error:
        raise ConfigError(str(error)) from None


def load_run_recipe(run_dir: str | Path, needed_for: str) -> tuple[ModuleType, Any]:
    """The recipe that made the run in `run_dir` and the run's saved config.

    `run.json` names the recipe (a recipe outside the `recipes` package by its file);
    `config.yaml` is parsed back into the recipe's `Config` and validated. The recipe must have
    `build(config)`: commands that rebuild a run's data and model (`compress`, `export`) call
    it; `needed_for` says which, in the error.

    Raises:
        FileNotFoundError: run.json or config.yaml is missing, or the recipe file is gone.
        ValueError: run.json names no recipe, or the recipe has no `build`.
    """
    from trainer.config import load_saved_config
    from trainer.runs import CONFIG_FILE, RUN_INFO_FILE, read_run_info

    run_dir = Path(run_dir)
    for name in (RUN_INFO_FILE, CONFIG_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir / name} is missing: pass a run folder made by `trainer train`"
            )
    info = read_run_info(run_dir)
    recipe_name, recipe_file = info.get("recipe"), info.get("recipe_file")
    if recipe_file and Path(recipe_file).parent.name != "recipes":
        # A recipe outside the package is found by its path.
        if not Path(recipe_file).is_file():
            raise FileNotFoundError(
                f"{run_dir / RUN_INFO_FILE} names the recipe file {recipe_file}, which no longer "
                f"exists; put it back to {needed_for}"
            )
        recipe_name = recipe_file
    if not recipe_name:
        raise ValueError(f"{run_dir / RUN_INFO_FILE} names no recipe, received {info!r}")
    recipe = load_recipe(recipe_name)
    if not hasattr(recipe, "build"):
        raise ValueError(
            f"the recipe that made {run_dir} ({recipe_name}) has no build(config) -> Experiment, "
            f"which is needed to {needed_for}; see docs/recipe.md, 'Write your own recipe'"
        )
    return recipe, load_saved_config(recipe.Config, run_dir / CONFIG_FILE)
