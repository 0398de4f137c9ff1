import numpy as np
import pytest
import tf_keras as keras

from trainer.export import convert, export_and_verify, predict_tflite, tflite_accuracy


@pytest.fixture(scope="module")
def tiny():
    """A small conv model trained a little on separable data, with its test inputs."""
    from conftest import make_class_images

    keras.utils.set_random_seed(0)
    x, y = make_class_images(400, seed=3, size=20)
    x = x[..., None].astype(np.float32) / 255.0
    model = keras.Sequential(
        [
            keras.Input((20, 20, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPool2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    )
    model.fit(x[:300], y[:300], epochs=4, batch_size=32, verbose=0)
    return model, x[300:], y[300:].astype(np.int64), x[:300]


def test_float32_matches_keras_outputs(tiny):
    model, x, y, _ = tiny
    content = convert(model, "float32")
    np.testing.assert_allclose(
        predict_tflite(content, x, batch_size=33), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4
    )


def test_export_and_verify_within_budgets(tiny, tmp_path):
    model, x, y, train = tiny
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert keras_accuracy > 0.5  # the model learned something, so parity means something
    results = export_and_verify(
        model,
        x,
        y,
        keras_accuracy,
        ["float32", "float16", "dynamic", "int8"],
        tmp_path,
        representative_images=train[:100],
    )
    by_format = {result.format: result for result in results}
    assert by_format["float32"].drop_pp <= 0.1
    assert abs(by_format["int8"].drop_pp) <= 5.0  # 100 test images: one image is 1 pp
    assert by_format["int8"].size_bytes < 0.5 * by_format["float32"].size_bytes
    assert by_format["float16"].size_bytes < 0.7 * by_format["float32"].size_bytes
    for result in results:
        assert (tmp_path / f"model_{result.format}.tflite").stat().st_size == result.size_bytes
        assert 0 < result.gzip_bytes and result.latency_ms > 0


def test_int8_io_model_runs_on_float_inputs(tiny):
    model, x, y, train = tiny
    content = convert(model, "int8", representative_images=train[:100], int8_io=True)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert abs(tflite_accuracy(content, x, y) - keras_accuracy) <= 0.05


def test_int8_needs_representative_data(tiny):
    with pytest.raises(ValueError, match="representative_images"):
        convert(tiny[0], "int8")


def test_unknown_format(tiny):
    with pytest.raises(ValueError, match="unknown TFLite format 'int4'"):
        convert(tiny[0], "int4")


def test_parse_formats_reads_a_comma_list_and_names_a_bad_format():
    from trainer.export import parse_formats

    assert parse_formats(" float32, int8 ,") == ["float32", "int8"]
    with pytest.raises(ValueError, match="int4"):
        parse_formats("float32,int4")


def test_sidecar_holds_labels_input_spec_and_verification(tiny, tmp_path):
    import json

    model, x, y, train = tiny
    names = [f"class {index}" for index in range(10)]
    spec = {"shape": [20, 20, 1], "dtype": "float32", "range": [0, 1], "layout": "NHWC"}
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    (result,) = export_and_verify(
        model,
        x,
        y,
        keras_accuracy,
        ["dynamic"],
        tmp_path,
        class_names=names,
        input_spec=spec,
        artifacts=["vocabulary.txt"],
    )
    sidecar = json.loads((tmp_path / "model_dynamic.json").read_text())
    assert result.sidecar_path == str(tmp_path / "model_dynamic.json")
    assert sidecar["class_names"] == names and sidecar["input"] == spec
    assert sidecar["format"] == "dynamic" and sidecar["files"] == ["vocabulary.txt"]
    assert sidecar["tflite_output"]["shape"] == [1, 10]
    assert sidecar["verification"]["examples"] == len(x) == result.examples
    assert sidecar["verification"]["agreement"] == result.agreement >= 0.9
    # Dynamic-range int8 weights move the logits a little, never zero and never far.
    assert 0 < result.max_abs_diff < 1.0
    assert result.latency_p90_ms >= result.latency_ms > 0


def test_class_names_must_match_the_outputs(tiny, tmp_path):
    model, x, y, _ = tiny
    with pytest.raises(ValueError, match="3 class names were given for a model with 10 outputs"):
        export_and_verify(model, x, y, 0.9, ["float32"], tmp_path, class_names=["a", "b", "c"])
    assert not list(tmp_path.iterdir())


def test_save_and_verify_refuses_keras3_before_writing(tmp_path):
    from trainer.export import save_and_verify

    keras3 = pytest.importorskip("keras")
    if not keras3.__version__.startswith("3"):
        pytest.skip(f"keras {keras3.__version__} is not Keras 3")
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2)])
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int64)
    with pytest.raises(TypeError, match="Keras 3 object"):
        save_and_verify(model, x, y, tmp_path, ["float32"])
    assert not list(tmp_path.iterdir())


def test_save_and_verify_replaces_model_keras_atomically(tiny, tmp_path, monkeypatch):
    from trainer.export import save_and_verify

    model, x, y, _ = tiny
    (tmp_path / "model.keras").write_bytes(b"the previous model")

    def save_half_then_fail(path, *args, **kwargs):
        with open(path, "wb") as file:
            file.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_and_verify(model, x, y, tmp_path, ["float32"])
    assert (tmp_path / "model.keras").read_bytes() == b"the previous model"
    assert [path.name for path in tmp_path.iterdir()] == ["model.keras"]  # no temporary left
    monkeypatch.undo()
    accuracy, predictions, (result,) = save_and_verify(
        model,
        x,
        y,
        tmp_path,
        "float32",
        class_names=[str(index) for index in range(10)],
        input_spec={"shape": [20, 20, 1]},
    )
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    assert accuracy == result.keras_accuracy and len(predictions) == len(x)
    assert (tmp_path / "model_float32.json").is_file()


def test_quiet_native_output_hides_native_prints_but_replays_them_on_error(capfd, monkeypatch):
    import os
    import warnings

    from trainer.export import quiet_native_output

    monkeypatch.delenv("TRAINER_DEBUG", raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_native_output():
            os.write(2, b"I0000 converter chatter\n")
            os.write(1, b"fully_quantize: 0\n")
            warnings.warn("Statistics for quantized inputs", UserWarning, stacklevel=1)
    captured = capfd.readouterr()
    assert "chatter" not in captured.err and "fully_quantize" not in captured.out
    assert not seen
    with pytest.raises(RuntimeError), quiet_native_output():
        os.write(2, b"the converter's reason\n")
        raise RuntimeError("conversion failed")
    assert "the converter's reason" in capfd.readouterr().err
    monkeypatch.setenv("TRAINER_DEBUG", "1")
    with quiet_native_output():
        os.write(2, b"shown when debugging\n")
    assert "shown when debugging" in capfd.readouterr().err
