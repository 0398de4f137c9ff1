"""Writes the README's benchmark tables from committed result files, and checks them.

GitHub shows README.md as written, so a measured table there must be in the file itself. A
block

    <!-- bench-table: NAME -->
    ...
    <!-- /bench-table -->

in README.md holds the rendering of bench/results/NAME.json by docs/hooks.py's `bench_table`,
the function that renders a `<!-- bench: NAME -->` line on the documentation site: the same
title, table, date, commit, hardware and load. This script rewrites what lies between the two
lines; `--check` rewrites nothing and fails when README.md differs from the rendering, so a
result file and the README's copy of it cannot drift apart (tests/test_readme_tables.py).
The site shows the README's block as it is (docs/hooks.py leaves these blocks alone).

Run:  .venv/bin/python bench/readme_tables.py            (rewrites README.md's blocks)
      .venv/bin/python bench/readme_tables.py --check    (exit 1 if README.md is out of date)
"""

import argparse
import difflib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "docs"))

import hooks  # noqa: E402  (docs/hooks.py: the site's rendering of bench results)

from trainer.files import atomic_write_text  # noqa: E402  (loads no TensorFlow)

README = REPO / "README.md"


def render_blocks(markdown: str) -> str:
    """`markdown` with the inside of every bench-table block replaced by the rendering of the
    result file it names (a blank line on each side of the table).

    Example:

        fresh = render_blocks(Path("README.md").read_text())
    """

    def render(match) -> str:
        name = match.group("name")
        return f"<!-- bench-table: {name} -->\n\n{hooks.bench_table(name)}\n<!-- /bench-table -->"

    return hooks.BENCH_TABLE_BLOCK.sub(render, markdown)


def block_names(markdown: str) -> list[str]:
    """The result names of the bench-table blocks in `markdown`, in order."""
    return [match.group("name") for match in hooks.BENCH_TABLE_BLOCK.finditer(markdown)]


def main(argv: list[str] | None = None, readme: Path = README) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="rewrite nothing; exit 1 if README.md differs"
    )
    args = parser.parse_args(argv)
    current = readme.read_text(encoding="utf-8")
    opened = current.count("<!-- bench-table: ")
    if opened != len(block_names(current)):
        raise ValueError(
            f"{readme} has {opened} '<!-- bench-table: NAME -->' lines but "
            f"{len(block_names(current))} complete blocks; close each with a "
            "'<!-- /bench-table -->' line"
        )
    fresh = render_blocks(current)
    if fresh == current:
        print(f"{readme}: {len(block_names(current))} bench tables up to date")
        return 0
    if args.check:
        diff = difflib.unified_diff(
            current.splitlines(), fresh.splitlines(), str(readme), "rendered", lineterm=""
        )
        print("\n".join(diff))
        print(f"{readme} differs from its result files: run python bench/readme_tables.py")
        return 1
    # Atomic: an interrupted run leaves the old README.md whole, never half a table.
    atomic_write_text(readme, fresh)
    print(f"{readme}: rewrote {', '.join(block_names(fresh))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
