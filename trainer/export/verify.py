"""Export and verification: each mobile file scored on the whole test set, with its sidecar.

A mobile file is only worth shipping if it still scores what the Keras model did, and if the
runtimes an app uses load it as it is. For each format this module converts the model (an
image model behind the mobile graph of `trainer.export.mobile`: RGB input, probabilities out,
with TFLite metadata naming its labels and normalization), runs the file with LiteRT's
interpreter on the whole test set and reports accuracy, the drop against Keras, top-1
agreement with Keras, the largest output difference (file probabilities against Keras's
softmax, or logits against logits), raw and gzip size and batch-1 latency; then it classifies
the same test images, as raw pixels, through MediaPipe Tasks (`trainer.export.runtimes`).
Beside each `model_<format>.tflite` it writes `model_<format>.json`: labels in output order,
the input's numbers (size, channels, color space, mean, std, dtype), the output kind and the
verification numbers, so an app can use the file without our code. A text model is exported
behind int32 token ids with its tokenizer in the metadata (`trainer.export.text`) and its
raw test texts go through MediaPipe's TextClassifier. `trainer compress` makes and checks
its files by the same path: `mobile_target` (what a model's files are made for), `mobile_file`
(the runtimes' graph, conversion, metadata), `keras_reference` and `verify_file`.

It must not train models or write reports (see `trainer.report`).

Example:

    from trainer.export import export_and_verify
    results = export_and_verify(model, x_test, y_test, keras_accuracy=0.92,
                                formats=["float32", "int8"], out_dir="runs/demo",
                                representative_images=x_train[:500], class_names=["cat", "dog"],
                                input_spec={"shape": [32, 32, 3], "mean": 0.0, "std": 255.0},
                                io="uint8")
    for result in results:
        print(result.format, result.accuracy, result.agreement, result.mediapipe.agreement)
"""

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer.export.mobile import (
    ImageInput,
    check_io,
    check_outputs,
    ends_in_softmax,
    image_input,
    mobile_graph,
    model_inputs,
    raw_pixels,
    rgb,
    softmax,
)
from trainer.export.runtimes import MEDIAPIPE, RuntimeCheck
from trainer.export.text import TextInput, text_graph, text_input
from trainer.export.tflite import (
    DEFAULT_BUDGETS_PP,
    _check_format,
    _interpreter,
    convert,
    gzip_size,
    latency_percentiles,
    parse_formats,
    predict_tflite,
)
from trainer.files import atomic_save, atomic_write_bytes, atomic_write_json
from trainer.keras_path import check_keras_object


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
    max_abs_diff: float | None = None  # largest |file output - Keras output| over all outputs
    latency_p90_ms: float | None = None  # 90th percentile of batch-1 latency
    examples: int = 0  # how many examples the file was verified on
    sidecar_path: str = ""  # model_<format>.json beside the .tflite file
    io: str = "float32"  # the file's input and output type: float32, uint8 or int8
    outputs: str = "logits"  # what the file returns: probabilities or logits
    mediapipe: RuntimeCheck | None = None  # MediaPipe Tasks on the same test images
    finite_outputs: bool = True  # False when the file or the Keras model gave NaN or inf outputs

    @property
    def within_budget(self) -> bool:
        """True when the file's drop is within its budget and every number it was verified
        by is finite: a file with NaN or infinite outputs (or an undefined drop or output
        difference) is never within budget, whatever its accuracy."""
        numbers = [self.accuracy, self.drop_pp, self.budget_pp]
        if self.max_abs_diff is not None:
            numbers.append(self.max_abs_diff)
        if not self.finite_outputs or not all(math.isfinite(number) for number in numbers):
            return False
        return self.drop_pp <= self.budget_pp

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "within_budget": self.within_budget}


@dataclasses.dataclass
class MobileTarget:
    """What the files of one model are made for, whatever the format: the input the runtimes
    feed (an image, token ids of a text, or the model's own input), the labels, what the file
    returns, and the metadata's title. Made by `mobile_target`; `mobile_file` makes the files."""

    labels: list[str]  # class names in output order
    outputs: str  # what the file returns: probabilities or logits (a model exported as it is)
    image: ImageInput | None = None  # an image model: RGB input, normalization metadata
    text: TextInput | None = None  # a text model: int32 ids, tokenizer metadata
    not_mobile: str = ""  # why an image model is exported as it is, not for the runtimes
    title: str = ""  # the metadata's name; empty = the model's name

    @property
    def for_runtimes(self) -> bool:
        return self.image is not None or self.text is not None


