"""The generic recipes (image_classifier, text_classifier) on data in the formats users have:
an image folder with a planted leak, the aclImdb tree, a CSV file. The folder and aclImdb runs
are the session's shared runs (conftest.py), also compressed by test_compress_command.py."""

import json

import numpy as np
import pytest

from datagen import write_photos_with_a_leak
from trainer import cli


@pytest.fixture
def photos(tmp_path):
    """train/ and test/ image folders (3 classes, 20 + 8 each) with one planted leak."""
    return write_photos_with_a_leak(tmp_path / "photos")


def test_image_classifier_on_a_folder(image_classifier_run):
    run_dir = image_classifier_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_names"] == ["a", "b", "c"]
    assert metrics["test_accuracy"] > 0.5  # bars are easy; chance is 1/3
    exports = {e["format"]: e for e in metrics["exports"]}
    assert abs(exports["float32"]["accuracy"] - metrics["test_accuracy"]) <= 1 / 25
    assert metrics["data_problems"] == {"leak": 1}
    data_report = json.loads((run_dir / "data_report.json").read_text())
    assert data_report["fast"] is True
    assert "Data check (fast)" in (run_dir / "report.md").read_text()
    out = (run_dir.parent / "train.log").read_text()
    assert "WARNING data check: 1 leak problem(s)" in out
    # 60 train images less the leaked original, less a stratified 10% (2 per class) for validation
    assert "data: 53 train / 6 val / 25 test images" in out


def test_text_classifier_on_aclimdb_layout_with_class_weights(text_classifier_run):
    run_dir = text_classifier_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_names"] == ["neg", "pos"]
    assert metrics["test_accuracy"] >= 0.75  # sentiment words decide; chance is 0.5
    exports = {e["format"]: e for e in metrics["exports"]}
    assert set(exports) == {"float32", "dynamic"}
    assert abs(exports["float32"]["accuracy"] - metrics["test_accuracy"]) <= 1 / 40
    vocabulary = (run_dir / "vocabulary.txt").read_text().splitlines()
    assert vocabulary[:2] == ["", "[UNK]"] and "wonderful" in vocabulary
    assert "balance: class_weights" in (run_dir / "config.yaml").read_text()


@pytest.mark.e2e
def test_text_classifier_on_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["text,label"] + [
        f"{'a great fun film' if i % 2 else 'a dull awful film'} {rng.integers(10**6)},"
        f"{'pos' if i % 2 else 'neg'}"
        for i in range(40)
    ]
    (tmp_path / "reviews.csv").write_text("\n".join(lines))
    run_dir = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "text_classifier",
                f"--data={tmp_path / 'reviews.csv'}",
                f"--run_dir={run_dir}",
                "--export=float32",  # the default model (linear) learns these 32 texts
            ]
        )
        == 0
    )
    assert (run_dir / "model_float32.tflite").is_file()


def test_generic_recipes_reject_wrong_kind_and_missing_data(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAINER_DEBUG", raising=False)
    runs = [
        (
            ["text_classifier", f"--data={photos}", f"--run_dir={tmp_path / 'r'}"],
            "holds image data; text_classifier needs text",
        ),
        (
            ["image_classifier", f"--run_dir={tmp_path / 's'}"],
            "no data source given: pass --data=PATH",
        ),
        (  # nothing pretrained: every layer trains from the start, nothing to fine-tune
            ["image_classifier", f"--data={photos}", "--backbone=mobilenet_v2"]
            + ["--fine_tune_epochs=2", f"--run_dir={tmp_path / 'f'}"],
            "--fine_tune_epochs=2 needs pretrained weights",
        ),
    ]
    for args, message in runs:
        assert cli.main(["train", *args]) == 1
        assert message in capsys.readouterr().err
    # int8 is not among text_classifier's export choices: an option error (2), before any data.
    args = ["text_classifier", f"--data={photos}", "--export=int8", f"--run_dir={tmp_path / 't'}"]
    assert cli.main(["train", *args]) == 2
    assert (
        "export must be comma-separated, each one of float32, float16, dynamic; received 'int8'"
        in (capsys.readouterr().err)
    )
    assert not (tmp_path / "t").exists() and not (tmp_path / "f").exists()
