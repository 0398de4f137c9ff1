"""Every level of `trainer ... --help` exits 0 and lists that command's own options.

The expected options are read from the code (the dataclasses each command parses, the
recipes' `Config` fields), so a help text that drops an option, or a new option that never
reaches `--help`, fails here.
"""

import dataclasses
import subprocess
import sys

import pytest

from trainer.cli.main import COMMANDS, main
from trainer.recipe_loader import list_recipes, load_recipe


def _help(capsys, *argv: str) -> str:
    """Runs `trainer ARGV` in this process; returns what it printed, after checking exit 0."""
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # parse_args ends `--help` with SystemExit(0)
        status = exit_.code or 0
    captured = capsys.readouterr()
    assert status == 0, f"trainer {' '.join(argv)} exited {status}: {captured.err}"
    return captured.out


def _flags(config_class: type) -> list[str]:
    return [f"--{field.name}=" for field in dataclasses.fields(config_class)]


def _assert_lists(text: str, flags: list[str], where: str) -> None:
    missing = [flag for flag in flags if flag not in text]
    assert not missing, f"`{where}` does not list {missing}:\n{text}"


def test_top_level_help_names_every_command_and_exits_0():
    # Through the installed entry point, as a user types it.
    result = subprocess.run(
        [sys.executable, "-m", "trainer.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    for command in ["recipes", "train RECIPE", "train --resume=RUN_DIR", *COMMANDS]:
        assert f"  {command}" in result.stdout, command


def test_train_help_exits_0_and_lists_resume_restart_and_the_recipes(capsys):
    text = _help(capsys, "train", "--help")
    for option in ["--resume=RUN_DIR", "--restart", "RECIPE"]:
        assert option in text
    for recipe in list_recipes():
        assert recipe in text


@pytest.mark.parametrize("recipe", sorted(list_recipes()))
def test_train_recipe_help_lists_every_config_field(capsys, recipe):
    text = _help(capsys, "train", recipe, "--help")
    assert text.startswith(f"usage: trainer train {recipe} ")
    _assert_lists(text, _flags(load_recipe(recipe).Config), f"trainer train {recipe} --help")


def test_data_help_and_each_data_command(capsys):
    from trainer.cli.data import CheckConfig, PreviewConfig

    text = _help(capsys, "data", "--help")
    assert "  check " in text and "  preview " in text
    _assert_lists(_help(capsys, "data", "check", "--help"), _flags(CheckConfig), "data check")
    _assert_lists(_help(capsys, "data", "preview", "--help"), _flags(PreviewConfig), "data preview")


def test_lr_find_help_alone_and_after_a_recipe(capsys):
    from trainer.cli.lr_find import LrFindConfig

    _assert_lists(_help(capsys, "lr-find", "--help"), _flags(LrFindConfig), "lr-find --help")
    # After a recipe: the sweep's own options and the recipe's, both.
    text = _help(capsys, "lr-find", "digits", "--help")
    _assert_lists(text, _flags(LrFindConfig), "lr-find digits --help")
    _assert_lists(text, _flags(load_recipe("digits").Config), "lr-find digits --help")


def test_compress_export_and_tune_help(capsys):
    from trainer.cli.export import ExportConfig
    from trainer.compress.options import CompressConfig
    from trainer.tuning import TuneOptions

    _assert_lists(_help(capsys, "compress", "--help"), _flags(CompressConfig), "compress")
    export = _help(capsys, "export", "--help")
    assert export.startswith("usage: trainer export MODEL_OR_RUN")
    _assert_lists(export, _flags(ExportConfig), "export --help")
    _assert_lists(_help(capsys, "tune", "--help"), _flags(TuneOptions), "tune --help")
    _assert_lists(_help(capsys, "tune", "digits", "--help"), _flags(TuneOptions), "tune digits")


def test_unknown_command_still_fails_with_status_2(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err
