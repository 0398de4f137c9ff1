"""model_card.md and report.md's "use this file" snippet, on a tiny digits run.

The card's numbers are checked against metrics.json; the report's Python snippet is run as a
user would, in a fresh process in the run folder, on a new image.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer import cli
from trainer.keras_path import child_environment
from trainer.model_card import per_class_accuracy
from trainer.snippets import USE_HEADING, usage_snippet


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("card") / "run"
    code = cli.main(["train", "digits", "--epochs=3", "--width=8", f"--run_dir={run_dir}"])
    assert code == 0
    return run_dir


def _table_rows(text: str, header: str) -> list[list[str]]:
    lines = text.split(header, 1)[1].strip().splitlines()[1:]  # skip the |---| line
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_card_numbers_are_the_runs_metrics(digits_run):
    card = (digits_run / "model_card.md").read_text()
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert f"in output order: {', '.join(metrics['class_names'])}." in card
    assert f"**{metrics['test_accuracy'] * 100:.2f}%**" in card
    rows = _table_rows(card, "| id | class | test examples | correct | accuracy |")
    assert [row[1] for row in rows] == metrics["class_names"]
    totals = [int(row[2]) for row in rows]
    corrects = [int(row[3]) for row in rows]
    exports = {Path(export["path"]).name: export for export in metrics["exports"]}
    assert sum(totals) == metrics["exports"][0]["examples"] == 450  # digits' 25% test split
    assert sum(corrects) / sum(totals) == pytest.approx(metrics["test_accuracy"], abs=1e-9)
    for row, total, correct in zip(rows, totals, corrects, strict=True):
        assert row[4] == f"{correct / total * 100:.2f}%"
    files = {row[0]: row for row in _table_rows(card, "| file | test accuracy |")}
    assert set(exports) <= set(files)
    for name, export in exports.items():
        row = files[name]
        assert row[1] == f"{export['accuracy'] * 100:.2f}%"
        assert row[4].startswith(f"{export['latency_ms']:.3f} / {export['latency_p90_ms']:.3f}")
        assert row[5] == f"{export['mediapipe']['accuracy'] * 100:.2f}%"
    assert "Trained on grayscale images" in card  # digits are one-channel
    assert "450 examples: the accuracy is known to about" in card


def test_the_reports_python_snippet_classifies_a_new_image(digits_run, tmp_path):
    from datagen import encode

    report = (digits_run / "report.md").read_text()
    section = report.split(f"## {USE_HEADING}", 1)[1]
    chosen = re.search(r"`(model_\w+\.tflite)`", section).group(1)
    assert (digits_run / chosen).is_file()
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert f'model_asset_path="{chosen}"' in snippet and "```kotlin" in section
    image = np.zeros((8, 8, 3), np.uint8)
    image[1:7, 3:5] = 255  # a bright vertical stroke
    (tmp_path / "photo.png").write_bytes(encode(image, ".png"))
    snippet = snippet.replace("photo.jpg", str(tmp_path / "photo.png"))
    result = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=digits_run,
        env=child_environment("TRAINER_DEBUG"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [line.rsplit(" ", 1) for line in result.stdout.strip().splitlines()]
    assert len(printed) == 3
    assert all(name in [str(digit) for digit in range(10)] for name, _ in printed)
    scores = [float(score) for _, score in printed]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1


def test_per_class_accuracy_counts_each_class():
    rows = per_class_accuracy([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], ["a", "b", "c"])
    assert rows == [("a", 2, 1), ("b", 1, 1), ("c", 3, 2)]


def test_no_snippet_without_a_file_mediapipe_loaded():
    exports = [
        {
            "format": "int8",
            "path": "run/model_int8.tflite",
            "size_bytes": 10,
            "within_budget": True,
            "mediapipe": {"loaded": False, "error": "Requested one of these types: uint8/float32"},
        }
    ]
    text = usage_snippet(exports)
    assert "No exported file both loaded in MediaPipe Tasks" in text
    assert "int8: Requested one of these types" in text and "```" not in text
