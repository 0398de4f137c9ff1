"""What `trainer export` verifies a model on: a run's own test set, or a data source.

A run folder's test data, class names, input spec and export settings come from the recipe
that made it (`recipe.build(config)`), so the files are verified on exactly what the recipe's
pipeline gives the model. A bare model (a user's `.keras`, `.h5` or SavedModel) is verified on
a data source read with `trainer.data.sources.load_source`: images are resized to the model's
input height, width and channels and divided by a scale (255: pixels in [0, 1]); CSV and .npz
feature rows go in as they are. This module prepares data; it must not convert or load models.

Example:

    from trainer.export.sources import run_data
    data = run_data(Path("runs/fashion_mnist-20261125-131500"))
    print(data.description, data.x.shape, data.class_names)
"""

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_FORMATS = ("float32", "int8")


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
    io: str = "float32"  # the run's int8 input/output type
    outputs: str = "probabilities"  # the run's output kind for image files
    title: str = ""  # the run's report title, the files' metadata name
    test_texts: list[str] | None = None  # a text run's raw test texts, for MediaPipe


@dataclasses.dataclass
class SourceSettings:
    """How a data source becomes inputs for a bare model (the `trainer export` options)."""

    data: str  # image folder, .npz, .csv, CIFAR or IDX folder
    split: str = "all"  # examples to verify on: all, train, val or test
    scale: float = 255.0  # image pixels are divided by this
    representative: int = 300  # inputs that calibrate int8, drawn from the training split
    seed: int = 0  # seeds the choice of representative inputs


def run_data(run_dir: Path) -> ExportData:
    """The run's test set, representative inputs, labels, input spec and export settings,
    rebuilt through the recipe that made the run."""
    from trainer.recipe_loader import build_experiment, load_run_recipe

    recipe, config = load_run_recipe(
        run_dir, "rebuild its test data (or pass --data=SOURCE to verify on a data source)"
    )
    experiment = build_experiment(recipe, config, "rebuild the run's test data for export")
    _check_same_artifacts(run_dir, experiment.artifacts)
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
        io=getattr(experiment, "export_io", "float32"),
        outputs=getattr(experiment, "export_outputs", "probabilities"),
        title=experiment.title,
        test_texts=getattr(experiment, "test_texts", None),
    )


def _check_same_artifacts(run_dir: Path, artifacts: dict[str, str]) -> None:
    """Refuses a rebuild whose files (e.g. vocabulary.txt) differ from the run's own: the
    recipe no longer makes the inputs the model was trained on."""
    for name, text in artifacts.items():
        saved = run_dir / name
        if saved.is_file() and saved.read_text(encoding="utf-8") != text:
            raise ValueError(
                f"rebuilding {run_dir}'s data through its recipe gives another {name} than the "
                "run's own, so the model would be verified on inputs it was not trained on: the "
                "data or a recipe default changed since the run. Restore the data, or set the "
                "old value in "
                f"{run_dir / 'config.yaml'} (for a text run made before --standardize existed: "
                "standardize: lower_and_strip_punctuation) and export again"
            )


def image_size(model) -> tuple[int, int, int] | None:
    """(height, width, channels) of a model that takes one image of 1 or 3 channels, else None."""
    shape = model.input_shape
    if isinstance(shape, list):
        raise ValueError(
            f"the model has {len(shape)} inputs {shape}; trainer export handles one input"
        )
    if len(shape) == 4 and shape[1] and shape[2] and shape[3] in (1, 3):
        return int(shape[1]), int(shape[2]), int(shape[3])
    return None


def prepare_images(images: np.ndarray, size: tuple[int, int, int], scale: float) -> np.ndarray:
    """uint8 (or float) pixel images resized (bilinear) to `size`, converted to its channel
    count and divided by `scale`: float32 model inputs."""
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


def _image_spec(size: tuple[int, int, int], scale: float) -> dict[str, Any]:
    height, width, channels = size
    return {
        "shape": [height, width, channels],
        "dtype": "float32",
        "range": [0.0, round(255.0 / scale, 6)],
        "mean": 0.0,
        "std": float(scale),
        "color_space": "RGB" if channels == 3 else "GRAYSCALE",
        "layout": "NHWC",
        "preprocessing": f"{'RGB' if channels == 3 else 'grayscale'} pixels resized to "
        f"{height}x{width} (bilinear) and divided by {scale:g}",
    }


def _chosen_splits(data, settings: SourceSettings) -> list[str]:
    if settings.split not in ("all", *data.split_names()):
        raise ValueError(
            f"--split must be all or one of the source's splits "
            f"({', '.join(data.split_names())}), received {settings.split!r}"
        )
    return data.split_names() if settings.split == "all" else [settings.split]


def source_data(model, settings: SourceSettings) -> ExportData:
    """The data source `settings.data` prepared for `model`: images resized and scaled, rows
    as given."""
    from trainer.data.sources import SourceOptions, load_source

    size = image_size(model)
    options = SourceOptions(seed=settings.seed)
    if size is not None:
        height, width, channels = size
        square = height if height == width else 0
        options = SourceOptions(image_size=square, channels=channels, seed=settings.seed)
    data = load_source(settings.data, options)
    if data.kind == "text":
        raise ValueError(
            f"{settings.data} holds texts: a bare model does not know how its texts were "
            "turned into numbers (the vocabulary lives in the run folder), so export the run "
            "folder instead: trainer export RUN_DIR"
        )
    splits = _chosen_splits(data, settings)
    x = np.concatenate([data.arrays(split)[0] for split in splits])
    y = np.concatenate([data.arrays(split)[1] for split in splits]).astype(np.int64)
    pool = data.x_train if len(data.x_train) else x
    rng = np.random.default_rng(settings.seed)
    representative = pool[rng.permutation(len(pool))[: settings.representative]]
    where = f"{settings.data} ({', '.join(splits)})"
    if data.kind == "image":
        if size is None:
            raise ValueError(
                f"shape mismatch: {settings.data} holds images of shape {list(x.shape[1:])} "
                f"but the model takes inputs of shape {list(model.input_shape[1:])} (not "
                "height x width x 1 or 3 channels); pass data the model was trained on"
            )
        x = prepare_images(x, size, settings.scale)
        representative = prepare_images(representative, size, settings.scale)
        spec = _image_spec(size, settings.scale)
        description = (
            f"{len(x)} images from {where}, resized to {'x'.join(map(str, size))} and divided "
            f"by {settings.scale:g} (float32 in [0, {spec['range'][1]:g}]; --scale changes this)"
        )
        return ExportData(x, y, representative, list(data.class_names), spec, description)
    expected = list(model.input_shape[1:])
    if list(x.shape[1:]) != expected:
        raise ValueError(
            f"shape mismatch: {settings.data} holds rows of shape {list(x.shape[1:])} but the "
            f"model takes inputs of shape {expected}; pass the features the model was trained on"
        )
    spec = {
        "shape": expected,
        "dtype": "float32",
        "preprocessing": "feature values as stored in the source, unscaled",
    }
    description = f"{len(x)} rows from {where}, as stored"
    return ExportData(
        x.astype(np.float32),
        y,
        representative.astype(np.float32),
        list(data.class_names),
        spec,
        description,
    )
