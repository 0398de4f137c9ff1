import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from datagen import bar_image, encode, write_image_folder, write_imdb
from trainer import cli
from trainer.data.check import check_data, check_source, clean_data
from trainer.data.sources import SourceOptions, load_source


def _tree_state(root: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """train/test image folders with exactly five planted problems."""
    root = tmp_path_factory.mktemp("planted") / "photos"
    write_image_folder(root / "train", per_class=12, seed=1)
    write_image_folder(root / "test", per_class=6, seed=2)
    (root / "train/a/corrupt.png").write_bytes(b"this is not a png")
    (root / "train/b/empty.png").write_bytes(b"")
    shutil.copy(root / "train/c/000.png", root / "train/c/copy.png")
    shutil.copy(root / "train/a/001.png", root / "test/a/leak.png")
    mislabeled = encode(bar_image(0, np.random.default_rng(9)), ".png")  # class a's bar in b/
    (root / "train/b/mislabeled.png").write_bytes(mislabeled)
    return root


def test_check_finds_every_planted_problem_and_nothing_else(planted, tmp_path, capsys):
    before = _tree_state(planted)
    out = tmp_path / "report"
    assert cli.main(["data", "check", str(planted), f"--out={out}"]) == 0
    report = json.loads((out / "data_report.json").read_text())
    found = {
        (p["check"], Path(p["item"]).relative_to(planted).as_posix()) for p in report["problems"]
    }
    assert found == {
        ("undecodable", "train/a/corrupt.png"),
        ("empty_file", "train/b/empty.png"),
        ("duplicate", "train/c/copy.png"),
        ("leak", "test/a/leak.png"),
        ("likely_label_error", "train/b/mislabeled.png"),
    }
    assert report["counts"]["train"] == {"a": 12, "b": 13, "c": 13}
    assert report["counts"]["test"] == {"a": 7, "b": 6, "c": 6}
    markdown = (out / "data_report.md").read_text()
    assert "### leak (1)" in markdown and "train/a/001.png" in markdown
    summary = capsys.readouterr().out
    assert "5 problem(s)" in summary and "likely_label_error" in summary
    assert _tree_state(planted) == before  # the source is never modified


def test_fast_mode_skips_label_errors_and_clean_data_drops_what_was_found(planted):
    data = load_source(planted)
    report = check_data(data, label_errors=False)
    assert report.fast and "likely_label_error" not in report.problem_counts()
    assert report.problem_counts()["leak"] == 1
    cleaned = clean_data(data, report)
    assert len(cleaned.x_train) == len(data.x_train) - 2  # one extra copy, one leaked original
    assert len(cleaned.x_test) == len(data.x_test)  # the test set stays as the source defines it
    assert not any(name.endswith("train/a/001.png") for name in cleaned.ids["train"])
    assert check_data(cleaned, label_errors=False).problem_counts().get("duplicate") is None


def test_drop_label_errors_removes_the_flagged_sample(planted):
    data = load_source(planted)
    report = check_data(data, label_errors=True)
    cleaned = clean_data(data, report, drop_label_errors=True)
    assert not any(name.endswith("mislabeled.png") for name in cleaned.ids["train"])
    assert any(name.endswith("mislabeled.png") for name in data.ids["train"])


def test_clean_folder_reports_no_problem(tmp_path):
    root = write_image_folder(tmp_path / "clean", per_class=15, seed=3)
    report = check_source(str(root), tmp_path / "out")
    assert report.problems == []
    assert "None found." in (tmp_path / "out" / "data_report.md").read_text()


def test_imbalance_and_text_problems_are_reported(tmp_path):
    root = write_imdb(tmp_path / "aclImdb", per_class=10)
    for index in range(40):  # make pos four times neg in train
        (root / "train/pos" / f"extra_{index}.txt").write_text(f"great fun film number {index}")
    (root / "train/neg/latin.txt").write_bytes("awful caf\xe9 film".encode("latin-1"))
    (root / "test/neg/blank.txt").write_bytes(b"  \n")
    report = check_source(str(root), tmp_path / "out", label_errors=False)
    counts = report.problem_counts()
    assert counts == {"class_imbalance": 1, "encoding": 1, "empty_file": 1}
    encoding = next(p for p in report.problems if p.check == "encoding")
    assert encoding.item.endswith("latin.txt") and "0xe9" in encoding.detail


def test_csv_problems_are_reported(tmp_path):
    rows = ["x1,x2,label"] + [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40)]
    rows[5] = "1,,0"  # missing value
    rows[9] = "2,3,7"  # label out of range for --num_classes=2
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    report = check_source(
        str(path), tmp_path / "out", SourceOptions(num_classes=2), label_errors=False
    )
    counts = report.problem_counts()
    assert counts["missing_values"] == 1 and counts["label_out_of_range"] == 1
    bad = next(p for p in report.problems if p.check == "label_out_of_range")
    assert bad.item.endswith("table.csv:row 10") and "label 7" in bad.detail


def test_report_is_never_written_inside_the_source(planted):
    with pytest.raises(ValueError, match="inside the data source"):
        check_source(str(planted), planted / "report")
    assert cli.main(["data", "check", str(planted), f"--out={planted / 'r'}"]) == 1
    assert not (planted / "r").exists()


