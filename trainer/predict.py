"""Classify new images or texts with a run's model or an exported `.tflite` file.

The inputs are prepared exactly as training prepared them, from the numbers the run wrote down:
the sidecar JSON of its exported files (`model_<format>.json`, which holds the recipe's input
spec, the image size and normalization, the tokenizer and the output kind), or, for a run
without exported files, the input spec its recipe's `build` returns. Images (PNG, JPEG, BMP,
GIF) of any size are decoded, converted to the model's channels (ITU-R 601 luma for gray) and
resized with antialiasing to the model's input size, as `trainer.data.images` does for training
data; then scaled with the run's mean and std. Texts are tokenized with the run's vocabulary,
standardization and sequence length (or BERT's WordPiece). A `.tflite` file gets the same
inputs, quantized for integer files by `predict_tflite`; its outputs are probabilities unless
its sidecar says logits, which get a softmax. This module must not train or export.

Example:

    from trainer.predict import load_classifier, read_inputs, top_k
    classifier = load_classifier("runs/fashion_mnist-20261125-131500")
    inputs = read_inputs(["photos/"], classifier.kind)
    for item, best in zip(inputs, top_k(classifier, inputs, k=3)):
        print(item.name, best)            # [("Sneaker", 0.91), ("Sandal", 0.06), ...]
"""

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.types import IMAGE_EXTENSIONS, TEXT_EXTENSIONS


@dataclasses.dataclass
class Input:
    """One thing to classify: its name (a path, or <stdin>:LINE) and an image or a text."""

    name: str
    value: Any  # uint8 HxWxC image, or str


@dataclasses.dataclass
class Classifier:
    """A model with the preprocessing of its training data."""

    kind: str  # "image" or "text"
    class_names: list[str]
    source: str  # what was loaded, for messages
    run: Any  # inputs (prepared) -> probabilities
    spec: dict[str, Any]  # sequence_length, vocabulary...; height, width, channels, mean, std


def _sidecars(folder: Path) -> list[Path]:
    return sorted(folder.glob("model_*.json"))


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _image_spec(spec: dict, image: dict | None, height: int, width: int, channels: int) -> dict:
    """height, width, channels, mean and std: model input = (pixel - mean) / std."""
    if image:
        mean, std = float(image["mean"]), float(image["std"])
    elif "mean" in spec or "std" in spec:
        mean, std = float(spec.get("mean", 0.0)), float(spec.get("std", 1.0))
    elif len(spec.get("range") or []) == 2 and float(spec["range"][0]) == 0.0:
        mean, std = 0.0, 255.0 / float(spec["range"][1])
    else:
        raise ValueError(
            f"the input spec {spec!r} does not say how pixels were scaled (no mean and std, no "
            "range [0, top]): predict cannot prepare images as training did"
        )
    return {"height": height, "width": width, "channels": channels, "mean": mean, "std": std}


def _text_spec(spec: dict, text: dict | None, folder: Path, length: int) -> dict:
    """The tokenizer: regex (vocabulary.txt, standardize) or wordpiece, and the length."""
    tokenizer = (text or {}).get("tokenizer") or spec.get("tokenizer") or "regex"
    vocabulary = folder / str(spec.get("vocabulary") or "vocabulary.txt")
    if not vocabulary.is_file():
        raise FileNotFoundError(
            f"{vocabulary} is missing: a text model needs the vocabulary its run wrote beside "
            "the model; copy it back from the run folder"
        )
    # Runs made before the standardize option used Keras's own, which it was then.
    standardize = spec.get("standardize") or "lower_and_strip_punctuation"
    return {
        "tokenizer": tokenizer,
        "vocabulary": vocabulary,
        "sequence_length": int(length),
        "standardize": standardize,
    }


