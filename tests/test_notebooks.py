"""Notebooks are generated from their jupytext sources and run top to bottom on small settings."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

SOURCES = sorted((REPO / "notebooks").glob("*.py"))


def _code(notebook) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_ipynb_is_generated_from_source(source: Path):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"run: jupytext --to ipynb {source.relative_to(REPO)}"
    assert _code(nbformat.read(ipynb, as_version=4)) == _code(jupytext.read(source))


@pytest.mark.e2e
@pytest.mark.parametrize("source", SOURCES, ids=[path.stem for path in SOURCES])
def test_notebook_runs(source: Path, tmp_path: Path):
    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
