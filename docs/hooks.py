"""MkDocs hooks: the site's pages are generated from the repository at build time.

Nothing here is a second copy to keep up to date by hand:
- README.md is split at its `## ` headings: the part before the first heading is the home
  page, each section a page (its links rewritten to the site's pages);
- ARCHITECTURE.md is the "Architecture" page; docs/*.md (say docs/bad_input.md) are used as
  they are;
- each recipe in `recipes/` gets a page from its module docstring and a table of its `Config`
  fields (type, default, rule, comment), read from the dataclass the way `--help` reads it;
- the API reference has one mkdocstrings `::: module` entry per module of `trainer/`;
- each notebook in `notebooks/` is rendered to a page by nbconvert (not executed here: the
  test suite executes them).

`mkdocs build --strict` then fails on a broken link or a missing reference.
"""

import dataclasses
import html
import inspect
import pkgutil
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parent.parent
README_PAGES: list[tuple[str, str, str]] = []  # (title, page path, markdown)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower().replace("`", "")).strip("-")


def _readme_pages() -> list[tuple[str, str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)\n", text, flags=re.M)
    pages = [("Home", "index.md", parts[0])]
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        pages.append((title.replace("`", ""), f"{_slug(title)}.md", f"# {title}\n{body}"))
    slugs = {_slug(title): path for title, path, _ in pages}

    def link(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if target.startswith("#") and _slug(target[1:]) in slugs:
            target = slugs[_slug(target[1:])]
        elif target.startswith("docs/"):
            target = target[len("docs/") :]
        elif target == "ARCHITECTURE.md":
            target = "architecture.md"
        return f"[{label}]({target})"

    markdown_link = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
    return [(title, path, markdown_link.sub(link, body)) for title, path, body in pages]


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
        "are documented by their `--help`).",
        "",
    ]
    for name in ["trainer", *names]:
        lines += [f"## `{name}`", "", f"::: {name}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


def on_config(config):
    from trainer.recipe_loader import list_recipes

    README_PAGES[:] = _readme_pages()
    recipes = sorted(list_recipes())
    notebooks = sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb"))
    config["nav"] = [
        *[{title: path} for title, path, _ in README_PAGES],
        {"Architecture": "architecture.md"},
        {"Bad input and faults": "bad_input.md"},
        {"Recipes": [{name: f"recipes/{name}.md"} for name in recipes]},
        {"Notebooks": [{name: f"notebooks/{name}.md"} for name in notebooks]},
        {"API reference": "api.md"},
    ]
    return config


def on_files(files, config):
    from trainer.recipe_loader import list_recipes

    for _, path, markdown in README_PAGES:
        files.append(File.generated(config, path, content=markdown))
    architecture = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "architecture.md", content=architecture))
    for name in sorted(list_recipes()):
        files.append(File.generated(config, f"recipes/{name}.md", content=_recipe_page(name)))
    files.append(File.generated(config, "api.md", content=_api_page()))
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        path = f"notebooks/{notebook.stem}.md"
        files.append(File.generated(config, path, content=_notebook_page(notebook)))
    return files


def _notebook_page(notebook: Path) -> str:
    """The notebook as a page (nbconvert's Markdown export), with a link to the file."""
    from nbconvert import MarkdownExporter

    body, _ = MarkdownExporter().from_filename(str(notebook))
    source = f"notebooks/{notebook.name}"
    return f"{body}\n\n---\n\nThis page is `{source}` rendered when the site was built.\n"