def _spec_from(spec: dict, sidecar: dict, folder: Path, input_shape: Sequence) -> tuple[str, dict]:
    shape = [int(size) for size in input_shape if size is not None]
    image = sidecar.get("image")
    if image or (len(shape) == 3 and shape[-1] in (1, 3)):
        height, width = (image["height"], image["width"]) if image else shape[:2]
        channels = shape[-1] if len(shape) == 3 else 3
        return "image", _image_spec(spec, image, int(height), int(width), int(channels))
    if len(shape) == 1:
        return "text", _text_spec(spec, sidecar.get("text"), folder, shape[0])
    raise ValueError(
        f"the model takes inputs of shape {shape}: predict classifies images (height x width x "
        "1 or 3) and texts (token ids)"
    )


def _run_spec(run_dir: Path) -> tuple[dict, dict, list[str]]:
    """(recipe input spec, a sidecar, class names) of a run: from its exported files' sidecar,
    else by rebuilding the recipe (slower: it loads the data)."""
    for path in _sidecars(run_dir):
        sidecar = _read_json(path)
        if sidecar.get("class_names"):
            return dict(sidecar.get("input") or {}), sidecar, list(sidecar["class_names"])
    from trainer.recipe_loader import load_run_recipe

    recipe, config = load_run_recipe(run_dir, "know how its inputs were prepared")
    experiment = recipe.build(config)
    return dict(experiment.input_spec), {}, list(experiment.class_names)


def _keras_classifier(run_dir: Path) -> Classifier:
    from trainer.export.mobile import ends_in_softmax
    from trainer.export.saved import load_model
    from trainer.runs import MODEL_FILE

    model = load_model(run_dir / MODEL_FILE)
    spec, sidecar, names = _run_spec(run_dir)
    kind, prepared = _spec_from(spec, sidecar, run_dir, model.input_shape[1:])
    probabilities = ends_in_softmax(model)
    dtype = model.inputs[0].dtype.name if hasattr(model.inputs[0].dtype, "name") else "float32"

    def run(x: np.ndarray) -> np.ndarray:
        outputs = model.predict(np.asarray(x, dtype), batch_size=256, verbose=0)
        return outputs if probabilities else _softmax(outputs)

    return Classifier(kind, names, str(run_dir / MODEL_FILE), run, prepared)


def _tflite_classifier(path: Path) -> Classifier:
    from ai_edge_litert.interpreter import Interpreter

    from trainer.export import predict_tflite

    sidecar_path = path.with_suffix(".json")
    if not sidecar_path.is_file():
        raise FileNotFoundError(
            f"{sidecar_path} is missing: predict reads a .tflite file's class names and input "
            "numbers from the sidecar JSON that trainer writes beside it; keep the two together"
        )
    sidecar = _read_json(sidecar_path)
    content = path.read_bytes()
    shape = Interpreter(model_content=content).get_input_details()[0]["shape"][1:]
    kind, prepared = _spec_from(dict(sidecar.get("input") or {}), sidecar, path.parent, shape)
    returns_logits = (sidecar.get("output") or {}).get("kind", "logits") == "logits"

    def run(x: np.ndarray) -> np.ndarray:
        outputs = predict_tflite(content, np.asarray(x, np.float32))
        return _softmax(outputs) if returns_logits else outputs

    return Classifier(kind, list(sidecar["class_names"]), str(path), run, prepared)


def load_classifier(run_or_file: str | Path) -> Classifier:
    """A run folder's model or an exported `.tflite` file, with its preprocessing.

    Raises:
        FileNotFoundError: the path, the sidecar JSON or the vocabulary is missing.
        ValueError: not a run folder or a .tflite file, or its inputs cannot be prepared.
    """
    from trainer.export.saved import is_run_dir

    path = Path(run_or_file)
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: pass a run folder or an exported .tflite file"
        )
    if is_run_dir(path):
        return _keras_classifier(path)
    if path.suffix == ".tflite":
        return _tflite_classifier(path)
    raise ValueError(
        f"{path} is neither a run folder (model.keras, run.json, config.yaml) nor a .tflite "
        "file: a bare saved model does not say how its inputs were prepared, so pass the run "
        "folder it came from, or a .tflite file with its sidecar JSON"
    )


