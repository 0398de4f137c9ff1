"""README.md's benchmark tables are the rendering of the committed result files they name
(bench/readme_tables.py), and the documentation site shows them once (docs/hooks.py)."""

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "docs"))

import hooks  # noqa: E402

from bench import readme_tables  # noqa: E402

README = REPO / "README.md"


def test_readme_blocks_equal_the_rendering_of_their_result_files(capsys):
    names = readme_tables.block_names(README.read_text(encoding="utf-8"))
    assert names, "README.md has no bench-table block"
    assert readme_tables.main(["--check"]) == 0, capsys.readouterr().out
    for name in names:  # each names a committed result with a date, commit and load
        assert (REPO / "bench" / "results" / f"{name}.json").is_file()


def _stale_readme(tmp_path, name: str):
    path = tmp_path / "README.md"
    path.write_text(
        f"# Title\n\nBefore.\n\n<!-- bench-table: {name} -->\n| old | table |\n"
        "<!-- /bench-table -->\n\nAfter.\n",
        encoding="utf-8",
    )
    return path


def test_check_fails_on_a_stale_block_and_writing_fixes_it(tmp_path, capsys):
    name = readme_tables.block_names(README.read_text(encoding="utf-8"))[0]
    path = _stale_readme(tmp_path, name)
    stale = path.read_text(encoding="utf-8")
    assert readme_tables.main(["--check"], readme=path) == 1
    assert "| old | table |" in capsys.readouterr().out  # the diff shows what is out of date
    assert path.read_text(encoding="utf-8") == stale  # --check writes nothing

    assert readme_tables.main([], readme=path) == 0
    written = path.read_text(encoding="utf-8")
    assert hooks.bench_table(name) in written
    assert written.startswith("# Title\n\nBefore.\n\n") and written.endswith("\n\nAfter.\n")
    assert "| old | table |" not in written
    assert readme_tables.main(["--check"], readme=path) == 0


def test_an_unclosed_block_is_refused(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("<!-- bench-table: text_linear -->\n| a |\n", encoding="utf-8")
    with pytest.raises(ValueError, match="/bench-table"):
        readme_tables.main(["--check"], readme=path)


def test_the_site_leaves_blocks_alone_and_renders_bench_lines_outside_them():
    block = (
        "<!-- bench-table: text_linear -->\n<!-- bench: no_such_result -->\n<!-- /bench-table -->"
    )
    markdown = f"{block}\n\n<!-- bench: text_linear -->\n"
    rendered = hooks.render_bench_lines(markdown)
    assert rendered.startswith(block + "\n\n")  # no_such_result would raise if rendered
    assert rendered.endswith(hooks.bench_table("text_linear") + "\n")

    readme = README.read_text(encoding="utf-8")
    for name in readme_tables.block_names(readme):
        header = hooks.bench_table(name).splitlines()[2]  # the table's column line
        assert hooks.render_bench_lines(readme).count(header) == 1
