"""TFLite conversion and LiteRT runs: convert a `tf_keras` model, run the file, time it.

This module converts a `tf_keras` model with `TFLiteConverter.from_keras_model` to float32,
float16, dynamic-range or full-integer int8 (with float32, uint8 or int8 input and output),
runs a file with LiteRT's interpreter on a batch of preprocessed inputs, and measures size and
batch-1 latency. The converter's and LiteRT's own prints and warnings are kept out of the
terminal unless `TRAINER_DEBUG=1`. Verification on a test set, sidecar files and metadata live
in `trainer.export.verify`; it must not train models or write reports.

Example:

    from trainer.export import convert, predict_tflite
    content = convert(model, "int8", representative_images=x_train[:300], io="uint8",
                      input_range=(0.0, 1.0))       # raw pixels 0..255 are the model's x * 255
    probabilities = predict_tflite(content, x_test)  # float inputs are quantized for the file
"""

import contextlib
import gzip
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from trainer.export.mobile import check_io
from trainer.keras_path import check_keras_object
from trainer.precision import float32_copy

FORMATS = ("float32", "float16", "dynamic", "int8")
# Accuracy-drop budgets in percentage points against the Keras model, per format.
DEFAULT_BUDGETS_PP = {"float32": 0.1, "float16": 0.1, "dynamic": 0.5, "int8": 0.5}


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"unknown TFLite format {format!r}; choose from {', '.join(FORMATS)}")


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Keeps TensorFlow's converter and LiteRT's own output out of the user's terminal.

    The converter prints MLIR pass notes and absl log lines from C++ straight to file
    descriptors 1 and 2, and raises `UserWarning`s; LiteRT announces its XNNPACK delegate.
    None of it helps a user, so both descriptors go to a temporary file for the duration and
    warnings are ignored. If the block raises, the captured text is written to stderr so the
    error keeps its context. `TRAINER_DEBUG=1` turns the silencing off.
    """
    if os.environ.get("TRAINER_DEBUG"):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(1), os.dup(2)
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        succeeded = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
            succeeded = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if not succeeded:
                captured.seek(0)
                sys.stderr.write(captured.read().decode("utf-8", errors="replace"))


def convert(
    model,
    format: str = "float32",
    representative_images: np.ndarray | None = None,
    io: str = "float32",
    input_range: tuple[float, float] | None = None,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer.

    Args:
        model: a `tf_keras` model.
        format: float32 (no quantization), float16 (weights), dynamic (int8 weights, float
            activations), or int8 (full integer; needs `representative_images`).
        representative_images: a few hundred preprocessed training inputs used to calibrate
            int8 activation ranges; take them from the training pipeline.
        io: the input and output type of an int8 file: float32 (the default; callers need not
            quantize), uint8 (what MediaPipe Tasks and the TFLite Task Library accept) or int8
            (integer-only accelerators; MediaPipe refuses it). Other formats keep float32.
        input_range: the model inputs that the smallest and largest integer inputs stand for,
            e.g. (0, 1) for pixels / 255. With int8, the input's quantization is pinned to it
            (so uint8 input 0..255 is exactly the raw pixels) and checked after conversion;
            without it the input range is whatever calibration saw.
    """
    check_keras_object(model, "model")
    _check_format(format)
    check_io(io)
    # TFLite has no bfloat16 kernels: a mixed-precision model is converted as float32.
    converter = _converter(float32_copy(model))
    if format != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if format == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if format == "int8":
        converter.representative_dataset = _calibration(representative_images, input_range)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io != "float32":
            converter.inference_input_type = getattr(tf, io)
            converter.inference_output_type = getattr(tf, io)
    with quiet_native_output():
        content = converter.convert()
    if format == "int8" and io != "float32" and input_range is not None:
        check_input_quantization(content, input_range)
    return content


def _calibration(representative_images: np.ndarray | None, input_range):
    """The representative dataset for int8 calibration. With `input_range`, the first sample
    gets one input value at each end of the range, so that the input's calibrated range is
    exactly `input_range` whatever the samples hold (the calibrator keeps the minimum and
    maximum it saw; one value at each end moves the rest of the network by a pixel)."""
    if representative_images is None or len(representative_images) == 0:
        raise ValueError(
            "int8 export needs representative_images: pass a few hundred preprocessed "
            "training inputs (float32, the shape the model takes)"
        )
    samples = np.asarray(representative_images, dtype=np.float32)
    if input_range is not None:
        low, high = (float(value) for value in input_range)
        seen = float(samples.min()), float(samples.max())
        margin = 1e-6 * max(1.0, high - low)
        if seen[0] < low - margin or seen[1] > high + margin:
            raise ValueError(
                f"the representative inputs span [{seen[0]:g}, {seen[1]:g}], outside the input "
                f"range [{low:g}, {high:g}] the file's integer input stands for: preprocess "
                "them as the model's inputs (e.g. pixels / 255 for a range of [0, 1])"
            )
        samples = samples.copy()
        first = samples[0].reshape(-1)  # a view of the copy
        first[0], first[-1] = low, high

    def representative_dataset():
        for sample in samples:
            yield [sample[None, ...]]

    return representative_dataset


