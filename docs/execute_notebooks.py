"""Executes notebooks from their jupytext sources and saves each `.ipynb` with its outputs.

The documentation site shows the outputs saved in `notebooks/*.ipynb` (docs/hooks.py renders
them, plots included); this script is how they are made, so the pages show what the code
printed. The notebooks run from the repository root with their own settings (`QUICK = True`:
small data, a few epochs), as `tests/test_notebooks.py` runs them. TensorFlow's own INFO log
lines ("Assets written to: /tmp/...") are left out of the saved outputs: they are the
converter's noise, not what the notebook shows.

Run from the repository root:
    .venv/bin/python docs/execute_notebooks.py                  every notebook
    .venv/bin/python docs/execute_notebooks.py text_models      one of them
"""

import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent


def drop_tensorflow_info(notebook) -> None:
    """Removes TensorFlow's INFO log lines from the printed outputs (and outputs left empty)."""
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                lines = output.get("text", "").splitlines(keepends=True)
                output["text"] = "".join(
                    line for line in lines if not line.startswith("INFO:tensorflow:")
                )
                if not output["text"]:
                    continue
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept


def execute(source: Path) -> Path:
    """Runs the notebook of `source` (a jupytext .py) top to bottom and writes its .ipynb."""
    notebook = jupytext.read(source)
    resources = {"metadata": {"path": str(REPO)}}
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources=resources).execute()
    drop_tensorflow_info(notebook)
    target = source.with_suffix(".ipynb")
    jupytext.write(notebook, target, fmt="ipynb")
    return target


def main(names: list[str]) -> int:
    sources = sorted((REPO / "notebooks").glob("*.py"))
    if names:
        unknown = sorted(set(names) - {source.stem for source in sources})
        if unknown:
            raise SystemExit(f"no notebook named {', '.join(unknown)} in notebooks/")
        sources = [source for source in sources if source.stem in names]
    for source in sources:
        start = time.perf_counter()
        target = execute(source)
        print(f"{target.relative_to(REPO)}: executed in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
