"""The `Example:` sections of trainer's docstrings run, as doctests, or say why they do not.

An example written in `>>>` form is executed by the standard `doctest` module (with ELLIPSIS
and NORMALIZE_WHITESPACE) in a scratch folder, so its printed values are checked like any
test's. An example that cannot run cheaply here (it needs a data set that is not on this
machine, a trained run folder, or minutes of training) is headed `Example (not run: REASON):`
and is shown as plain code. CONVERTED lists the modules held to that rule; PENDING lists the
others, each with the reason it is not converted yet, and every module of `trainer/` is in
exactly one of the two lists, so a new module has to choose.
"""

import ast
import doctest
import importlib
import io
import pkgutil
import re

import pytest

import trainer
from conftest import REPO

CONVERTED = [
    "trainer.augment",
    "trainer.auto",
    "trainer.auto.candidate",
    "trainer.auto.cost",
    "trainer.auto.data_stage",
    "trainer.auto.finalist_stage",
    "trainer.auto.finalists",
    "trainer.auto.options",
    "trainer.auto.pipeline",
    "trainer.auto.search_stage",
    "trainer.auto.report",
    "trainer.auto.run",
    "trainer.auto.state",
    "trainer.augment.image",
    "trainer.augment.mixing",
    "trainer.augment.ops",
    "trainer.augment.randaugment",
    "trainer.callbacks",
    "trainer.config",
    "trainer.data",
    "trainer.data.check",
    "trainer.data.cifar",
    "trainer.data.folders",
    "trainer.data.idx",
    "trainer.data.images",
    "trainer.data.label_issues",
    "trainer.data.pipeline",
    "trainer.data.prepare",
    "trainer.data.preview",
    "trainer.data.sources",
    "trainer.data.split",
    "trainer.data.tabular",
    "trainer.data.text",
    "trainer.data.text_augment",
    "trainer.data.text_check",
    "trainer.data.tfds_source",
    "trainer.data.types",
    "trainer.diagnosis",
    "trainer.distill",
    "trainer.files",
    "trainer.flops",
    "trainer.logistic_regression",
    "trainer.losses",
    "trainer.lr_finder",
    "trainer.outputs",
    "trainer.models.image",
    "trainer.optimizers",
    "trainer.regularizers",
    "trainer.resources",
    "trainer.schedules",
    "trainer.tensorboard_logging",
    "trainer.tracking",
]
_RESTRUCTURED = "being restructured under issue 23; its examples are converted after that lands"
_NOT_YET = "examples not converted to doctests yet"
_NEW = "added under issue 23 while the doctests were written; its author converts its examples"
# A package named here covers its submodules.
PENDING = {
    "trainer": _NOT_YET,
    "trainer.batch_norm": _RESTRUCTURED,
    "trainer.checkpoint": _NOT_YET,
    "trainer.compress": _RESTRUCTURED,
    "trainer.compression": _NOT_YET,
    "trainer.custom_objects": _RESTRUCTURED,
    "trainer.distribute": _RESTRUCTURED,
    "trainer.experiment": _RESTRUCTURED,
    "trainer.export": _RESTRUCTURED,
    "trainer.keras_compat": _NOT_YET,
    "trainer.keras_path": _NOT_YET,
    "trainer.models": _NOT_YET,
    "trainer.models.bert": _NOT_YET,
    "trainer.models.text": _NOT_YET,
    "trainer.models.transfer": _NOT_YET,
    "trainer.model_card": _NEW,
    "trainer.plots": _NOT_YET,
    "trainer.precision": _NOT_YET,
    "trainer.predict": _NEW,
    "trainer.processes": _RESTRUCTURED,
    "trainer.recipe_loader": _NOT_YET,
    "trainer.report": _RESTRUCTURED,
    "trainer.reproducibility": _NOT_YET,
    "trainer.runs": _NOT_YET,
    "trainer.sizing": _RESTRUCTURED,
    "trainer.snippets": _NEW,
    "trainer.tuning": _RESTRUCTURED,
}
# The command line is documented by its `--help` and tested through it.
SKIPPED_PACKAGES = ("trainer.cli",)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
EXAMPLE_HEADING = re.compile(r"^\s*Examples?\b.*:\s*$", re.M)
NOT_RUN_HEADING = re.compile(r"^\s*Examples? \(not run: [^)]+\):\s*$")


def _trainer_modules() -> list[str]:
    found = ["trainer"]
    for info in pkgutil.walk_packages(trainer.__path__, "trainer."):
        if not info.name.startswith(SKIPPED_PACKAGES):
            found.append(info.name)
    return sorted(found)


def _source_path(name: str):
    relative = name.replace(".", "/")
    package = REPO / relative / "__init__.py"
    return package if package.is_file() else REPO / f"{relative}.py"


def _docstrings(name: str) -> list[tuple[str, str]]:
    tree = ast.parse(_source_path(name).read_text(encoding="utf-8"))
    nodes = list(ast.walk(tree))  # the module first
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = []
    for node in nodes:
        if isinstance(node, kinds) and (text := ast.get_docstring(node, clean=True)):
            found.append((getattr(node, "name", name), text))
    return found


def _pending(name: str) -> bool:
    """Listed in PENDING, or a submodule of a package listed there (not of `trainer` itself)."""
    return any(
        name == package or (package != "trainer" and name.startswith(f"{package}."))
        for package in PENDING
    )


def test_every_module_is_converted_or_pending():
    modules = _trainer_modules()
    unlisted = [name for name in modules if name not in CONVERTED and not _pending(name)]
    assert not unlisted, f"add {unlisted} to CONVERTED (examples run) or PENDING (with a reason)"
    stale = sorted(name for name in [*CONVERTED, *PENDING] if name not in modules)
    assert not stale, f"{stale} no longer exist: remove them from CONVERTED or PENDING"
    assert not [name for name in CONVERTED if name in PENDING]


@pytest.mark.parametrize("name", CONVERTED)
def test_every_example_runs_or_says_why_not(name: str):
    """An `Example` heading is followed by `>>>` lines, or is `Example (not run: REASON):`."""
    for owner, text in _docstrings(name):
        for heading in EXAMPLE_HEADING.finditer(text):
            line = heading.group(0)
            if NOT_RUN_HEADING.match(line):
                continue
            after = text[heading.end() :].lstrip("\n")
            assert after.lstrip().startswith(">>>"), (
                f"{name}.{owner}: {line.strip()!r} is neither followed by a `>>>` example nor "
                f"headed `Example (not run: REASON):`"
            )


@pytest.mark.parametrize("name", CONVERTED)
def test_docstring_examples_run(name: str, tmp_path, monkeypatch):
    """Every `>>>` example of the module gives the output its docstring shows."""
    monkeypatch.chdir(tmp_path)  # examples may write files (models, plots)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    examples = 0
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, name):
        if test.lineno is None or not test.filename.startswith(str(REPO)):
            continue  # re-exported from another module: checked there
        examples += len(test.examples)
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()[-6000:]
    expected = sum(">>>" in text for _, text in _docstrings(name))
    found = sum(1 for _ in doctest.DocTestFinder(exclude_empty=True).find(module, name))
    assert examples or not expected, f"{name}: {expected} docstrings with >>> but none ran"
    assert found >= expected, f"{name}: doctest found {found} of {expected} docstrings with >>>"