def test_cli_errors_exit_2_for_options_and_1_for_a_missing_source(tmp_path, capsys):
    assert cli.main(["data", "check"]) == 2
    assert "takes one SOURCE, received none" in capsys.readouterr().err
    assert cli.main(["data", "check", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["data", "check", str(tmp_path), "--bogus=1"]) == 2
    assert "unknown config key 'bogus'" in capsys.readouterr().err
    assert cli.main(["data", "check", str(tmp_path), "--channels=2"]) == 2
    assert "channels" in capsys.readouterr().err


def test_strict_exit_code(planted, tmp_path):
    assert cli.main(["data", "check", str(planted), f"--out={tmp_path}", "--fast", "--strict"]) == 1


def test_help_lists_source_options_with_their_comments(capsys):
    assert cli.main(["data", "--help"]) == 0
    out = capsys.readouterr().out
    assert "check " in out and "preview " in out and "unknown command" not in out
    assert cli.main(["data", "check", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: trainer data check SOURCE")
    assert "--image_size=INT" in out and "resize images to N x N" in out
    assert "--label_column=STR" in out and "--text_column=STR" in out and "--fast=BOOL" in out


def test_check_options_are_flat_and_cover_every_source_option():
    # No config inheritance (CONTRIBUTING.md, rule 3): the command repeats all SourceOptions' fields.
    import dataclasses

    from trainer.cli.data import CheckConfig, source_options
    from trainer.data.types import SourceOptions

    assert CheckConfig.__mro__[1] is object
    check_fields = {field.name for field in dataclasses.fields(CheckConfig)}
    assert {field.name for field in dataclasses.fields(SourceOptions)} <= check_fields
    config = CheckConfig(label_column="stars", image_size=32, md5="abc")
    assert source_options(config) == SourceOptions(label_column="stars", image_size=32, md5="abc")


def test_every_reported_check_has_advice():
    # Every problem kind any loader or the check can report prints advice under it.
    import re

    import trainer.data as package
    from trainer.data.check import ADVICE

    source = "".join(path.read_text() for path in Path(package.__file__).parent.glob("*.py"))
    reported = set(re.findall(r'Problem\(\s*"([a-z_]+)"', source))
    for line in re.findall(r"\bcheck = (.*)", source):  # check = "a" if ... else "b"
        reported |= set(re.findall(r'"([a-z_]+)"', line))
    assert {"missing_label", "empty_text", "missing_class", "undecodable"} <= reported
    assert reported - set(ADVICE) == set()


def test_console_lists_each_problem_row_with_its_path_and_advice(tmp_path, capsys):
    rows = ["review,stars"] + [
        f"{'great fun' if i % 2 else 'dull and bad'} film {i},{1 if i % 2 else 5}"
        for i in range(30)
    ]
    rows[3] = "a missing label here,nan"
    rows[4] = ",5"  # empty text
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    args = ["data", "check", str(path), "--text_column=review", "--label_column=stars"]
    assert cli.main([*args, f"--out={tmp_path / 'out'}", "--fast"]) == 0
    out = capsys.readouterr().out
    assert "(text, 2 classes)" in out
    from trainer.data.check import ADVICE

    for check, row in (("missing_label", 4), ("empty_text", 5)):
        assert f"{check} (1): {ADVICE[check]}" in out
        assert f"{path}:row {row}" in out  # the row itself, by path, on the console
    # Star ratings 1 and 5 are two classes; the report maps each class id to its label.
    markdown = (tmp_path / "out" / "data_report.md").read_text()
    assert "| 0 | 1 |" in markdown and "| 1 | 5 |" in markdown and "| 2 |" not in markdown


def test_non_utf8_file_name_is_reported_escaped_by_the_command(tmp_path, capsys):
    # Was: "'utf-8' codec can't encode ... surrogates" when writing or printing the report.
    import os

    root = write_image_folder(tmp_path / "photos", per_class=8, seed=6)
    copy = os.fsdecode(bytes(root / "b") + b"/copy\xff.png")
    Path(copy).write_bytes((root / "b/000.png").read_bytes())
    out = tmp_path / "out"
    assert cli.main(["data", "check", str(root), f"--out={out}", "--fast"]) == 0
    printed = capsys.readouterr().out
    assert "duplicate (1)" in printed and "copy\\xff.png" in printed
    report = json.loads((out / "data_report.json").read_text(encoding="utf-8"))
    (duplicate,) = [p for p in report["problems"] if p["check"] == "duplicate"]
    assert duplicate["item"].endswith("copy\\xff.png") or "copy\\xff.png" in duplicate["detail"]
    assert "copy\\xff.png" in (out / "data_report.md").read_text(encoding="utf-8")


def test_prepare_data_drops_rows_with_missing_labels(tmp_path):
    from trainer.data.prepare import prepare_data

    lines = ["text,label"] + [f"{'good' if i % 2 else 'bad'} film {i},{i % 2}" for i in range(30)]
    lines += ["no label film,NaN", "another one,null"]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    data, report = prepare_data(str(path), SourceOptions(), val_fraction=0.2)
    assert data.class_names == ["0", "1"]
    every_text = [*data.x_train, *data.x_val, *data.x_test]
    assert len(every_text) == 30 and "no label film" not in every_text
    assert report.problem_counts()["missing_label"] == 2


def test_a_text_runs_report_shows_the_text_check(text_classifier_run):
    # The session's shared text run (conftest.py): its report.md's data check section and its
    # data_report.md carry the text part (lengths, majority class, near-duplicate rule).
    report = (text_classifier_run / "report.md").read_text()
    section = report[report.index("Data check (fast)") :]
    assert "words per text: median 16, 90% 16" in section
    assert "majority class 'neg': 50.0% of train" in section
    assert "near-duplicates: TF-IDF cosine >= 0.9" in section
    data_report = json.loads((text_classifier_run / "data_report.json").read_text())
    assert data_report["texts"]["words"]["train"]["texts"] == 40
    assert "## Texts" in (text_classifier_run / "data_report.md").read_text()
