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
    model = keras.Sequential([
        keras.Input((20, 20, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPool2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])  # fmt: skip
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    )
    model.fit(x[:300], y[:300], epochs=4, batch_size=32, verbose=0)
    return model, x[300:], y[300:].astype(np.int64), x[:300]


def test_float32_matches_keras_outputs(tiny):
    model, x, y, _ = tiny
    content = convert(model, "float32")
    np.testing.assert_allclose(predict_tflite(content, x, batch_size=33), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-4)  # fmt: skip


def test_export_and_verify_within_budgets(tiny, tmp_path):
    model, x, y, train = tiny
    keras_accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert keras_accuracy > 0.5  # the model learned something, so parity means something
    results = export_and_verify(model, x, y, keras_accuracy, ["float32", "float16", "dynamic", "int8"],
                                tmp_path, representative_images=train[:100])  # fmt: skip
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