@dataclasses.dataclass
class Reference:
    """What a file is verified against: the test set, the Keras model's outputs on it (of the
    same kind as the file's) and its accuracy, and the raw texts a text model's ids came from."""

    x_test: np.ndarray
    y_test: np.ndarray
    outputs: np.ndarray
    keras_accuracy: float
    test_texts: Sequence[str] | None = None


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
    image: ImageInput | None = None,
    text: TextInput | None = None,
) -> Path:
    """Writes `model_<format>.json` beside the `.tflite` file and returns its path.

    It holds what an app needs to use the file without our code, as numbers: `class_names`
    (labels in output order), `image` (height, width, channels, color space, mean, std and
    dtype of the file's input: a float input is `(pixel - mean) / std`, a uint8 input the raw
    pixels; None for a model that does not take images), `text` (tokenizer, delimiter,
    sequence length, vocabulary file, padding and unknown ids, and whether MediaPipe loads the
    file; None for a model that does not take texts), `output` (kind: probabilities or
    logits, and the labels), the TFLite input and output tensors (with quantization parameters
    when they are integer), `input` (the recipe's description of the model's own input), other
    files the model needs (e.g. a vocabulary) and the verification numbers.
    """
    interpreter = _interpreter(model_content, num_threads=1)
    file_input = _tensor_description(interpreter.get_input_details()[0])
    verification = {
        key: value
        for key, value in result.to_dict().items()
        if key not in ("format", "path", "sidecar_path")
    }
    labels = list(class_names) if class_names is not None else None
    sidecar = {
        "model_file": Path(result.path).name,
        "format": result.format,
        "class_names": labels,
        "image": None if image is None else {**image.to_dict(), "dtype": file_input["dtype"]},
        "text": None if text is None else text.to_dict(),
        "output": {"kind": result.outputs, "labels": labels},
        "input": dict(input_spec or {}),
        "tflite_input": file_input,
        "tflite_output": _tensor_description(interpreter.get_output_details()[0]),
        "files": list(artifacts),
        "verification": verification,
    }
    return atomic_write_json(Path(result.path).with_suffix(".json"), sidecar)


def _weights_digest(model) -> str:
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:12]


def _general(model, image: ImageInput, labels: list[str], outputs: str, title: str):
    """Metadata name, description and version (the digest of the weights, so two files of
    the same trained model share it)."""
    from trainer import __version__

    gray = ", turned to gray inside the model" if image.channels == 1 else ""
    description = (
        f"Classifies a {image.height}x{image.width} RGB image{gray} into {len(labels)} "
        f"classes ({', '.join(labels)}); returns {outputs}. Made with trainer."
    )
    version = f"weights sha256 {_weights_digest(model)}, trainer {__version__}"
    return title or model.name, description, version


def _text_general(model, text: TextInput, labels: list[str], outputs: str, title: str):
    """Metadata name, description and version of a text file (see `_general`)."""
    from trainer import __version__
    from trainer.export.text import text_description

    version = f"weights sha256 {_weights_digest(model)}, trainer {__version__}"
    return title or model.name, text_description(text, labels, outputs), version


def _mediapipe_text_row(target: MobileTarget, reference: Reference, path: Path, outputs):
    """MediaPipe on the raw test texts, against LiteRT on the ids our pipeline made of them;
    or why the file is not for MediaPipe."""
    from trainer.export.text import mediapipe_text_check

    if target.text.refused:
        return RuntimeCheck(MEDIAPIPE, loaded=False, checked=False, error=target.text.refused)
    if reference.test_texts is None:
        reason = "no raw test texts were given (test_texts), so MediaPipe could not be fed"
        return RuntimeCheck(MEDIAPIPE, loaded=False, checked=False, error=reason)
    check = mediapipe_text_check(path, reference.test_texts, reference.y_test, outputs)
    if check.loaded:
        check.labels_match = check.labels == target.labels
    return check


def _mediapipe_row(target: MobileTarget, reference: Reference, path: Path, content: bytes, outputs):
    """MediaPipe on the test images as raw pixels, against LiteRT on those same pixels."""
    from trainer.export.runtimes import mediapipe_image_check

    pixels = raw_pixels(reference.x_test, target.image)
    inputs = model_inputs(pixels, target.image)
    exact = np.max(np.abs(inputs - rgb(reference.x_test)), initial=0.0) <= 1e-6
    # Inputs that were not whole pixels (a resized image) are compared on the rounded pixels.
    litert = outputs if exact else predict_tflite(content, inputs)
    check = mediapipe_image_check(path, pixels, reference.y_test, litert)
    if check.loaded:
        check.labels_match = check.labels == target.labels
    return check


def _labels(model, class_names: Sequence[str] | None) -> list[str]:
    """`class_names`, checked against the model's outputs; "0", "1", ... when not given."""
    if class_names is not None and len(class_names) != model.output_shape[-1]:
        raise ValueError(
            f"{len(class_names)} class names were given for a model with "
            f"{model.output_shape[-1]} outputs: pass one name per output, in output order"
        )
    return list(class_names or [str(index) for index in range(model.output_shape[-1])])


