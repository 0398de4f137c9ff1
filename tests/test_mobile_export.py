"""Exported image files load in MediaPipe Tasks' ImageClassifier as they are (issue 22).

Each test loads the written file with MediaPipe itself, as an app would, besides reading the
verification numbers that `export_and_verify` records. The fashion_mnist run is the session's
shared one (conftest.py).
"""

import json

import numpy as np
import pytest
import tf_keras as keras

from conftest import classify_images
from trainer.export import export_and_verify, predict_tflite
from trainer.export.mobile import GRAY_WEIGHTS, ImageInput, image_input, mobile_graph, raw_pixels
from trainer.export.runtimes import top1_agreement

NAMES = [f"class {index}" for index in range(10)]


def _images(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Bars images (class = band of the bar) as the model takes them: pixels / 255; the RGB
    version gives each channel a different picture of the same image."""
    from conftest import make_class_images

    pixels, labels = make_class_images(400, seed=3, size=20)
    gray = pixels[..., None].astype(np.float32) / 255.0
    if channels == 1:
        return gray, labels.astype(np.int64)
    rgb = np.concatenate([gray, np.round(gray * 127.0) / 255.0, 1.0 - gray], axis=-1)
    return rgb.astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="module", params=[1, 3], ids=["grayscale", "rgb"])
def trained(request):
    """A small conv model trained a little on bars images, with its test and calibration data."""
    channels = request.param
    keras.utils.set_random_seed(0)
    x, y = _images(channels)
    model = keras.Sequential(
        [
            keras.Input((20, 20, channels)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPool2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    )
    model.fit(x[:300], y[:300], epochs=4, batch_size=32, verbose=0)
    spec = {"shape": [20, 20, channels], "mean": 0.0, "std": 255.0}
    return model, x[300:], y[300:], x[:100], spec


@pytest.mark.parametrize(
    ("format", "io", "file_dtype"),
    [("float32", "float32", "float32"), ("int8", "float32", "float32"), ("int8", "uint8", "uint8")],
)
def test_mediapipe_loads_the_file_and_returns_labelled_probabilities(
    trained, tmp_path, format, io, file_dtype
):
    model, x, y, representative, spec = trained
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert keras_accuracy > 0.5  # the model learned, so agreement means something
    (result,) = export_and_verify(
        model,
        x,
        y,
        keras_accuracy,
        [format],
        tmp_path,
        representative,
        class_names=NAMES,
        input_spec=spec,
        io=io,
    )
    path = tmp_path / f"model_{format}.tflite"
    pixels = raw_pixels(x, image_input(model, spec))
    assert pixels.shape == (100, 20, 20, 3) and pixels.dtype == np.uint8
    answers = classify_images(path, pixels)
    for categories in answers:
        assert sorted(category.category_name for category in categories) == sorted(NAMES)
        scores = [category.score for category in categories]
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert abs(sum(scores) - 1.0) < 0.02  # probabilities (int8: steps of 1/256)
    litert = predict_tflite(path.read_bytes(), x)
    agreement, _ = top1_agreement(np.array([answer[0].index for answer in answers]), litert)
    assert agreement == 1.0  # the same file on the same pixels, exact ties aside
    # What export_and_verify recorded says the same.
    check = result.mediapipe
    assert check.loaded and check.labels == NAMES and check.labels_match
    assert check.agreement == 1.0 and check.examples == len(x)
    assert abs(check.accuracy - result.accuracy) <= 0.01
    assert result.agreement >= 0.97 and result.outputs == "probabilities" and result.io == io
    assert result.max_abs_diff < (0.05 if format == "int8" else 1e-5)  # vs Keras's softmax
    sidecar = json.loads((tmp_path / f"model_{format}.json").read_text())
    assert sidecar["image"]["channels"] == 3 and sidecar["image"]["color_space"] == "RGB"
    assert sidecar["image"]["mean"] == 0.0 and sidecar["image"]["std"] == 255.0
    assert sidecar["image"]["dtype"] == file_dtype == sidecar["tflite_input"]["dtype"]
    assert sidecar["image"]["model_channels"] == spec["shape"][-1]
    assert sidecar["output"] == {"kind": "probabilities", "labels": NAMES}
    assert sidecar["verification"]["mediapipe"]["agreement"] == 1.0


def test_int8_input_is_kept_for_accelerators_and_reported_as_refused_by_mediapipe(
    trained, tmp_path
):
    from trainer.report import export_table

    model, x, y, representative, spec = trained
    (result,) = export_and_verify(
        model, x, y, 0.9, ["int8"], tmp_path, representative, input_spec=spec, io="int8"
    )
    assert result.accuracy > 0.5  # LiteRT runs it: the file is fine for integer hardware
    assert not result.mediapipe.loaded and "got INT8" in result.mediapipe.error
    table = export_table(0.9, None, [result])
    assert "| TFLite int8, int8 in/out |" in table and "**refused the file**" in table
    assert "MediaPipe Tasks refused the int8 file**: " in table and "got INT8" in table


def test_logits_on_request(trained, tmp_path):
    model, x, y, representative, spec = trained
    (result,) = export_and_verify(
        model,
        x,
        y,
        0.9,
        ["float32"],
        tmp_path,
        class_names=NAMES,
        input_spec=spec,
        outputs="logits",
    )
    logits = predict_tflite((tmp_path / "model_float32.tflite").read_bytes(), x)
    np.testing.assert_allclose(logits, model.predict(x, verbose=0), atol=1e-4)
    assert result.outputs == "logits" and result.mediapipe.loaded
    sidecar = json.loads((tmp_path / "model_float32.json").read_text())
    assert sidecar["output"]["kind"] == "logits"


def test_gray_conversion_keeps_a_gray_image_exactly():
    assert GRAY_WEIGHTS.sum() == np.float32(1.0)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    image = image_input(model, {"mean": 0.0, "std": 255.0})
    wrapped = mobile_graph(model, image, outputs="logits")
    assert wrapped.input_shape == (None, 4, 4, 3)
    gray = np.random.default_rng(0).random((5, 4, 4, 1), dtype=np.float32)
    np.testing.assert_allclose(
        wrapped.predict(np.repeat(gray, 3, -1), verbose=0),
        model.predict(gray, verbose=0),
        atol=1e-6,
    )


def test_image_normalization_comes_from_the_spec_or_from_whole_pixel_inputs():
    image_model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="does not say how pixels were scaled"):
        image_input(image_model, {"shape": [4, 4, 1]})
    with pytest.raises(ValueError, match="one mean and one std"):
        image_input(image_model, {"mean": [0.5, 0.5, 0.5], "std": 0.2})
    assert image_input(image_model, {"range": [0, 1]}).std == 255.0
    assert image_input(image_model, {"mean": 0, "std": 16}).pixel_range == (0.0, 255.0 / 16)
    pixels_over_255 = np.arange(64, dtype=np.float32).reshape(4, 4, 4, 1) / 255.0
    assert image_input(image_model, {}, pixels_over_255).std == 255.0
    with pytest.raises(ValueError, match="not pixels / 255"):
        image_input(image_model, {}, pixels_over_255 + 0.001)
    text_model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(2)])
    assert image_input(text_model, {"shape": [12]}) is None


def test_an_image_model_of_unknown_scale_is_exported_as_it_is_and_says_why(trained, tmp_path):
    from trainer.report import export_table

    model, x, y, _, spec = trained
    standardized = (x - 0.5) / 0.25  # not pixels / 255, and the spec does not say
    (result,) = export_and_verify(model, standardized, y, 0.9, ["float32"], tmp_path)
    assert result.outputs == "logits" and not result.mediapipe.checked
    assert "not RGB pixels" in result.mediapipe.error
    table = export_table(0.9, None, [result])
    assert "| ↳ MediaPipe Tasks | not checked |" in table
    assert "did not check the float32 file" in table and "give mean and std" in table


def test_exact_ties_count_as_agreement():
    litert = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]], np.float32)
    # Row 0: a tie, either answer is right; row 1 agrees; row 2 disagrees.
    assert top1_agreement(np.array([1, 1, 0]), litert) == (2 / 3, 1)
    assert top1_agreement(np.array([0, 1, 2]), litert) == (1.0, 0)


def test_a_model_at_chance_is_still_flagged(tmp_path, capsys):
    from trainer.experiment import Experiment, FitResult, finish

    x, y = _images(1)
    # Every class scores the same: the model learned nothing, and every answer is a tie.
    model = keras.Sequential(
        [
            keras.Input((20, 20, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, "linear", kernel_initializer="zeros"),
        ]
    )
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    experiment = Experiment(
        model=model,
        train=None,
        x_test=x[:100],
        y_test=y[:100],
        class_names=NAMES,
        representative=x[100:150],
        export_formats=("float32",),
        input_spec={"shape": [20, 20, 1], "mean": 0.0, "std": 255.0},
    )
    fit = FitResult(history={}, seconds=0.0, cpu_seconds=0.0)
    metrics = finish(experiment, tmp_path, fit, allow_chance=True)  # else the run fails
    assert metrics["at_chance"] is True
    assert "WARNING" in capsys.readouterr().out
    (export,) = metrics["exports"]
    assert export["mediapipe"]["loaded"] and export["mediapipe"]["agreement"] == 1.0
    report = (tmp_path / "report.md").read_text()
    assert "test accuracy at chance level" in report and "↳ MediaPipe Tasks" in report


def test_fashion_mnist_run_writes_files_mediapipe_loads(fashion_run):
    """The session's tiny fashion_mnist run (conftest.py, --io=uint8): both files load in
    MediaPipe and agree with LiteRT on >= 99.5% of the test set. (That `trainer compress
    --io=uint8` writes quantization-aware int8 files that take raw pixels exactly is
    tests/test_compress_mobile.py::test_every_candidate_is_the_file_an_app_loads.)"""
    from trainer.data.idx import FASHION_MNIST_CLASSES

    run_dir = fashion_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = list(FASHION_MNIST_CLASSES)
    for export in metrics["exports"]:
        check = export["mediapipe"]
        assert check["loaded"], check["error"]
        assert check["agreement"] >= 0.995 and check["labels"] == names
        assert check["examples"] == 200
    by_format = {export["format"]: export for export in metrics["exports"]}
    assert by_format["int8"]["io"] == "uint8" and by_format["float32"]["io"] == "float32"
    sidecar = json.loads((run_dir / "model_int8.json").read_text())
    assert sidecar["image"]["dtype"] == "uint8" and sidecar["tflite_input"]["shape"][-1] == 3
    image = ImageInput(28, 28, 1, sidecar["image"]["mean"], sidecar["image"]["std"])
    pixels = raw_pixels(np.full((1, 28, 28, 1), 0.5, np.float32), image)
    (categories,) = classify_images(run_dir / "model_int8.tflite", pixels)
    assert sorted(category.category_name for category in categories) == sorted(names)
    report = (run_dir / "report.md").read_text()
    assert "| TFLite int8, uint8 in/out |" in report and "↳ MediaPipe Tasks" in report
