import numpy as np
import pytest
import tf_keras as keras

from conftest import KERAS3_MISSING
from trainer.export import convert, export_and_verify, predict_tflite, tflite_accuracy

# The tiny model's input: 20x20 grayscale pixels / 255.
SPEC = {"shape": [20, 20, 1], "mean": 0.0, "std": 255.0, "layout": "NHWC"}


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
        input_spec=SPEC,
    )
    by_format = {result.format: result for result in results}
    assert by_format["float32"].drop_pp <= 0.1
    assert abs(by_format["int8"].drop_pp) <= 5.0  # 100 test images: one image is 1 pp
    assert by_format["int8"].size_bytes < 0.5 * by_format["float32"].size_bytes
    assert by_format["float16"].size_bytes < 0.7 * by_format["float32"].size_bytes
    for result in results:
        assert (tmp_path / f"model_{result.format}.tflite").stat().st_size == result.size_bytes
        assert 0 < result.gzip_bytes and result.latency_ms > 0
        assert result.outputs == "probabilities" and result.mediapipe.loaded


@pytest.mark.parametrize(
    ("io", "dtype", "zero_point"), [("int8", np.int8, -128), ("uint8", np.uint8, 0)]
)
def test_integer_io_takes_pixels_exactly_and_runs_on_float_inputs(tiny, io, dtype, zero_point):
    model, x, y, train = tiny
    # Calibration data that never reaches black or white must not move the input's scale.
    dim = train[:100] * 0.8 + 0.1
    content = convert(model, "int8", dim, io=io, input_range=(0.0, 1.0))
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=content).get_input_details()[0]
    assert detail["dtype"] == dtype
    scale, zero = detail["quantization"]
    assert zero == zero_point and abs(scale * 255.0 - 1.0) < 1e-6  # q is pixel (+ zero point)
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert abs(tflite_accuracy(content, x, y) - keras_accuracy) <= 0.05


def test_integer_io_refuses_a_range_that_whole_pixels_cannot_hit(tiny):
    model, _, _, train = tiny
    # Pixels / 127.5 - 1: the zero point would be 127.5, so pixel p cannot be the input p.
    with pytest.raises(ValueError, match="zero point of 127.5"):
        convert(model, "int8", train[:50] * 2 - 1, io="uint8", input_range=(-1.0, 1.0))
    with pytest.raises(
        ValueError, match=r"span \[0, 0.90\d+\], outside the input range \[0, 0.5\]"
    ):
        convert(model, "int8", train[:50], io="uint8", input_range=(0.0, 0.5))
    with pytest.raises(ValueError, match="io must be one of float32, uint8, int8"):
        convert(model, "int8", train[:50], io="int16")


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
        outputs="logits",
    )
    sidecar = json.loads((tmp_path / "model_dynamic.json").read_text())
    assert result.sidecar_path == str(tmp_path / "model_dynamic.json")
    assert sidecar["class_names"] == names and sidecar["input"] == spec
    assert sidecar["format"] == "dynamic" and sidecar["files"] == ["vocabulary.txt"]
    assert sidecar["tflite_output"]["shape"] == [1, 10]
    # Numbers an app needs: the range [0, 1] is pixels / 255; the file takes RGB.
    assert sidecar["image"] == {
        "height": 20,
        "width": 20,
        "channels": 3,
        "color_space": "RGB",
        "mean": 0.0,
        "std": 255.0,
        "model_channels": 1,
        "dtype": "float32",
    }
    assert sidecar["output"] == {"kind": "logits", "labels": names}
    assert sidecar["verification"]["mediapipe"]["labels"] == names
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

    keras3 = pytest.importorskip("keras", reason=KERAS3_MISSING)
    if not keras3.__version__.startswith("3"):
        pytest.skip(KERAS3_MISSING + f" (keras {keras3.__version__} is installed)")
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
        save_and_verify(model, x, y, tmp_path, ["float32"], input_spec=SPEC)
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
        input_spec=SPEC,
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


def test_select_tf_ops_reads_the_operator_codes_not_the_bytes():
    """A builtin-only file with the word "Flex" in it (as a vocabulary can hold) needs no
    select ops; a file converted with a TensorFlow op TFLite lacks names it."""
    import tensorflow as tf

    from trainer.export.tflite import select_tf_ops

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def plain(x):
        return tf.nn.softmax(x)

    builtin = tf.lite.TFLiteConverter.from_concrete_functions([plain.get_concrete_function()])
    content = builtin.convert()
    assert select_tf_ops(content + b"Flex") == []

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def counts(x):
        return tf.math.bincount(x, minlength=4)

    flex = tf.lite.TFLiteConverter.from_concrete_functions([counts.get_concrete_function()])
    flex.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    assert select_tf_ops(flex.convert()) == ["FlexDenseBincount"]