def check_input_quantization(model_content: bytes, input_range: tuple[float, float]) -> None:
    """Raises ValueError unless the file's integer input maps its whole integer range exactly
    onto `input_range`: for pixels / 255 and uint8, input value p is the model's p / 255."""
    detail = _interpreter(model_content, num_threads=1).get_input_details()[0]
    if detail["dtype"] not in (np.int8, np.uint8):
        return
    scale, zero_point = detail["quantization"]
    low, high = (float(value) for value in input_range)
    info = np.iinfo(detail["dtype"])
    expected_scale = (high - low) / (int(info.max) - int(info.min))
    expected_zero = int(info.min) - low / expected_scale
    if abs(scale / expected_scale - 1.0) > 1e-5 or abs(zero_point - expected_zero) > 1e-3:
        name = np.dtype(detail["dtype"]).name
        raise ValueError(
            f"the {name} input of the int8 file maps q to (q - {zero_point}) * {scale:.6g}, "
            f"not exactly onto the model's input range [{low:g}, {high:g}] (that would need a "
            f"scale of {expected_scale:.6g} and a zero point of {expected_zero:g}, a whole "
            f"number): an app's raw {name} pixels would not be what the model was trained on. "
            "Use io=float32, or a normalization whose mean is a whole pixel value"
        )


def _has_recurrent_layer(layer) -> bool:
    import tf_keras as keras

    if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional):
        return True
    return any(_has_recurrent_layer(inner) for inner in getattr(layer, "layers", []))


def _converter(model):
    """The TFLite converter for a Keras model, from a concrete function of the model's call.

    Handing the converter the Keras model (`from_keras_model`) makes it save the model as a
    SavedModel first, which traces every layer's call: about 8x the CPU of converting a
    function over a module that holds only the model's variables, for the same file (same
    size, tensor names, signature inputs and outputs, and outputs). The function takes the
    model's named inputs and returns its named outputs, so the file's signature is the one
    `from_keras_model` writes. Models with dict inputs or several outputs keep
    `from_keras_model` (their signature order is its to decide).

    Models with recurrent layers (LSTM, GRU) are converted at a fixed batch size of 1: at a
    dynamic batch size their loops keep TensorList ops that only run with the Flex delegate
    (select TF ops); at batch size 1 they become builtin ops, so every model here runs on the
    plain LiteRT interpreter."""
    if isinstance(model.input, dict) or len(model.outputs) != 1:
        return tf.lite.TFLiteConverter.from_keras_model(model)
    batch = 1 if _has_recurrent_layer(model) else None
    # The model's own input dtypes: a text file for the mobile runtimes takes int32 ids.
    specs = [
        tf.TensorSpec([batch, *tensor.shape[1:]], tensor.dtype, name=name)
        for tensor, name in zip(model.inputs, model.input_names, strict=True)
    ]
    output_name = model.output_names[0]

    @tf.function(input_signature=specs)
    def serve(*inputs):
        return {output_name: model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)}

    holder = tf.Module()
    holder.model_variables = model.variables
    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)


def _interpreter(model_content: bytes, num_threads: int | None):
    with quiet_native_output():
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        # The delegate announces itself on the first allocation, so allocate here too.
        interpreter.allocate_tensors()
    return interpreter


def _quantize(batch: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8):
        scale, zero_point = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        quantized = np.round(batch / scale + zero_point)
        return np.clip(quantized, info.min, info.max).astype(detail["dtype"])
    return batch.astype(detail["dtype"])


def _dequantize(output: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8):
        scale, zero_point = detail["quantization"]
        return (output.astype(np.float32) - zero_point) * scale
    return output


def _file_inputs(x: np.ndarray, detail: dict) -> np.ndarray:
    """`x` as float32, with a grayscale image's channel repeated three times when the file takes
    RGB (a grayscale model exported for the mobile runtimes converts RGB to gray itself)."""
    x = np.asarray(x, dtype=np.float32)
    takes_rgb = len(detail["shape"]) == 4 and detail["shape"][-1] == 3
    return np.repeat(x, 3, axis=-1) if takes_rgb and x.ndim == 4 and x.shape[-1] == 1 else x


def bert_feeds(ids: np.ndarray) -> dict[str, np.ndarray]:
    """BERT's three inputs for rows of word ids, as MediaPipe makes them: the mask is 1 where
    the id is not padding (0), the type ids are all 0 (one segment)."""
    ids = np.asarray(ids)
    return {
        "input_word_ids": ids,
        "input_mask": (ids != 0).astype(np.int32),
        "input_type_ids": np.zeros_like(ids, np.int32),
    }


