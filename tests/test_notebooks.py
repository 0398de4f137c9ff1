"""Notebooks are generated from their jupytext sources and run top to bottom on small settings.

One notebook runs in a real Jupyter kernel in every session (`IN_KERNEL`: it shows what only a
kernel shows: the cells run in ipykernel, plots go to the inline backend). The quickstart runs
as what its jupytext source is, plain Python in percent format (markdown cells are comments),
top to bottom in a fork of the warm server (tests/warm.py): the same code, cell after cell,
without a kernel and a TensorFlow import of its own; its one-epoch Fashion-MNIST run is also
the suite's check that a short run on real data is far above chance (batch-norm statistics
re-estimated). The other notebooks repeat, on the same kind of data, what other end-to-end
tests run in every session (`SLOW_SCRIPTS` says which); in every session their code is only
checked to import names that exist, and `pytest -m slow` runs every notebook in a kernel and
as a script.
"""

import ast
import importlib
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO, command_env

SOURCES = sorted((REPO / "notebooks").glob("*.py"))
IN_KERNEL = "tune_a_recipe"
# Notebook -> the tests that run what its run would show, in every session.
SLOW_SCRIPTS = {
    "your_own_data": "README.md's tour (tests/test_readme.py) runs its steps on the same digit "
    "images: data check, image_classifier, compress --method=ptq, export, a .tflite file's "
    "predictions",
    "text_models": "the text models' runs, exports and MediaPipe checks are those of "
    "tests/test_text_models.py, test_text_linear.py and test_mobile_text.py",
}
AS_SCRIPTS = [path for path in SOURCES if path.stem != IN_KERNEL]


def _code(notebook) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_ipynb_is_generated_from_source(source: Path):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"run: jupytext --to ipynb {source.relative_to(REPO)}"
    assert _code(nbformat.read(ipynb, as_version=4)) == _code(jupytext.read(source))


def test_the_kernel_notebook_and_the_slow_ones_are_sources():
    stems = [path.stem for path in SOURCES]
    assert IN_KERNEL in stems and set(SLOW_SCRIPTS) <= set(stems)


@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_every_name_a_notebook_imports_exists(source: Path):
    """What a renamed function or module would break first, checked without running the
    notebook: each `from trainer... import NAME` and `from recipes... import NAME` resolves."""
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in ("trainer", "recipes"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")  # a submodule
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("trainer", "recipes"):
                    importlib.import_module(alias.name)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "source",
    [
        pytest.param(path, marks=() if path.stem == IN_KERNEL else pytest.mark.slow)
        for path in SOURCES
    ],
    ids=[path.stem for path in SOURCES],
)
def test_notebook_runs(source: Path, tmp_path: Path):
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def _far_above_chance(stdout: str) -> None:
    """fashion_mnist_quickstart trains one epoch on 3,000 real Fashion-MNIST images (23 steps):
    with Keras's batch-norm momentum 0.99 such runs scored 10% (chance); the derived momentum
    and the statistics re-estimated after training keep it far above. The notebook prints the
    test accuracy as JSON."""
    accuracy = float(re.search(r'"test_accuracy": ([0-9.]+)', stdout).group(1))
    assert accuracy > 0.45, stdout[-3000:]


CHECKS = {"fashion_mnist_quickstart": _far_above_chance}


@pytest.mark.e2e
@pytest.mark.parametrize(
    "source",
    [
        pytest.param(path, marks=pytest.mark.slow if path.stem in SLOW_SCRIPTS else ())
        for path in AS_SCRIPTS
    ],
    ids=[path.stem for path in AS_SCRIPTS],
)
def test_notebook_source_runs_top_to_bottom_as_a_script(source: Path, warm):
    # From the repository root, as the kernel runs it (the notebooks assert their results).
    result = warm.run(["python", str(source)], cwd=REPO, env=command_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    CHECKS.get(source.stem, lambda stdout: None)(result.stdout)
