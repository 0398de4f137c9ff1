"""`trainer export MODEL_OR_RUN`: convert any saved tf_keras model to TFLite and verify it.

    trainer export runs/fashion_mnist-20261125-131500            the run's own test set
    trainer export my_model.keras --data=photos/ --format=int8   a user's model on a folder

MODEL_OR_RUN is a run folder (`model.keras`, `run.json`, `config.yaml`) or any saved tf_keras
model: a `.keras` file, a SavedModel folder or an `.h5` file. A run's test data, class names
and input spec come from the recipe that made it (`recipe.build(config)`), so the files are
verified on exactly what the recipe's pipeline gives the model. A bare model is verified on
`--data`, read with `trainer.data.sources.load_source`: images are resized to the model's
input height, width and channels and divided by `--scale` (255: pixels in [0, 1]); CSV and
.npz feature rows go in as they are. Each file is scored with LiteRT against the Keras model
(accuracy, top-1 agreement, largest output difference, size, latency) and gets a sidecar JSON
with its labels and input spec. The command exits 1 when a format is over its accuracy
budget (after writing the files and the table) and refuses a model at chance level.

This module parses options, finds the data and prints; conversion and verification live in
`trainer.export`.
"""

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trainer.keras_path import import_tensorflow_quietly

PROGRAM = "trainer export MODEL_OR_RUN"
DEFAULT_FORMATS = ("float32", "int8")
RUN_INFO_FILE = "run.json"  # written by trainer train: names the recipe that made the run


@dataclasses.dataclass
class ExportConfig:
    # data to verify on (image folder, .npz, .csv, CIFAR, IDX folder); empty = the run's test set
    data: str = ""
    # comma list of float32, float16, dynamic, int8; empty = the run's formats, else float32,int8
    format: str = ""
    # accuracy-drop budget (pp) for every format; empty = 0.1 float32/float16, 0.5 dynamic/int8
    max_accuracy_drop: str = ""
    # output folder; empty = RUN/export for a run, else <model name>_export beside the model
    out: str = ""
    representative: int = 300  # inputs that calibrate int8, drawn from the data's training split
    split: str = "all"  # --data examples to verify on: all, train, val or test
    scale: float = 255.0  # image pixels are divided by this: 255 gives [0, 1], 1 keeps [0, 255]
    allow_chance: bool = False  # export even if the Keras model scores at chance on the data
    seed: int = 0  # seeds the choice of representative inputs


@dataclasses.dataclass
class ExportData:
    """What the files are verified on: preprocessed inputs and everything the sidecar needs."""

    x: np.ndarray  # preprocessed inputs, exactly what the model takes
    y: np.ndarray  # int class ids
    representative: np.ndarray
    class_names: list[str]
    input_spec: dict[str, Any]
    description: str  # one line saying where the data came from and how it was prepared
    formats: tuple[str, ...] = DEFAULT_FORMATS
    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)  # e.g. vocabulary.txt


def is_run_dir(path: Path) -> bool:
    from trainer.runs import CONFIG_FILE, MODEL_FILE

    return path.is_dir() and all(
        (path / name).is_file() for name in (MODEL_FILE, RUN_INFO_FILE, CONFIG_FILE)
    )


def load_model(path: Path):
    """Loads a saved tf_keras model (.keras, SavedModel folder, .h5) without its optimizer."""
    import tf_keras as keras

    from trainer.export import quiet_native_output

    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist: pass a run folder or a saved model "
            "(.keras file, SavedModel folder or .h5 file)"
        )
    is_saved_model = path.is_dir() and (path / "saved_model.pb").is_file()
    if path.is_dir() and not is_saved_model:
        raise ValueError(
            f"{path} is a folder but neither a run folder (model.keras, run.json, config.yaml) "
            "nor a SavedModel (saved_model.pb): pass one of those, a .keras or an .h5 file"
        )
    try:
        with quiet_native_output():
            model = keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, OSError, ImportError, KeyError) as error:
        raise ValueError(
            f"could not load {path} as a tf_keras model ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). trainer reads models saved "
            "with tf_keras (Keras 2): a .keras file, a SavedModel folder or an .h5 file; a "
            "model saved by Keras 3 must be rebuilt with tf_keras and its weights loaded"
        ) from None
    if not hasattr(model, "predict") or not hasattr(model, "output_shape"):
        raise ValueError(
            f"{path} holds a {type(model).__name__}, not a Keras model: save it with "
            "model.save() from tf_keras"
        )
    return model


def run_data(run_dir: Path) -> ExportData:
    """The run's test set, representative inputs, labels and input spec, rebuilt through the
    recipe that made the run."""
    from trainer.recipe_loader import load_run_recipe

    recipe, config = load_run_recipe(
        run_dir, "rebuild its test data (or pass --data=SOURCE to verify on a data source)"
    )
    experiment = recipe.build(config)
    return ExportData(
        x=np.asarray(experiment.x_test),
        y=np.asarray(experiment.y_test, np.int64),
        representative=np.asarray(experiment.representative),
        class_names=list(experiment.class_names),
        input_spec=dict(experiment.input_spec),
        description=f"the test set of the run's recipe {recipe.__name__} "
        f"({len(experiment.x_test)} examples, preprocessed by the recipe)",
        formats=tuple(experiment.export_formats) or DEFAULT_FORMATS,
        artifacts=dict(experiment.artifacts),
    )


