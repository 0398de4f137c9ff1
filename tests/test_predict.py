"""`trainer predict RUN_OR_FILE INPUT...` on tiny image and text runs.

The preprocessing is checked against the recipe's own (the same arrays the run was tested on),
the run's model against its exported files, and the labels against generated inputs whose
class is known. The runs are the session's shared ones (conftest.py); report.md's MediaPipe
snippets are run in tests/test_model_card.py.
"""

import dataclasses
import io
import json

import numpy as np
import pytest

from datagen import bar_image, encode, write_image_folder
from trainer import cli
from trainer.predict import Input, load_classifier, prepare, read_inputs, top_k
from trainer.recipe_loader import load_run_recipe


@pytest.fixture(scope="module")
def new_images(tmp_path_factory):
    """Bar images the run never saw (another seed), 4 per class, in class folders."""
    return write_image_folder(tmp_path_factory.mktemp("new") / "new", per_class=4, seed=7, size=16)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.strip().splitlines()]


def test_images_are_prepared_as_the_recipe_prepared_its_test_set(image_classifier_run, tmp_path):
    recipe, config = load_run_recipe(image_classifier_run, "test")
    experiment = recipe.build(config)
    pixels = np.round(experiment.x_test[:12] * 255).astype(np.uint8)
    for index, image in enumerate(pixels):
        (tmp_path / f"{index:02d}.png").write_bytes(encode(image, ".png"))
    classifier = load_classifier(image_classifier_run)
    inputs = read_inputs([str(tmp_path)], classifier.kind)
    np.testing.assert_array_equal(prepare(classifier, inputs), experiment.x_test[:12])


def test_the_run_and_its_files_label_new_images(image_classifier_run, new_images, capsys):
    outputs = {}
    for source in ("", "model_float32.tflite", "model_int8.tflite"):
        code = cli.main(
            ["predict", str(image_classifier_run / source), str(new_images), "--format=json"]
        )
        assert code == 0, capsys.readouterr().err
        outputs[source] = _json_lines(capsys.readouterr().out)
    keras_rows = outputs[""]
    assert len(keras_rows) == 12
    truth = [row["input"].split("/")[-2] for row in keras_rows]
    top1 = [row["top_k"][0]["label"] for row in keras_rows]
    assert np.mean(np.array(top1) == np.array(truth)) >= 0.75  # chance is 1/3
    for row in keras_rows:
        probabilities = [entry["probability"] for entry in row["top_k"]]
        assert len(probabilities) == 3 and sum(probabilities) == pytest.approx(1, abs=1e-4)
        assert probabilities == sorted(probabilities, reverse=True)
    for source in ("model_float32.tflite", "model_int8.tflite"):
        file_rows = outputs[source]
        assert [row["input"] for row in file_rows] == [row["input"] for row in keras_rows]
        assert [row["top_k"][0]["label"] for row in file_rows] == top1, source
    for keras_row, file_row in zip(keras_rows, outputs["model_float32.tflite"], strict=True):
        assert file_row["top_k"][0]["probability"] == pytest.approx(
            keras_row["top_k"][0]["probability"], abs=1e-4
        )


def test_any_image_size_and_channel_count_is_converted(image_classifier_run, tmp_path, capsys):
    rng = np.random.default_rng(3)
    big = np.kron(bar_image(1, rng, size=16), np.ones((3, 3, 1), np.uint8))  # 48x48, class b
    (tmp_path / "big.png").write_bytes(encode(big, ".png"))
    (tmp_path / "gray.png").write_bytes(encode(big[..., :1], ".png"))
    assert cli.main(["predict", str(image_classifier_run), str(tmp_path), "--top_k=1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["input", "top-1"]
    assert [line.split()[1] for line in lines[1:]] == ["b", "b"]


def test_texts_from_files_and_standard_input(text_classifier_run, tmp_path, monkeypatch, capsys):
    recipe, config = load_run_recipe(text_classifier_run, "test")
    experiment = recipe.build(config)
    classifier = load_classifier(text_classifier_run)
    texts = experiment.test_texts[:10]
    ids = prepare(classifier, [Input(str(index), text) for index, text in enumerate(texts)])
    np.testing.assert_array_equal(ids, experiment.x_test[:10])

    (tmp_path / "review.txt").write_text("great wonderful superb film, the best story")
    monkeypatch.setattr("sys.stdin", io.StringIO("awful boring terrible waste\n\nbrilliant fun\n"))
    arguments = [
        "predict",
        str(text_classifier_run),
        str(tmp_path / "review.txt"),
        "-",
        "--format=json",
    ]
    capsys.readouterr()  # build printed its data summary
    assert cli.main(arguments) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert [row["input"] for row in rows] == [
        str(tmp_path / "review.txt"),
        "<stdin>:1",
        "<stdin>:3",
    ]
    assert [row["top_k"][0]["label"] for row in rows] == ["pos", "neg", "pos"]
    assert [len(row["top_k"]) for row in rows] == [2, 2, 2]  # top_k 3 of 2 classes


def test_tflite_text_file_agrees_with_the_run(text_classifier_run):
    texts = ["a great film", "dull and bad", "the plot was brilliant fun"]
    inputs = [Input(str(index), text) for index, text in enumerate(texts)]
    keras = top_k(load_classifier(text_classifier_run), inputs, k=2)
    file = top_k(load_classifier(text_classifier_run / "model_float32.tflite"), inputs, k=2)
    assert [row[0][0] for row in keras] == [row[0][0] for row in file]
    for keras_row, file_row in zip(keras, file, strict=True):
        assert keras_row[0][1] == pytest.approx(file_row[0][1], abs=1e-4)


def test_errors_name_the_input_and_what_to_do(image_classifier_run, tmp_path, capsys):
    cases = [
        (
            [str(image_classifier_run), str(tmp_path / "missing.png")],
            1,
            "missing.png' does not exist",
        ),
        ([str(image_classifier_run), "-"], 1, "- (standard input) gives texts"),
        ([str(image_classifier_run / "model.keras"), str(tmp_path)], 1, "pass the run folder"),
        ([str(image_classifier_run), str(tmp_path)], 1, "holds no .png"),
        ([str(image_classifier_run)], 2, "at least one input"),
        ([str(image_classifier_run), str(tmp_path), "--format=xml"], 2, "table or json"),
    ]
    (tmp_path / "notes.txt").write_text("not an image")
    for arguments, code, message in cases:
        assert cli.main(["predict", *arguments]) == code, arguments
        assert message in capsys.readouterr().err, arguments
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert cli.main(["predict", str(image_classifier_run), str(tmp_path / "broken.png")]) == 1
    assert "broken.png: cannot decode as an image" in capsys.readouterr().err


def test_predict_help_lists_its_options(capsys):
    from trainer.cli.predict import PredictConfig

    assert cli.main(["predict", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: trainer predict RUN_OR_FILE INPUT...")
    for field in dataclasses.fields(PredictConfig):
        assert f"--{field.name}=" in text
    assert "trainer predict runs/" in text  # the examples
