"""`trainer compress` writes files that MediaPipe Tasks loads as they are, made the way
`trainer train` makes its files (issue 22): every candidate and `model_compressed.tflite` take
what the runtimes feed (RGB pixels, or the raw text through the tokenizer in the metadata),
return probabilities and name the classes; the report verifies the chosen file with MediaPipe.

The tests read the session's shared compressions (conftest.py: the image_classifier run, whose
int8 files take raw uint8 pixels, and the text_classifier run) and load the files with
MediaPipe itself, as an app would, on the few inputs each assertion needs.
"""

import json

import numpy as np
import pytest

from conftest import classify_images, classify_texts
from trainer import cli
from trainer.compress import CompressConfig
from trainer.compress.options import compress_io

CLASSES = ["a", "b", "c"]  # the shared image run's class folders


def _test_pixels(run, count: int) -> np.ndarray:
    """The run's first test images as an app has them: uint8 RGB (the recipe divides by 255)."""
    from trainer.compress import rebuild_run

    _, _, experiment = rebuild_run(run)
    return np.round(experiment.x_test[:count] * 255.0).astype(np.uint8)


def test_compressed_image_file_loads_in_mediapipe_with_labels_and_probabilities(
    image_classifier_run, image_classifier_compressed
):
    from ai_edge_litert.interpreter import Interpreter

    out = image_classifier_compressed
    metrics = json.loads((out / "metrics.json").read_text())
    compressed = metrics["compressed_file"]
    check = compressed["mediapipe"]
    # The whole test set through the task API, against LiteRT on the same pixels.
    assert check["loaded"], check["error"]
    assert check["examples"] == 25 and check["labels"] == CLASSES and check["labels_match"]
    assert check["agreement"] >= 0.99
    assert compressed["outputs"] == "probabilities" and compressed["examples"] == 25
    path = out / "model_compressed.tflite"
    best = next(c for c in metrics["candidates"] if c["name"] == metrics["best"])
    assert path.read_bytes() == (out / "candidates" / f"{best['name']}.tflite").read_bytes()
    for categories in classify_images(path, _test_pixels(image_classifier_run, 3)):
        assert sorted(category.category_name for category in categories) == CLASSES
        assert sum(category.score for category in categories) == pytest.approx(1.0, abs=0.03)
    sidecar = json.loads((out / "model_compressed.json").read_text())
    assert sidecar["class_names"] == CLASSES and sidecar["image"]["color_space"] == "RGB"
    assert best["format"] == "int8"  # the smallest file within the budget is an int8 one
    assert sidecar["image"]["dtype"] == "uint8"
    detail = Interpreter(model_path=str(path)).get_input_details()[0]
    assert detail["dtype"] == np.uint8 and list(detail["shape"]) == [1, 16, 16, 3]
    report = (out / "report.md").read_text()
    assert "## The compressed file" in report and "↳ MediaPipe Tasks" in report
    assert "with LiteRT" in report and "int8 files take and return uint8" in report


def test_every_candidate_is_the_file_an_app_loads(
    image_classifier_run, image_classifier_compressed
):
    """Each candidate file loads in MediaPipe with the class names, and its recorded size is
    that of the file on disk (metadata and RGB/softmax graph included). Every int8 file takes
    raw pixels exactly (q = pixel: scale 1/255, zero point 0), the quantization-aware one
    (prune+pqat) too, though QAT learned its own input range (post-training int8 gets the
    same check inside `convert`)."""
    from ai_edge_litert.interpreter import Interpreter

    out = image_classifier_compressed
    metrics = json.loads((out / "metrics.json").read_text())
    formats = {candidate["name"]: candidate["format"] for candidate in metrics["candidates"]}
    assert formats["prune+pqat-sparsity0.5-int8"] == "int8" and len(formats) >= 8
    pixels = _test_pixels(image_classifier_run, 1)
    for candidate in metrics["candidates"]:
        path = out / "candidates" / f"{candidate['name']}.tflite"
        assert candidate["size_bytes"] == path.stat().st_size, path.name
        (categories,) = classify_images(path, pixels)
        labels = sorted(category.category_name for category in categories)
        assert labels == CLASSES, path.name
        detail = Interpreter(model_path=str(path)).get_input_details()[0]
        expected = np.uint8 if candidate["format"] == "int8" else np.float32
        assert detail["dtype"] == expected and detail["shape"][-1] == 3, path.name
        if candidate["format"] == "int8":  # raw pixels exactly: q = pixel
            scale, zero_point = detail["quantization"]
            assert zero_point == 0 and abs(scale * 255.0 - 1.0) < 1e-6, path.name


def test_compress_takes_the_runs_io_unless_told():
    config = CompressConfig()
    assert compress_io(config, "uint8") == "uint8"
    assert compress_io(config, "") == "float32"
    assert compress_io(CompressConfig(io="int8"), "uint8") == "int8"


def test_a_bad_io_is_refused_naming_it(image_classifier_run, capsys):
    assert cli.main(["compress", str(image_classifier_run), "--io=uint16"]) == 2
    error = capsys.readouterr().err
    assert "io" in error and "uint16" in error
    assert not (image_classifier_run / "compression").exists()


def test_compressed_text_file_loads_in_text_classifier(
    text_classifier_run, text_classifier_compressed, tmp_path, capsys
):
    run_dir, out = text_classifier_run, text_classifier_compressed
    names = json.loads((run_dir / "metrics.json").read_text())["class_names"]
    metrics = json.loads((out / "metrics.json").read_text())
    formats = [c["format"] for c in metrics["candidates"] if c["technique"] in ("original", "ptq")]
    assert formats == ["float32", "float16", "dynamic"]
    check = metrics["compressed_file"]["mediapipe"]
    assert check["loaded"], check["error"]
    assert check["labels"] == names and check["agreement"] >= 0.99 and check["examples"] > 0
    path = out / "model_compressed.tflite"
    texts = ["A wonderful, moving film.", "Dull and boring, I didn't like it."]
    for categories in classify_texts(path, texts):
        assert sorted(category.category_name for category in categories) == sorted(names)
        assert sum(category.score for category in categories) == pytest.approx(1.0, abs=0.01)
    sidecar = json.loads((out / "model_compressed.json").read_text())
    assert sidecar["text"]["mediapipe"] == "loads" and sidecar["class_names"] == names
    assert "↳ MediaPipe Tasks" in (out / "report.md").read_text()
    # The sidecar and the vocabulary beside the file are all `trainer predict` needs.
    review = tmp_path / "review.txt"
    review.write_text("A wonderful, moving film.", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["predict", str(path), str(review), "--format=json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert sorted(entry["label"] for entry in row["top_k"]) == sorted(names)