def _image_input(model) -> tuple[int, int, int] | None:
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(
            f"the model has {len(shape)} inputs {shape}; trainer export handles one input"
        )
    if len(shape) == 4 and shape[1] and shape[2] and shape[3] in (1, 3):
        return int(shape[1]), int(shape[2]), int(shape[3])
    return None


def _prepare_images(images: np.ndarray, size: tuple[int, int, int], scale: float) -> np.ndarray:
    import tensorflow as tf

    height, width, channels = size
    if images.ndim == 3:
        images = images[..., None]
    pixels = images.astype(np.float32)
    if pixels.shape[-1] != channels:
        if channels == 1:
            pixels = np.asarray(tf.image.rgb_to_grayscale(pixels[..., :3]))
        else:
            pixels = np.repeat(pixels[..., :1], 3, axis=-1)
    if pixels.shape[1:3] != (height, width):
        pixels = np.asarray(tf.image.resize(pixels, (height, width)))
    return pixels / np.float32(scale)


def source_data(model, config: ExportConfig) -> ExportData:
    """The `--data` source prepared for `model`: images resized and scaled, rows as given."""
    from trainer.data.sources import SourceOptions, load_source

    image_size = _image_input(model)
    options = SourceOptions(seed=config.seed)
    if image_size is not None:
        height, width, channels = image_size
        options = SourceOptions(
            image_size=height if height == width else 0, channels=channels, seed=config.seed
        )
    data = load_source(config.data, options)
    if data.kind == "text":
        raise ValueError(
            f"{config.data} holds texts: a bare model does not know how its texts were turned "
            "into numbers (the vocabulary lives in the run folder), so export the run folder "
            "instead: trainer export RUN_DIR"
        )
    splits = data.split_names() if config.split == "all" else [config.split]
    if config.split not in ("all", *data.split_names()):
        raise ValueError(
            f"--split must be all or one of the source's splits "
            f"({', '.join(data.split_names())}), received {config.split!r}"
        )
    x = np.concatenate([data.arrays(split)[0] for split in splits])
    y = np.concatenate([data.arrays(split)[1] for split in splits]).astype(np.int64)
    pool = data.x_train if len(data.x_train) else x
    rng = np.random.default_rng(config.seed)
    representative = pool[rng.permutation(len(pool))[: config.representative]]
    if data.kind == "image":
        if image_size is None:
            raise ValueError(
                f"shape mismatch: {config.data} holds images of shape {list(x.shape[1:])} but "
                f"the model takes inputs of shape {list(model.input_shape[1:])} (not "
                "height x width x 1 or 3 channels); pass data the model was trained on"
            )
        x = _prepare_images(x, image_size, config.scale)
        representative = _prepare_images(representative, image_size, config.scale)
        height, width, channels = image_size
        low, high = 0.0, round(255.0 / config.scale, 6)
        input_spec = {
            "shape": [height, width, channels],
            "dtype": "float32",
            "range": [low, high],
            "layout": "NHWC",
            "preprocessing": f"{'RGB' if channels == 3 else 'grayscale'} pixels resized to "
            f"{height}x{width} (bilinear) and divided by {config.scale:g}",
        }
        description = (
            f"{len(x)} images from {config.data} ({', '.join(splits)}), resized to "
            f"{height}x{width}x{channels} and divided by {config.scale:g} (float32 in "
            f"[{low:g}, {high:g}]; --scale changes this)"
        )
    else:
        x = x.astype(np.float32)
        representative = representative.astype(np.float32)
        expected = list(model.input_shape[1:])
        if list(x.shape[1:]) != expected:
            raise ValueError(
                f"shape mismatch: {config.data} holds rows of shape {list(x.shape[1:])} but "
                f"the model takes inputs of shape {expected}; pass the features the model was "
                "trained on"
            )
        input_spec = {
            "shape": expected,
            "dtype": "float32",
            "preprocessing": "feature values as stored in the source, unscaled",
        }
        description = f"{len(x)} rows from {config.data} ({', '.join(splits)}), as stored"
    return ExportData(x, y, representative, list(data.class_names), input_spec, description)


def _check_matches_model(model, data: ExportData) -> None:
    expected = list(model.input_shape[1:])
    received = list(data.x.shape[1:])
    if len(expected) != len(received) or any(
        want is not None and want != got for want, got in zip(expected, received, strict=True)
    ):
        raise ValueError(
            f"shape mismatch: the data's inputs have shape {received} but the model takes "
            f"{expected}; export the run folder the model came from, or pass data of that shape"
        )
    outputs = model.output_shape[-1]
    if outputs != len(data.class_names):
        raise ValueError(
            f"the model has {outputs} outputs but the data has {len(data.class_names)} classes "
            f"({', '.join(data.class_names)}): pass data with the classes the model was "
            "trained on, in the same order"
        )