def _feeds(batch: np.ndarray, details: list[dict]) -> list[tuple[int, np.ndarray]]:
    """(tensor index, value) for every input of the file. A file with one input gets `batch`
    in its type; a file with three is a BERT file (`trainer.export.text`): `batch` holds the
    word ids, and the mask and type ids are made from them as MediaPipe makes them."""
    if len(details) == 1:
        return [(details[0]["index"], _quantize(_file_inputs(batch, details[0]), details[0]))]
    values = bert_feeds(batch)
    fed = []
    for detail in details:
        names = [name for name in values if name in detail["name"]]
        if len(names) != 1:
            raise ValueError(
                f"the file has inputs {[d['name'] for d in details]}; a file with several "
                f"inputs must be a BERT file whose inputs are named {', '.join(values)}"
            )
        fed.append((detail["index"], values[names[0]].astype(detail["dtype"])))
    return fed


def predict_tflite(
    model_content: bytes, x: np.ndarray, batch_size: int = 256, num_threads: int | None = None
) -> np.ndarray:
    """Runs a TFLite model on every row of `x` (float32, preprocessed) and returns its outputs,
    dequantized. Integer files get `x` quantized with their input's scale and zero point; a
    file that takes RGB gets grayscale `x` repeated into three channels; a BERT file gets its
    mask and type ids made from the ids in `x`."""
    interpreter = _interpreter(model_content, num_threads)
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    x = np.asarray(x)
    if list(input_detail["shape_signature"][:1]) == [1]:  # converted at batch 1 (recurrent)
        batch_size = 1
    outputs = []
    resized_to = None
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if resized_to != len(batch):
            for detail in interpreter.get_input_details():
                shape = [len(batch), *detail["shape"][1:]]
                interpreter.resize_tensor_input(detail["index"], shape)
            interpreter.allocate_tensors()
            resized_to = len(batch)
            output_detail = interpreter.get_output_details()[0]
        for index, value in _feeds(batch, interpreter.get_input_details()):
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(output_index), output_detail))
    return np.concatenate(outputs)


def tflite_accuracy(model_content: bytes, x: np.ndarray, y: np.ndarray, **kwargs) -> float:
    """Top-1 accuracy of a TFLite classifier on `x` against integer labels `y`."""
    predictions = predict_tflite(model_content, x, **kwargs)
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(y)))


def input_shape(model_content: bytes) -> tuple[int, ...]:
    """The shape of one example a TFLite file takes (its first input, without the batch
    dimension): what a caller needs to build a sample for `latency_percentiles`.

    Example:

        >>> import tf_keras
        >>> from trainer.export import convert, input_shape
        >>> model = tf_keras.Sequential([tf_keras.Input((4, 3)), tf_keras.layers.Dense(2)])
        >>> input_shape(convert(model, "float32"))
        (4, 3)
    """
    details = _interpreter(model_content, 1).get_input_details()[0]
    return tuple(int(size) for size in details["shape"][1:])


def measure_latency(
    model_content: bytes,
    sample: np.ndarray,
    runs: int = 200,
    warmup: int = 20,
    num_threads: int = 1,
) -> float:
    """Mean milliseconds per batch-1 inference of `sample` (one preprocessed input)."""
    interpreter = _interpreter(model_content, num_threads)
    interpreter.allocate_tensors()
    for index, value in _feeds(np.asarray(sample)[None, ...], interpreter.get_input_details()):
        interpreter.set_tensor(index, value)
    for _ in range(warmup):
        interpreter.invoke()
    start = time.perf_counter()
    for _ in range(runs):
        interpreter.invoke()
    return (time.perf_counter() - start) / runs * 1000.0


def latency_percentiles(
    model_content: bytes,
    sample: np.ndarray,
    runs: int = 200,
    warmup: int = 20,
    num_threads: int = 1,
) -> tuple[float, float]:
    """(median, 90th percentile) milliseconds of batch-1 inference of one preprocessed input.

    Each call is timed on its own: the median is what a user usually waits, the 90th
    percentile what a slow call costs.
    """
    interpreter = _interpreter(model_content, num_threads)
    for index, value in _feeds(np.asarray(sample)[None, ...], interpreter.get_input_details()):
        interpreter.set_tensor(index, value)
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    for run in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[run] = time.perf_counter() - start
    return float(np.median(times) * 1000.0), float(np.percentile(times, 90) * 1000.0)


def select_tf_ops(model_content: bytes) -> list[str]:
    """The TensorFlow ops a TFLite file runs through the Flex delegate (select TF ops), read
    from its operator codes: empty for a file the plain LiteRT interpreter and the mobile
    runtimes run. (Searching the bytes for "Flex" is wrong: a vocabulary in the metadata can
    hold the word.)"""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_content, 0)
    codes = (model.OperatorCodes(index) for index in range(model.OperatorCodesLength()))
    names = ((code.CustomCode() or b"").decode("utf-8", "replace") for code in codes)
    return sorted({name for name in names if name.startswith("Flex")})


def gzip_size(data: bytes) -> int:
    """Size in bytes after gzip at level 9: what zeros from pruning save on download."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def parse_formats(text: str) -> list[str]:
    """`"float32, int8"` -> `["float32", "int8"]`, checking each name."""
    formats = [name.strip() for name in text.split(",") if name.strip()]
    for format in formats:
        _check_format(format)
    return formats