def _model_input(model, input_spec, x_test: np.ndarray, out_dir):
    """(ImageInput or None, TextInput or None, why an image model is not exported for the
    mobile runtimes or ""): what kind of input the model takes, from its spec and inputs."""
    text = text_input(model, input_spec, out_dir)
    if text is not None:
        return None, text, ""
    try:
        return image_input(model, input_spec, x_test), None, ""
    except ValueError as error:  # exported as the model is; the MediaPipe row says why
        return None, None, str(error)


def mobile_target(
    model,
    x: np.ndarray,
    out_dir: str | Path,
    *,
    class_names: Sequence[str] | None = None,
    input_spec: dict[str, Any] | None = None,
    outputs: str = "probabilities",
    title: str = "",
) -> MobileTarget:
    """What `model`'s files are made for (see `MobileTarget`): an image model (height x width
    x 1 or 3, normalization from `input_spec` or from inputs `x` that are pixels / 255), a
    text model (`input_spec` names its tokenizer, whose vocabulary file is in `out_dir`), or
    another model, exported as it is with logits out.

    Raises:
        ValueError: `class_names` that do not match the model's outputs, or a bad `outputs`.
    """
    check_outputs(outputs)
    labels = _labels(model, class_names)
    image, text, not_mobile = _model_input(model, input_spec, x, out_dir)
    kind = outputs if image is not None or text is not None else "logits"
    return MobileTarget(labels, kind, image, text, not_mobile, title)


def mobile_file(
    model,
    target: MobileTarget,
    format: str,
    representative: np.ndarray | None = None,
    io: str = "float32",
) -> bytes:
    """`model` as the `format` file an app loads: behind the runtimes' graph (an image model
    takes RGB, a text model int32 ids, and both return `target.outputs`), converted (`io` is
    the int8 file's input and output type; `representative` calibrates it, as the model's own
    inputs) and with TFLite Model Metadata (labels, normalization or tokenizer). The one path
    by which `export_and_verify` and `trainer compress` make every file."""
    from trainer.export.metadata import image_classifier_metadata
    from trainer.export.text import text_classifier_metadata

    graph, general = model, ("", "", "")
    if target.image is not None:
        graph = mobile_graph(model, target.image, target.outputs)
        general = _general(model, target.image, target.labels, target.outputs, target.title)
    elif target.text is not None:
        graph = text_graph(model, target.text, target.outputs)
        general = _text_general(model, target.text, target.labels, target.outputs, target.title)
    image = target.image
    if image is not None and representative is not None:
        representative = rgb(representative)
    input_range = None if image is None else image.pixel_range
    content = convert(graph, format, representative, io=io, input_range=input_range)
    if image is not None:
        return image_classifier_metadata(content, target.labels, image.mean, image.std, general)
    if target.text is not None and not target.text.refused:
        return text_classifier_metadata(content, target.text, target.labels, general)
    return content


def keras_reference(
    model,
    target: MobileTarget,
    x_test: np.ndarray,
    y_test: np.ndarray,
    keras_accuracy: float,
    keras_outputs: np.ndarray | None = None,
    test_texts: Sequence[str] | None = None,
) -> Reference:
    """The `Reference` that `model`'s files are verified against: its outputs on `x_test`
    (`keras_outputs`, its logits, are computed when not given), as probabilities when the
    files return probabilities."""
    if keras_outputs is None:
        keras_outputs = model.predict(x_test, batch_size=256, verbose=0)
    outputs = np.asarray(keras_outputs, np.float32)
    if target.outputs == "probabilities" and not ends_in_softmax(model):
        outputs = softmax(outputs)
    x, y = np.asarray(x_test), np.asarray(y_test)
    return Reference(x, y, outputs, float(keras_accuracy), test_texts)