def _budgets(config: ExportConfig) -> dict[str, float] | None:
    from trainer.export import FORMATS

    if not config.max_accuracy_drop.strip():
        return None
    try:
        budget = float(config.max_accuracy_drop)
    except ValueError:
        raise ValueError(
            "--max_accuracy_drop expects a number of percentage points (e.g. 0.5), received "
            f"{config.max_accuracy_drop!r}"
        ) from None
    return dict.fromkeys(FORMATS, budget)


def export(model_or_run: str, config: ExportConfig) -> int:
    """Runs the export and returns the exit code (0 = every format within its budget)."""
    from trainer.diagnosis import at_chance, majority_share
    from trainer.export import export_and_verify, parse_formats
    from trainer.files import atomic_write_text
    from trainer.report import export_table
    from trainer.runs import MODEL_FILE

    path = Path(model_or_run)
    budgets = _budgets(config)
    requested = parse_formats(config.format) if config.format else None
    if config.representative < 1:
        raise ValueError(f"--representative must be at least 1, received {config.representative}")
    if config.scale <= 0:
        raise ValueError(f"--scale must be positive (255 or 1), received {config.scale:g}")
    if is_run_dir(path):
        model = load_model(path / MODEL_FILE)
        data = source_data(model, config) if config.data else run_data(path)
        out_dir = Path(config.out) if config.out else path / "export"
    else:
        if not config.data:
            raise ValueError(
                f"{model_or_run} is a model, not a run folder, so the data to verify on must "
                "be given: --data=SOURCE (an image folder, .npz, .csv, CIFAR or IDX folder)"
            )
        model = load_model(path)
        data = source_data(model, config)
        out_dir = Path(config.out) if config.out else path.parent / f"{path.stem}_export"
    formats = requested or list(data.formats)
    _check_matches_model(model, data)
    print(f"verifying on {data.description}", flush=True)

    keras_outputs = model.predict(data.x, batch_size=256, verbose=0)
    keras_accuracy = float(np.mean(np.argmax(keras_outputs, axis=-1) == data.y))
    if at_chance(keras_accuracy, data.y) and not config.allow_chance:
        print(
            f"{PROGRAM}: error: the Keras model scores {keras_accuracy:.1%} on this data, at "
            f"chance level (always guessing the most frequent class scores "
            f"{majority_share(data.y):.1%}): the model did not learn, so there is nothing worth "
            "exporting. Check that --data holds the classes the model was trained on, in the "
            "same order, and preprocessed the same way; --allow_chance=true exports anyway.",
            file=sys.stderr,
        )
        return 1
    # Files the model needs (a vocabulary) go beside the .tflite files, so the folder is whole.
    for name, text in data.artifacts.items():
        atomic_write_text(out_dir / name, text)
    results = export_and_verify(
        model,
        data.x,
        data.y,
        keras_accuracy,
        formats,
        out_dir,
        data.representative,
        budgets,
        class_names=data.class_names,
        input_spec=data.input_spec,
        keras_outputs=keras_outputs,
        artifacts=list(data.artifacts),
    )
    model_file = path / MODEL_FILE if is_run_dir(path) else path
    keras_size = model_file.stat().st_size if model_file.is_file() else None
    print(export_table(keras_accuracy, keras_size, results))
    for result in results:
        print(f"wrote {result.path} and {Path(result.sidecar_path).name}")
    over = [result for result in results if not result.within_budget]
    for result in over:
        print(
            f"{PROGRAM}: error: {result.format} is over its accuracy budget: it scores "
            f"{result.accuracy:.2%} against Keras's {result.keras_accuracy:.2%}, a drop of "
            f"{result.drop_pp:.2f} pp where the budget is {result.budget_pp:g} pp. The file is "
            "written; do not ship it, or raise --max_accuracy_drop if the drop is acceptable.",
            file=sys.stderr,
        )
    return 1 if over else 0


def run(argv: list[str]) -> int:
    """`trainer export MODEL_OR_RUN [--key=value ...]`: see `--help` for the options."""
    from trainer.config import ConfigError, help_text, parse_args

    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(ExportConfig, PROGRAM))
        print("\nexamples:\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    if argv[0].startswith("-"):
        print(
            f"{PROGRAM}: error: the first argument must be a run folder or a saved model, "
            f"received {argv[0]!r}",
            file=sys.stderr,
        )
        return 2
    try:
        config = parse_args(ExportConfig, argv[1:], program=PROGRAM)
    except ConfigError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    import_tensorflow_quietly()
    try:
        return export(argv[0], config)
    except (FileNotFoundError, ValueError, TypeError) as error:
        if os.environ.get("TRAINER_DEBUG"):
            raise
        print(
            f"{PROGRAM}: error: {error}\n(set TRAINER_DEBUG=1 for the traceback)", file=sys.stderr
        )
        return 1
