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


class RecipeError(ValueError):
    """A user's recipe file that failed while it was imported or run (an import error, a
    NameError, a `main` or `build` that raised): the message names the file and the line;
    the original error is its `__cause__`, shown with TRAINER_DEBUG=1."""


# The modules `load_recipe` made from recipe files: a later recipe file of the same name may
# take their place in `sys.modules` (a real module of that name may not).
_recipe_modules: list[ModuleType] = []


def _shadowed_module(path: Path) -> str:
    """The name of the module that a recipe file named like it would hide ("" if none): a
    standard-library or installed top-level module (json.py, trainer.py, numpy.py), which
    the recipe would replace in `sys.modules` for every other import of the process."""
    name = path.stem
    if not name.isidentifier():
        return ""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return name
    loaded = sys.modules.get(name)
    if loaded is not None:
        # The same file imported before, or another recipe file of the same name that
        # `load_recipe` loaded earlier in this process, may be replaced.
        loaded_file = getattr(loaded, "__file__", None)
        same = bool(loaded_file) and Path(loaded_file).resolve() == path.resolve()
        return "" if same or loaded in _recipe_modules else name
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return ""
    if spec is None or (spec.origin and Path(spec.origin).resolve() == path.resolve()):
        return ""
    return name


_TRAINER_DIR = Path(__file__).resolve().parent


def _recipe_frame(error: BaseException, recipe_file: Path):
    """The deepest traceback frame of `error` inside `recipe_file`, as (line, function), or
    None when the error did not pass through it, or was raised further down by trainer's
    own code (trainer's messages and bugs are not the recipe's to fix)."""
    found, through_trainer, traceback = None, False, error.__traceback__
    while traceback is not None:
        code = traceback.tb_frame.f_code
        file = Path(code.co_filename).resolve()
        if file == recipe_file.resolve():
            found, through_trainer = (traceback.tb_lineno, code.co_name), False
        elif found is not None and _TRAINER_DIR in file.parents:
            through_trainer = True
        traceback = traceback.tb_next
    return None if through_trainer else found


def recipe_error(error: BaseException, recipe_file: str | Path, doing: str) -> RecipeError | None:
    """`error` as one paragraph naming the recipe file and its line, when it was raised in
    the user's recipe file or in a library the recipe called (not in trainer's own code);
    None otherwise (then the caller re-raises it). `doing` says what was going on, e.g.
    "while running main(config)".

    Example:

        >>> from pathlib import Path
        >>> from trainer.recipe_loader import recipe_error
        >>> try:
        ...     exec(compile("undefined_name", "my_recipe.py", "exec"))
        ... except NameError as error:
        ...     message = str(recipe_error(error, Path("my_recipe.py"), "while importing it"))
        >>> print(message[:62])
        recipe my_recipe.py, line 1 (<module>), raised NameError while
    """
    if isinstance(error, KeyboardInterrupt | SystemExit | RecipeError):
        return None
    frame = _recipe_frame(error, Path(recipe_file))
    if frame is None:
        return None
    line, function = frame
    text = " ".join(str(error).split()) or "(no message)"
    return RecipeError(
        f"recipe {recipe_file}, line {line} ({function}), raised {type(error).__name__} "
        f"{doing}: {text[:500]}. Fix the recipe and run again"
    )


def _passes_our_message(error: BaseException) -> bool:
    """True for the errors that carry a message meant for a user (bad values, paths, files,
    TensorFlow's file and memory errors), raised by trainer or by the recipe on purpose."""
    if isinstance(error, ValueError | TypeError | OSError | EOFError):
        return True
    return type(error).__module__.split(".")[0] in ("tensorflow", "zipfile")


