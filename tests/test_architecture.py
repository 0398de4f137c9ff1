"""The direction of the imports is the architecture (ARCHITECTURE.md): checked here.

Every `import` in `trainer/`, at module level or inside a function, is an arrow from one module
to another. Library modules never import the command line (`trainer.cli`) or `recipes`, and
the arrows inside `trainer/` form no cycle, so each layer can be read, tested and replaced
without the ones above it. No module is over `MAX_MODULE_LINES` lines and no function or
method over `MAX_FUNCTION_LINES` (issue 23), so each can be read in one sitting.
"""

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trainer"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80  # from `def` to its last line, decorators excluded


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@functools.cache
def _tree(path: Path) -> ast.Module:
    """`path` parsed once for every test of this file (parsing trainer/ costs ~0.4 s of CPU)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of ours that `path` imports (absolute or relative, anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    ours = set()
    for module in found:
        # `import trainer` / `from trainer import keras` reach the package root only, which
        # every module may import (it sets the Keras 2 path before TensorFlow loads).
        if module == "trainer" or not (
            module.startswith("trainer.") or module == "recipes" or module.startswith("recipes.")
        ):
            continue
        while module not in known and "." in module and not module.startswith("recipes"):
            module = module.rpartition(".")[0]
        ours.add(module)
    return ours - {name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def test_library_modules_never_import_the_command_line_or_recipes():
    wrong = {
        name: sorted(target for target in targets if target.startswith(("trainer.cli", "recipes")))
        for name, targets in _graph().items()
        if not name.startswith("trainer.cli")
    }
    assert {name: targets for name, targets in wrong.items() if targets} == {}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_inside_trainer():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_a_planted_cycle_and_a_wrong_way_import():
    # The two tests above would pass vacuously if the graph were empty or the cycle search broken.
    graph = _graph()
    assert len(graph) > 30
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    assert "trainer.recipe_loader" in graph["trainer.cli.main"]


@pytest.mark.parametrize("name", ["trainer.experiment", "trainer.export", "trainer.runs"])
def test_core_modules_are_in_the_graph(name):
    assert name in _graph()


def _too_long(name: str, lines: int, tree: ast.Module) -> list[str]:
    """`name` when its `lines` are over the limit, and each function or method in its parsed
    `tree` that is, with its length."""
    found = []
    if lines > MAX_MODULE_LINES:
        found.append(f"{name}: {lines} lines")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_over_600_lines_and_no_function_over_80():
    found = [
        problem
        for name, path in _modules().items()
        for problem in _too_long(
            name, len(path.read_text(encoding="utf-8").splitlines()), _tree(path)
        )
    ]
    assert not found, (
        f"over {MAX_MODULE_LINES} lines a module or {MAX_FUNCTION_LINES} a function: split "
        "it by job (ARCHITECTURE.md): " + "; ".join(found)
    )


def test_the_length_check_names_a_long_module_and_a_long_method_but_not_its_decorators():
    body = "".join(f"        x = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    source = "class A:\n    @staticmethod\n    @staticmethod\n    def f():\n" + body

    def check(text: str) -> list[str]:
        return _too_long("m", len(text.splitlines()), ast.parse(text))

    assert check(source) == []  # 80 lines from `def`, 82 with its decorators
    longer = source + "        y = 1\n"
    assert check(longer) == ["m:4 f: 81 lines"]
    padded = longer + "\n" * (MAX_MODULE_LINES - len(longer.splitlines()) + 1)
    assert check(padded) == ["m: 601 lines", "m:4 f: 81 lines"]
