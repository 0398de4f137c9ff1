"""MkDocs hooks: the site is the Markdown pages under docs/ plus pages made from the repository.

What is written by hand lives in one place and is only rendered here:
- README.md is the home page (`index.md`); ARCHITECTURE.md and CONTRIBUTING.md are the
  Architecture and Contributing pages. Links between them and the pages under docs/ are
  written as they work on GitHub (`docs/tuning.md` in the README, `../README.md` in a page) and
  rewritten to the site's pages;
- a line `<!-- bench: NAME -->` in a page becomes the table of the committed benchmark result
  bench/results/NAME.json, with the date, commit, hardware and load it records, so every
  measured number on the site comes from a result file;
- a README block from `<!-- bench-table: NAME -->` to `<!-- /bench-table -->` already holds
  that rendering, written into the file by bench/readme_tables.py (GitHub shows no generated
  content): it is left as it is, never rendered a second time;
- each recipe in `recipes/` gets a page from its module docstring and a table of its `Config`
  fields (type, default, comment), read from the dataclass the way `--help` reads it;
- the API reference has one mkdocstrings `::: module` entry per module of `trainer/`;
- each notebook in `notebooks/` is rendered with the outputs saved in its `.ipynb` (text,
  tables and plots; `docs/execute_notebooks.py` executes them), images written beside the
  page.

`mkdocs build --strict` (`make docs`) then fails on a broken link, a missing page or image,
and a `bench:` line whose file is missing or lacks a field.
"""

import base64
import dataclasses
import html
import inspect
import json
import pkgutil
import re
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parent.parent
BENCH_RESULTS = REPO / "bench" / "results"
BENCH_FIELDS = ("title", "what", "command", "date", "commit", "hardware", "load", "columns", "rows")
BENCH_LINE = re.compile(r"^<!-- bench: ([\w-]+) -->$", re.M)
# A table written into a page by bench/readme_tables.py, from its opening line to its closing.
BENCH_TABLE_BLOCK = re.compile(
    r"^<!-- bench-table: (?P<name>[\w-]+) -->$.*?^<!-- /bench-table -->$", re.M | re.S
)
MARKDOWN_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")

# The hand-written pages, in the order of the navigation.
GUIDES = [
    ("The command line", "command-line.md"),
    ("Train on your own data", "your-own-data.md"),
    ("Export to a phone", "export.md"),
    ("Text models on a phone", "mobile_text.md"),
    ("Compress a trained model", "compression.md"),
    ("Tune hyperparameters", "tuning.md"),
    ("TensorBoard", "tensorboard.md"),
    ("Experiment tracking (MLflow)", "tracking.md"),
    ("From a folder to a device budget", "auto.md"),
    ("Training pieces in your own fit", "training-pieces.md"),
    ("Keras 3", "keras3.md"),
    ("Write your own recipe", "recipe.md"),
    ("Several devices or machines", "distribute.md"),
]
REFERENCE = [
    ("Results (measured here)", "results.md"),
    ("Bad input and faults", "bad_input.md"),
    ("Known limits", "known-limits.md"),
    ("Install, step by step", "install.md"),
]
# Repository files that are pages of the site, by their path from the repository root.
REPOSITORY_PAGES = {"README.md": "index.md", "ARCHITECTURE.md": "architecture.md",
                    "CONTRIBUTING.md": "contributing.md"}  # fmt: skip


def _site_link(target: str, page_dir: str) -> str:
    """A link as written in the repository (relative to `page_dir`) -> the site's link."""
    path, hash_mark, anchor = target.partition("#")
    if not path or re.match(r"^[a-z]+:", path):
        return target
    resolved = Path(page_dir, path).as_posix()
    parts: list[str] = []
    for part in resolved.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    resolved = "/".join(parts)
    if resolved in REPOSITORY_PAGES:
        site = REPOSITORY_PAGES[resolved]
    elif resolved.startswith("docs/"):
        site = resolved[len("docs/") :]
    else:
        return target  # a file of the repository that is not on the site: mkdocs reports it
    # Site pages sit at the top of the site, except recipes/ and notebooks/ pages.
    return f"{site}{hash_mark}{anchor}"


def _rewrite_links(markdown: str, page_dir: str) -> str:
    def replace(match: re.Match) -> str:
        bang, label, target = match.groups()
        return f"{bang}[{label}]({_site_link(target, page_dir)})"

    return MARKDOWN_LINK.sub(replace, markdown)