def verify_file(
    content: bytes,
    path: str | Path,
    format: str,
    io: str,
    target: MobileTarget,
    reference: Reference,
    budget_pp: float,
) -> ExportResult:
    """Scores the written file `content` (at `path`) on the whole test set with LiteRT against
    `reference`: accuracy, drop, top-1 agreement, largest output difference, sizes, batch-1
    latency on one thread; then MediaPipe Tasks on the same test set, as an app runs the
    file (`ExportResult.mediapipe`; None for a model that is neither image nor text)."""
    outputs = predict_tflite(content, reference.x_test)
    finite = bool(np.isfinite(outputs).all() and np.isfinite(reference.outputs).all())
    top1 = np.argmax(outputs, axis=-1)
    accuracy = float(np.mean(top1 == reference.y_test))
    median, p90 = latency_percentiles(content, np.asarray(reference.x_test[0], np.float32))
    result = ExportResult(
        format=format,
        path=str(path),
        accuracy=accuracy,
        keras_accuracy=reference.keras_accuracy,
        drop_pp=round((reference.keras_accuracy - accuracy) * 100.0, 4),
        budget_pp=budget_pp,
        size_bytes=len(content),
        gzip_bytes=gzip_size(content),
        latency_ms=median,
        latency_threads=1,
        agreement=float(np.mean(top1 == np.argmax(reference.outputs, axis=-1))),
        max_abs_diff=float(np.max(np.abs(outputs - reference.outputs))),
        latency_p90_ms=p90,
        examples=len(reference.x_test),
        io=io,
        outputs=target.outputs,
        finite_outputs=finite,
    )
    if target.image is not None:
        result.mediapipe = _mediapipe_row(target, reference, Path(path), content, outputs)
    elif target.text is not None:
        result.mediapipe = _mediapipe_text_row(target, reference, Path(path), outputs)
    elif target.not_mobile:
        reason = f"the file takes the model's own input, not RGB pixels: {target.not_mobile}"
        result.mediapipe = RuntimeCheck(MEDIAPIPE, loaded=False, checked=False, error=reason)
    return result


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
    io: str = "float32",
    outputs: str = "probabilities",
    title: str = "",
    test_texts: Sequence[str] | None = None,
) -> list[ExportResult]:
    """Exports `model` in each format to `out_dir/model_<format>.tflite` and verifies it.

    Each file is scored on all of `x_test` (preprocessed float32 inputs) with the LiteRT
    interpreter and compared with the Keras model: accuracy against `keras_accuracy`, top-1
    agreement and the largest output difference against `keras_outputs` (the model's logits,
    computed here when not given); latency is batch-1 on one thread.

    A model that takes images (height x width x 1 or 3) is exported for the mobile runtimes:
    RGB input, `outputs` (probabilities, or logits), metadata with `title`, the labels and the
    normalization from `input_spec` (mean and std, or a range of [0, top]); its int8 file takes
    and returns `io` (float32, uint8 = raw pixels, or int8); and MediaPipe Tasks classifies the
    test set too (`ExportResult.mediapipe`). A text model whose `input_spec` names its
    tokenizer (`trainer.export.text.text_input`) is exported with int32 token ids in,
    `outputs` out and the tokenizer, its vocabulary and the labels in the metadata; MediaPipe
    classifies `test_texts` (the raw texts `x_test` was made from), or the row says why the
    file is not for MediaPipe. Other models are exported as they are. Beside each file goes
    its sidecar `model_<format>.json` (see `write_sidecar`).
    """
    budgets = {**DEFAULT_BUDGETS_PP, **(budgets_pp or {})}
    for format in formats:
        _check_format(format)
    check_io(io)
    target = mobile_target(
        model,
        x_test,
        out_dir,
        class_names=class_names,
        input_spec=input_spec,
        outputs=outputs,
        title=title,
    )
    reference = keras_reference(
        model, target, x_test, y_test, keras_accuracy, keras_outputs, test_texts
    )
    results = []
    for format in formats:
        file_io = io if format == "int8" else "float32"
        content = mobile_file(model, target, format, representative_images, file_io)
        path = atomic_write_bytes(Path(out_dir) / f"model_{format}.tflite", content)
        result = verify_file(content, path, format, file_io, target, reference, budgets[format])
        sidecar = write_sidecar(
            result, content, class_names, input_spec, artifacts, target.image, target.text
        )
        result.sidecar_path = str(sidecar)
        results.append(result)
    return results


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
    io: str = "float32",
    outputs: str = "probabilities",
    title: str = "",
    test_texts: Sequence[str] | None = None,
    keras_outputs: np.ndarray | None = None,
) -> tuple[float, np.ndarray, list[ExportResult]]:
    """The end of a training run: score, save `RUN_DIR/model.keras`, export and verify.

    The Keras model is scored on exactly the inputs the TFLite files will see (`x_test`,
    preprocessed float32), so the drops compare like with like. A Keras 3 model is refused
    before anything is written, and `model.keras` is written atomically (a reader never sees
    half a file). `class_names`, `input_spec`, `artifacts`, `io`, `outputs`, `title` and
    `test_texts` go to `export_and_verify`; `keras_outputs` are the model's logits on
    `x_test` when the caller has them already (computed here otherwise).

    Returns:
        (Keras test accuracy, predicted class per test example, one `ExportResult` per format)
    """
    from trainer.runs import MODEL_FILE

    check_keras_object(model, "model")
    if isinstance(formats, str):
        formats = parse_formats(formats)
    check_io(io)
    check_outputs(outputs)
    logits = keras_outputs
    if logits is None:
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
        io=io,
        outputs=outputs,
        title=title,
        test_texts=test_texts,
    )
    return keras_accuracy, predictions, exports