def build_experiment(recipe: ModuleType, config: Any, needed_for: str) -> Any:
    """`recipe.build(config)`, with an error that passed through a user's recipe file and has
    no message of its own (a NameError, a KeyError...) as one paragraph naming the file and
    line (`RecipeError`, the original as its cause); a ValueError the recipe raised on
    purpose, or trainer's own messages, pass unchanged. `needed_for` says what the build is
    for, e.g. "rebuild the run's data for compress".

    Raises:
        RecipeError: see above; other errors unchanged.
    """
    try:
        return recipe.build(config)
    except Exception as error:
        recipe_file = user_recipe_file(recipe)
        if recipe_file is None:
            raise
        wrapped = None
        if not _passes_our_message(error):
            wrapped = recipe_error(error, recipe_file, f"in build(config) (to {needed_for})")
        if wrapped is None:
            raise
        raise wrapped from error


def _import_recipe_file(path: Path) -> ModuleType:
    """Imports the recipe file `path` as the module named after its stem."""
    shadowed = _shadowed_module(path)
    if shadowed:
        raise ValueError(
            f"recipe file {path} is named like the module `{shadowed}`, which it would "
            "replace for every later import of that name in the process (by Python, "
            f"TensorFlow or trainer itself); rename the file, e.g. to my_{path.name}"
        )
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(path.stem)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError:
        _restore_module(path.stem, previous)
        raise
    except Exception as error:
        _restore_module(path.stem, previous)
        wrapped = recipe_error(error, path, "while it was imported")
        if wrapped is None:
            raise
        raise wrapped from error
    _recipe_modules.append(module)
    return module


def _restore_module(name: str, previous: ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(name, None)
    else:
        sys.modules[name] = previous


def load_recipe(name_or_path: str) -> ModuleType:
    """Imports a recipe by name (`fashion_mnist`) or from a file path (`my/recipe.py`).

    Raises:
        FileNotFoundError: a recipe file that does not exist.
        ValueError: an unknown name, a file that is not .py or that is named like a module
            it would hide (json.py, trainer.py), or (`RecipeError`) a file whose import
            raised, named with its line.
        TypeError: a recipe without `Config` or `main`.
        SyntaxError: a recipe file with a syntax error.
    """
    path = Path(name_or_path)
    if name_or_path.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"recipe file {name_or_path!r} does not exist")
        if path.suffix != ".py":
            raise ValueError(
                f"recipe {name_or_path!r} is not a .py file; pass a recipe name "
                f"({', '.join(list_recipes())}) or the path of a recipe .py file"
            )
        module = _import_recipe_file(path)
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
    except RecipeError as error:
        raise ConfigError(str(error)) from error.__cause__
    except (ValueError, FileNotFoundError, TypeError) as error:
        raise ConfigError(str(error)) from None


def user_recipe_file(module: ModuleType) -> Path | None:
    """The file of a user's recipe module, or None for a recipe of the built-in package
    (whose errors are trainer's bugs, shown with their traceback)."""
    from trainer.runs import is_builtin_recipe_file

    file = getattr(module, "__file__", None)
    if not file or is_builtin_recipe_file(file):
        return None
    return Path(file)


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
    from trainer.runs import (
        CONFIG_FILE,
        RUN_INFO_FILE,
        read_run_info,
        recipe_file_of,
        resume_recipe,
    )

    run_dir = Path(run_dir)
    for name in (RUN_INFO_FILE, CONFIG_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir / name} is missing: pass a run folder made by `trainer train`"
            )
    recipe_name, recipe_file = resume_recipe(run_dir), recipe_file_of(run_dir)
    # A user's recipe is found by its path, even in a folder named `recipes`; never by a
    # built-in recipe's name.
    if recipe_file and not Path(recipe_file).is_file():
        raise FileNotFoundError(
            f"{run_dir / RUN_INFO_FILE} names the recipe file {recipe_file}, which no longer "
            f"exists; put it back to {needed_for}"
        )
    if not recipe_name:
        info = read_run_info(run_dir)
        raise ValueError(f"{run_dir / RUN_INFO_FILE} names no recipe, received {info!r}")
    recipe = load_recipe(recipe_name)
    if not hasattr(recipe, "build"):
        raise ValueError(
            f"the recipe that made {run_dir} ({recipe_name}) has no build(config) -> Experiment, "
            f"which is needed to {needed_for}; see docs/recipe.md, 'Write your own recipe'"
        )
    return recipe, load_saved_config(recipe.Config, run_dir / CONFIG_FILE)