def bench_table(name: str) -> str:
    """The Markdown of bench/results/NAME.json: title, what was measured, the table, and the
    date, commit, hardware and load it was measured with."""
    path = BENCH_RESULTS / f"{name}.json"
    if not path.is_file():
        raise PluginError(f"<!-- bench: {name} --> names {path}, which does not exist")
    record = json.loads(path.read_text(encoding="utf-8"))
    missing = [field for field in BENCH_FIELDS if field not in record]
    if missing:
        raise PluginError(f"{path} lacks {', '.join(missing)} (every result file needs them)")

    def cell(value) -> str:
        return html.escape(str(value), quote=False).replace("|", "\\|")

    columns = record["columns"]
    lines = [f"**{record['title']}.** {record['what']}", ""]
    lines.append("| " + " | ".join(cell(column) for column in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in record["rows"]:
        if len(row) != len(columns):
            raise PluginError(f"{path}: a row has {len(row)} cells for {len(columns)} columns")
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    lines.append("")
    lines += [note + "\n" for note in record.get("notes", [])]
    commit = record["commit"]
    if record.get("recorded_in_commit"):
        commit = f"{commit} (numbers recorded in commit {record['recorded_in_commit']})"
    lines.append(
        f"*Measured {record['date']}; commit: {commit}; {record['hardware']}; load: "
        f"{record['load']}. Command: `{record['command']}`. Source: "
        f"`bench/results/{name}.json`.*"
    )
    return "\n".join(lines) + "\n"


def _recipe_page(name: str) -> str:
    sys.path.insert(0, str(REPO))
    import trainer  # noqa: F401  (selects tf_keras before a recipe imports TensorFlow)
    from trainer.config import field_comments
    from trainer.recipe_loader import load_recipe

    module = load_recipe(name)
    doc = inspect.getdoc(module) or ""
    title, _, rest = doc.partition("\n")
    comments = field_comments(module.Config)
    rows = ["| option | type | default | meaning |", "|---|---|---|---|"]
    for field in dataclasses.fields(module.Config):
        default = field.default if field.default is not dataclasses.MISSING else ""
        kind = field.type if isinstance(field.type, str) else field.type.__name__
        meaning = html.escape(comments.get(field.name, ""), quote=False).replace("|", "\\|")
        rows.append(f"| `--{field.name}` | {kind} | `{default!r}` | {meaning} |")
    return "\n".join(
        [
            f"# Recipe `{name}`",
            "",
            f"**{title.strip()}**",
            "",
            "```text",
            rest.strip(),
            "```",
            "",
            f"Run it with `trainer train {name}`; every option is a `--key=value` flag "
            f"(`trainer train {name} --help` prints this table). The table is generated from "
            f"`recipes/{name}.py`'s `Config` dataclass when the site is built.",
            "",
            *rows,
            "",
        ]
    )


def _api_page() -> str:
    import trainer

    names = sorted(
        module.name
        for module in pkgutil.walk_packages(trainer.__path__, "trainer.")
        if ".cli" not in module.name
    )
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings of every module of `trainer/` (the command-line modules "
        "are documented by their `--help`). The `>>>` examples run as doctests in the test "
        "suite (`tests/test_docstring_examples.py`).",
        "",
    ]
    for name in ["trainer", *names]:
        lines += [f"## `{name}`", "", f"::: {name}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


def _notebook_page(notebook: Path) -> tuple[str, dict[str, bytes]]:
    """The notebook as a page with the outputs saved in the .ipynb, and its image files
    (paths relative to the notebooks/ folder of the site)."""
    import nbformat
    from nbconvert import MarkdownExporter

    node = nbformat.read(notebook, as_version=4)
    resources = {"output_files_dir": f"{notebook.stem}_files"}
    body, resources = MarkdownExporter().from_notebook_node(node, resources=resources)
    images = dict(resources.get("outputs", {}))
    executed = any(cell.get("outputs") for cell in node.cells if cell.cell_type == "code")
    note = (
        "The outputs above are the ones saved in the notebook when it was last executed "
        "(`docs/execute_notebooks.py`); the test suite runs it again on small settings."
        if executed
        else "This notebook is saved without outputs: `docs/execute_notebooks.py` executes it."
    )
    source = f"notebooks/{notebook.name}"
    return f"{body}\n\n---\n\nThis page is `{source}`. {note}\n", images


def _as_bytes(data) -> bytes:
    return data if isinstance(data, bytes) else base64.b64decode(data)


def on_config(config):
    from trainer.recipe_loader import list_recipes

    recipes = sorted(list_recipes())
    notebooks = sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb"))
    config["nav"] = [
        {"Home": "index.md"},
        {"Guides": [{title: path} for title, path in GUIDES]},
        {"Recipes": [{name: f"recipes/{name}.md"} for name in recipes]},
        {"Notebooks": [{name: f"notebooks/{name}.md"} for name in notebooks]},
        {"Reference": [*({title: path} for title, path in REFERENCE), {"API": "api.md"}]},
        {"Project": [{"Architecture": "architecture.md"}, {"Contributing": "contributing.md"}]},
    ]
    return config


def on_files(files, config):
    from trainer.recipe_loader import list_recipes

    for source, page in REPOSITORY_PAGES.items():
        markdown = _rewrite_links((REPO / source).read_text(encoding="utf-8"), "")
        files.append(File.generated(config, page, content=markdown))
    for name in sorted(list_recipes()):
        files.append(File.generated(config, f"recipes/{name}.md", content=_recipe_page(name)))
    files.append(File.generated(config, "api.md", content=_api_page()))
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        page, images = _notebook_page(notebook)
        files.append(File.generated(config, f"notebooks/{notebook.stem}.md", content=page))
        for name, data in images.items():
            files.append(File.generated(config, f"notebooks/{name}", content=_as_bytes(data)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Pages under docs/: repository links become site links; `bench:` lines become tables,
    except inside a bench-table block, which holds its rendering already."""
    if page.file.generated_by is None:  # written by hand under docs/
        markdown = _rewrite_links(markdown, str(Path("docs", page.file.src_uri).parent))
    return render_bench_lines(markdown)


def render_bench_lines(markdown: str) -> str:
    """`markdown` with each `<!-- bench: NAME -->` line outside bench-table blocks replaced by
    `bench_table(NAME)`; the blocks stay as they are."""
    pieces, end = [], 0
    for block in BENCH_TABLE_BLOCK.finditer(markdown):
        outside = markdown[end : block.start()]
        pieces += [BENCH_LINE.sub(lambda match: bench_table(match.group(1)), outside), block[0]]
        end = block.end()
    pieces.append(BENCH_LINE.sub(lambda match: bench_table(match.group(1)), markdown[end:]))
    return "".join(pieces)
