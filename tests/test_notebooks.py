"""Notebooks are generated from their jupytext sources and run top to bottom on small settings.

One notebook runs in a real Jupyter kernel in every session (`IN_KERNEL`: the cheapest, and
it shows what only a kernel shows: the cells run in ipykernel, plots go to the inline
backend). The others run as what their jupytext source is, plain Python in percent format
(markdown cells are comments), top to bottom in a fork of the warm server (tests/warm.py):
the same code, cell after cell, without a kernel and a TensorFlow import of its own each.
`pytest -m slow` runs every notebook in a kernel.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO, command_env

SOURCES = sorted((REPO / "notebooks").glob("*.py"))
IN_KERNEL = "tune_a_recipe"
AS_SCRIPTS = [path for path in SOURCES if path.stem != IN_KERNEL]


def _code(notebook) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_ipynb_is_generated_from_source(source: Path):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"run: jupytext --to ipynb {source.relative_to(REPO)}"
    assert _code(nbformat.read(ipynb, as_version=4)) == _code(jupytext.read(source))


def test_the_kernel_notebook_is_one_of_the_sources():
    assert IN_KERNEL in [path.stem for path in SOURCES]


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


@pytest.mark.e2e
@pytest.mark.parametrize("source", AS_SCRIPTS, ids=[path.stem for path in AS_SCRIPTS])
def test_notebook_source_runs_top_to_bottom_as_a_script(source: Path, warm):
    # From the repository root, as the kernel runs it (the notebooks assert their results).
    result = warm.run(["python", str(source)], cwd=REPO, env=command_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