def _files(path: Path, extensions: Sequence[str]) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
        if not found:
            raise ValueError(f"{path} holds no {', '.join(extensions)} files to classify")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist: pass files or folders to classify")
    if path.suffix.lower() not in extensions:
        raise ValueError(
            f"{path} is not one of {', '.join(extensions)}: pass inputs of the kind the model "
            "classifies"
        )
    return [path]


def read_inputs(arguments: Sequence[str], kind: str, stdin=None) -> list[Input]:
    """Images or texts named by `arguments`: files, folders (searched recursively) or, for
    texts, `-` (standard input, one text per non-empty line)."""
    from trainer.data.images import decode_image

    inputs: list[Input] = []
    for argument in arguments:
        if argument == "-":
            if kind != "text":
                raise ValueError("- (standard input) gives texts, but this model classifies images")
            lines = (stdin or sys.stdin).read().splitlines()
            inputs += [
                Input(f"<stdin>:{n}", line) for n, line in enumerate(lines, 1) if line.strip()
            ]
            continue
        extensions = IMAGE_EXTENSIONS if kind == "image" else TEXT_EXTENSIONS
        for path in _files(Path(argument), extensions):
            if kind == "text":
                inputs.append(Input(str(path), path.read_text(encoding="utf-8")))
                continue
            image, why = decode_image(path.read_bytes())
            if image is None:
                raise ValueError(f"{path}: {why}; pass PNG, JPEG, BMP or GIF images")
            inputs.append(Input(str(path), image))
    if not inputs:
        raise ValueError("nothing to classify: pass image or text files, folders, or - for stdin")
    return inputs


def _prepare_images(images: list[np.ndarray], spec: dict) -> np.ndarray:
    import tensorflow as tf

    from trainer.data.images import uniform_images
    from trainer.data.types import SourceOptions

    height, width, channels = spec["height"], spec["width"], spec["channels"]
    square = height if height == width else 0
    options = SourceOptions(image_size=square, channels=channels)
    rows = []
    for image in images:
        pixels, _ = uniform_images([image], [""], [""], options)
        if pixels.shape[1:3] != (height, width):  # a model of non-square input
            resized = tf.image.resize(pixels, (height, width), antialias=True).numpy()
            pixels = np.clip(resized.round(), 0, 255).astype(np.uint8)
        rows.append(pixels[0])
    pixels = np.stack(rows).astype(np.float32)
    return ((pixels - spec["mean"]) / spec["std"]).astype(np.float32)


def _prepare_texts(texts: list[str], spec: dict) -> np.ndarray:
    length = spec["sequence_length"]
    if spec["tokenizer"] == "wordpiece":
        from trainer.models.bert import WordPieceTokenizer

        return WordPieceTokenizer(spec["vocabulary"])(texts, length)
    import tf_keras as keras

    from trainer.data.text import lower_and_split_punctuation

    vocabulary = spec["vocabulary"].read_text(encoding="utf-8").splitlines()
    standardize = spec["standardize"]
    layer = keras.layers.TextVectorization(
        vocabulary=vocabulary,
        output_sequence_length=length,
        standardize=lower_and_split_punctuation
        if standardize == "lower_and_split_punctuation"
        else standardize,
    )
    return layer(texts).numpy().astype(np.float32)


def prepare(classifier: Classifier, inputs: Sequence[Input]) -> np.ndarray:
    """The model inputs for `inputs`, prepared as training prepared its data."""
    values = [item.value for item in inputs]
    if classifier.kind == "image":
        return _prepare_images(values, classifier.spec)
    return _prepare_texts([str(value) for value in values], classifier.spec)


def top_k(classifier: Classifier, inputs: Sequence[Input], k: int = 3) -> list[list[tuple]]:
    """For each input, the `k` most probable (label, probability) pairs, most probable first."""
    if k < 1:
        raise ValueError(f"top_k must be at least 1, received {k}")
    probabilities = classifier.run(prepare(classifier, inputs))
    names = classifier.class_names
    best = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")[: min(k, len(names))]
        best.append([(names[index], float(row[index])) for index in order])
    return best
