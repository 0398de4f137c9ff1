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
