"""The direction of the imports is the architecture (ARCHITECTURE.md): checked here.

Every `import` in `trainer/`, at module level or inside a function, is an arrow from one module
to another. Library modules never import the command line (`trainer.cli`) or `recipes`, and
the arrows inside `trainer/` form no cycle, so each layer can be read, tested and replaced
without the ones above it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trainer"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of ours that `path` imports (absolute or relative, anywhere in the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
