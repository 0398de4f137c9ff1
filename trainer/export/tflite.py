"""TFLite export and verification: convert, score the file on the test set, size, latency.

A mobile file is only worth shipping if it still scores what the Keras model did. This module
converts a `tf_keras` model with `TFLiteConverter.from_keras_model` to float32, float16,
dynamic-range or full-integer int8, runs each file with LiteRT's interpreter on the whole test
set, and reports accuracy, the drop against Keras, top-1 agreement with Keras, the largest
output difference, raw and gzip size, and batch-1 latency (median and 90th percentile). Beside
each `model_<format>.tflite` it writes `model_<format>.json`: the labels in output order, the
input spec and the verification numbers, so an app can use the file without our code. The
converter's and LiteRT's own prints and warnings are kept out of the terminal unless
`TRAINER_DEBUG=1`. It must not train models or write reports (see `trainer.report`).

Example:

    from trainer.export import export_and_verify
    results = export_and_verify(model, x_test, y_test, keras_accuracy=0.92,
                                formats=["float32", "int8"], out_dir="runs/demo",
                                representative_images=x_train[:500],
                                class_names=["cat", "dog"], input_spec={"shape": [32, 32, 3]})
    for result in results:
        print(result.format, result.accuracy, result.drop_pp, result.agreement, result.size_bytes)
"""

import contextlib
import dataclasses
import gzip
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from trainer.files import atomic_save, atomic_write_bytes, atomic_write_json
from trainer.keras_path import check_keras_object
from trainer.precision import float32_copy

FORMATS = ("float32", "float16", "dynamic", "int8")
# Accuracy-drop budgets in percentage points against the Keras model, per format.
DEFAULT_BUDGETS_PP = {"float32": 0.1, "float16": 0.1, "dynamic": 0.5, "int8": 0.5}


@dataclasses.dataclass
class ExportResult:
    """One exported file and what it scored."""

    format: str
    path: str
    accuracy: float
    keras_accuracy: float
    drop_pp: float
    budget_pp: float
    size_bytes: int
    gzip_bytes: int
    latency_ms: float  # median milliseconds per batch-1 inference
    latency_threads: int
    # Added with the sidecar JSON; defaults keep older constructions working.
    agreement: float | None = None  # share of examples whose top-1 class equals Keras's
    max_abs_diff: float | None = None  # largest |TFLite output - Keras output| over all outputs
    latency_p90_ms: float | None = None  # 90th percentile of batch-1 latency
    examples: int = 0  # how many examples the file was verified on
    sidecar_path: str = ""  # model_<format>.json beside the .tflite file

    @property
    def within_budget(self) -> bool:
        return self.drop_pp <= self.budget_pp

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "within_budget": self.within_budget}


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
    int8_io: bool = False,
) -> bytes:
    """Converts a Keras model to a TFLite flatbuffer.

    Args:
        model: a `tf_keras` model.
        format: float32 (no quantization), float16 (weights), dynamic (int8 weights, float
            activations), or int8 (full integer; needs `representative_images`).
        representative_images: a few hundred preprocessed training inputs used to calibrate
            int8 activation ranges; take them from the training pipeline.
        int8_io: with int8, make the input and output tensors int8 too (for integer-only
            accelerators); the default keeps float32 I/O so callers need not quantize.
    """
    check_keras_object(model, "model")
    _check_format(format)
    # TFLite has no bfloat16 kernels: a mixed-precision model is converted as float32.
    converter = _converter(float32_copy(model))
    if format != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if format == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if format == "int8":
        if representative_images is None or len(representative_images) == 0:
            raise ValueError(
                "int8 export needs representative_images: pass a few hundred preprocessed "
                "training inputs (float32, the shape the model takes)"
            )
        samples = np.asarray(representative_images, dtype=np.float32)

        def representative_dataset():
            for sample in samples:
                yield [sample[None, ...]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    with quiet_native_output():
        return converter.convert()


def _has_recurrent_layer(layer) -> bool:
    import tf_keras as keras

    if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional):
        return True
    return any(_has_recurrent_layer(inner) for inner in getattr(layer, "layers", []))


