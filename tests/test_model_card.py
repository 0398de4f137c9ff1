"""model_card.md and report.md's "use this file" snippets, on the session's tiny digits and
text_classifier runs (conftest.py).

The card's numbers are checked against metrics.json; the reports' Python snippets (MediaPipe
Tasks' ImageClassifier and TextClassifier) are run as a user would, in a new interpreter in
each run folder, on a new image and new texts.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainer.keras_path import child_environment
from trainer.model_card import per_class_accuracy
from trainer.snippets import USE_HEADING, usage_snippet


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


def _snippet(run_dir: Path) -> tuple[str, str]:
    """(report.md's "use this file" section, its Python snippet) of the run in `run_dir`."""
    section = (run_dir / "report.md").read_text().split(f"## {USE_HEADING}", 1)[1]
    return section, section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.e2e
def test_the_reports_python_snippets_classify_a_new_image_and_a_text(
    digits_run, text_classifier_run, tmp_path
):
    """report.md's MediaPipe snippets run as written, each from its run folder, in one new
    interpreter as a user would (the image one with a photo of ours): ImageClassifier on the
    digits run's file, TextClassifier on the session's text_classifier run's."""
    from datagen import encode

    section, image_snippet = _snippet(digits_run)
    chosen = re.search(r"`(model_\w+\.tflite)`", section).group(1)
    assert (digits_run / chosen).is_file()
    assert f'model_asset_path="{chosen}"' in image_snippet and "```kotlin" in section
    image = np.zeros((8, 8, 3), np.uint8)
    image[1:7, 3:5] = 255  # a bright vertical stroke
    (tmp_path / "photo.png").write_bytes(encode(image, ".png"))
    image_snippet = image_snippet.replace("photo.jpg", str(tmp_path / "photo.png"))
    section, text_snippet = _snippet(text_classifier_run)
    assert "takes the text itself" in section
    assert "text.TextClassifier" in text_snippet and '"a wonderful film"' in text_snippet
    script = (
        "import os\n"
        f"os.chdir({str(digits_run)!r})\n"
        f"exec({image_snippet!r})\n"
        "print('--- text ---')\n"
        f"os.chdir({str(text_classifier_run)!r})\n"
        f"exec({text_snippet!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=child_environment("TRAINER_DEBUG"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    image_lines, text_lines = result.stdout.strip().split("--- text ---")
    printed = [line.rsplit(" ", 1) for line in image_lines.strip().splitlines()]
    assert len(printed) == 3
    assert all(name in [str(digit) for digit in range(10)] for name, _ in printed)
    scores = [float(score) for _, score in printed]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    printed = [line.split() for line in text_lines.strip().splitlines()]
    assert [label for label, _ in printed] == ["pos", "neg"]  # "wonderful" is a positive word
    assert sum(float(score) for _, score in printed) == pytest.approx(1, abs=0.01)


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