def _converter(model):
    """The TFLite converter for a Keras model. Models with recurrent layers (LSTM, GRU) are
    converted at a fixed batch size of 1: at a dynamic batch size their loops keep TensorList
    ops that only run with the Flex delegate (select TF ops); at batch size 1 they become
    builtin ops, so every model here runs on the plain LiteRT interpreter."""
    if not _has_recurrent_layer(model):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([function], model)


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


def predict_tflite(
    model_content: bytes, x: np.ndarray, batch_size: int = 256, num_threads: int | None = None
) -> np.ndarray:
    """Runs a TFLite model on every row of `x` (float32, preprocessed) and returns outputs."""
    interpreter = _interpreter(model_content, num_threads)
    input_detail = interpreter.get_input_details()[0]
    output_index = interpreter.get_output_details()[0]["index"]
    x = np.asarray(x, dtype=np.float32)
    if list(input_detail["shape_signature"][:1]) == [1]:  # converted at batch 1 (recurrent)
        batch_size = 1
    outputs = []
    resized_to = None
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        if resized_to != len(batch):
            interpreter.resize_tensor_input(input_detail["index"], [len(batch), *x.shape[1:]])
            interpreter.allocate_tensors()
            resized_to = len(batch)
            input_detail = interpreter.get_input_details()[0]
            output_detail = interpreter.get_output_details()[0]
        interpreter.set_tensor(input_detail["index"], _quantize(batch, input_detail))
        interpreter.invoke()
        outputs.append(_dequantize(interpreter.get_tensor(output_index), output_detail))
    return np.concatenate(outputs)


def tflite_accuracy(model_content: bytes, x: np.ndarray, y: np.ndarray, **kwargs) -> float:
    """Top-1 accuracy of a TFLite classifier on `x` against integer labels `y`."""
    predictions = predict_tflite(model_content, x, **kwargs)
    return float(np.mean(np.argmax(predictions, axis=-1) == np.asarray(y)))


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
    detail = interpreter.get_input_details()[0]
    data = _quantize(np.asarray(sample, dtype=np.float32)[None, ...], detail)
    interpreter.set_tensor(detail["index"], data)
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
    detail = interpreter.get_input_details()[0]
    data = _quantize(np.asarray(sample, dtype=np.float32)[None, ...], detail)
    interpreter.set_tensor(detail["index"], data)
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    for run in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[run] = time.perf_counter() - start
    return float(np.median(times) * 1000.0), float(np.percentile(times, 90) * 1000.0)


def gzip_size(data: bytes) -> int:
    """Size in bytes after gzip at level 9: what zeros from pruning save on download."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def _tensor_description(detail: dict) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    described = {
        "shape": [int(size) for size in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
    }
    if scale:
        described["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
    return described


def write_sidecar(
    result: ExportResult,
    model_content: bytes,
    class_names: Sequence[str] | None,
    input_spec: dict[str, Any] | None,
    artifacts: Sequence[str] = (),
) -> Path:
    """Writes `model_<format>.json` beside the `.tflite` file and returns its path.

    It holds what an app needs to use the file without our code: the labels in output order,
    the input the model expects (shape, dtype, range, layout, preprocessing), the TFLite input
    and output tensors (with int8 quantization parameters when the I/O is integer), other
    files the model needs (e.g. a vocabulary) and the verification numbers.
    """
    interpreter = _interpreter(model_content, num_threads=1)
    verification = {
        key: value
        for key, value in result.to_dict().items()
        if key not in ("format", "path", "sidecar_path")
    }
    sidecar = {
        "model_file": Path(result.path).name,
        "format": result.format,
        "class_names": list(class_names) if class_names is not None else None,
        "input": dict(input_spec or {}),
        "tflite_input": _tensor_description(interpreter.get_input_details()[0]),
        "tflite_output": _tensor_description(interpreter.get_output_details()[0]),
        "files": list(artifacts),
        "verification": verification,
    }
    return atomic_write_json(Path(result.path).with_suffix(".json"), sidecar)


def export_and_verify(
    model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    keras_accuracy: float,
    formats: Sequence[str],
    out_dir: str | Path,
    representative_images: np.ndarray | None = None,
    budgets_pp: dict[str, float] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    input_spec: dict[str, Any] | None = None,
    keras_outputs: np.ndarray | None = None,
    artifacts: Sequence[str] = (),
) -> list[ExportResult]:
    """Exports `model` in each format to `out_dir/model_<format>.tflite` and verifies it.

    Each file is scored on all of `x_test` (preprocessed float32 inputs) with the LiteRT
    interpreter and compared with the Keras model: accuracy against `keras_accuracy`, top-1
    agreement and the largest output difference against `keras_outputs` (computed here when
    not given); latency is batch-1 on one thread. Beside each file goes its sidecar
    `model_<format>.json` with `class_names` (labels in output order), `input_spec`,
    `artifacts` (names of other files the model needs) and these numbers.
    """
    budgets = {**DEFAULT_BUDGETS_PP, **(budgets_pp or {})}
    for format in formats:
        _check_format(format)
    if class_names is not None and len(class_names) != model.output_shape[-1]:
        raise ValueError(
            f"{len(class_names)} class names were given for a model with "
            f"{model.output_shape[-1]} outputs: pass one name per output, in output order"
        )
    if keras_outputs is None:
        keras_outputs = model.predict(x_test, batch_size=256, verbose=0)
    keras_outputs = np.asarray(keras_outputs, np.float32)
    keras_top1 = np.argmax(keras_outputs, axis=-1)
    results = []
    for format in formats:
        content = convert(model, format, representative_images)
        path = atomic_write_bytes(Path(out_dir) / f"model_{format}.tflite", content)
        outputs = predict_tflite(content, x_test)
        top1 = np.argmax(outputs, axis=-1)
        accuracy = float(np.mean(top1 == np.asarray(y_test)))
        median, p90 = latency_percentiles(content, np.asarray(x_test[0], np.float32))
        result = ExportResult(
            format=format,
            path=str(path),
            accuracy=accuracy,
            keras_accuracy=float(keras_accuracy),
            drop_pp=round((keras_accuracy - accuracy) * 100.0, 4),
            budget_pp=budgets[format],
            size_bytes=len(content),
            gzip_bytes=gzip_size(content),
            latency_ms=median,
            latency_threads=1,
            agreement=float(np.mean(top1 == keras_top1)),
            max_abs_diff=float(np.max(np.abs(outputs - keras_outputs))),
            latency_p90_ms=p90,
            examples=len(x_test),
        )
        result.sidecar_path = str(
            write_sidecar(result, content, class_names, input_spec, artifacts)
        )
        results.append(result)
    return results


def parse_formats(text: str) -> list[str]:
    """`"float32, int8"` -> `["float32", "int8"]`, checking each name."""
    formats = [name.strip() for name in text.split(",") if name.strip()]
    for format in formats:
        _check_format(format)
    return formats


def save_and_verify(
    model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    run_dir: str | Path,
    formats: str | Sequence[str],
    representative_images: np.ndarray | None = None,
    *,
    class_names: Sequence[str] | None = None,
    input_spec: dict[str, Any] | None = None,
    artifacts: Sequence[str] = (),
) -> tuple[float, np.ndarray, list[ExportResult]]:
    """The end of a training run: score, save `RUN_DIR/model.keras`, export and verify.

    The Keras model is scored on exactly the inputs the TFLite files will see (`x_test`,
    preprocessed float32), so the drops compare like with like. A Keras 3 model is refused
    before anything is written, and `model.keras` is written atomically (a reader never sees
    half a file). `class_names`, `input_spec` and `artifacts` go into each file's sidecar JSON.

    Returns:
        (Keras test accuracy, predicted class per test example, one `ExportResult` per format)
    """
    from trainer.runs import MODEL_FILE

    check_keras_object(model, "model")
    if isinstance(formats, str):
        formats = parse_formats(formats)
    logits = model.predict(x_test, batch_size=256, verbose=0)
    predictions = np.argmax(logits, axis=-1)
    keras_accuracy = float(np.mean(predictions == np.asarray(y_test)))
    atomic_save(Path(run_dir) / MODEL_FILE, lambda temporary: model.save(temporary))
    exports = export_and_verify(
        model,
        x_test,
        y_test,
        keras_accuracy,
        formats,
        run_dir,
        representative_images,
        class_names=class_names,
        input_spec=input_spec,
        keras_outputs=logits,
        artifacts=artifacts,
    )
    return keras_accuracy, predictions, exports
