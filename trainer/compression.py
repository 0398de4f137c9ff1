"""Compression with TF-MOT, wrapped so it cannot be misused, and the budgeted `trainer compress`.

Techniques (each returns the model *and* the callbacks it needs, STYLE rule 9):
`prune_low_magnitude` (zeros; smaller after gzip), `cluster_weights` (shared values; smaller
after gzip) and `quantize_aware` (QAT, optionally preserving sparsity or clusters). Every
helper works on a clone, so the user's model is never rewired into TF-MOT wrappers, and
`strip` removes the wrappers before saving or export (`save_compressed` and the search do it
for you). Filter pruning that really shrinks and speeds up a model is in
`trainer.structured_pruning`; post-training quantization is `trainer.export.convert`.

`compress_run` (the `trainer compress RUN_DIR` command) starts from a trained run and tries
techniques from cheapest to most expensive, exports and measures every candidate with LiteRT,
and keeps the smallest (or fastest) whose accuracy drop stays within the budget. Candidates
are chosen on a validation slice of the training set and scored on the test set.

TF-MOT is imported only inside this module. It must not define models or write TFLite files
other than through `trainer.export`.

Example:

    from trainer.compression import prune_low_magnitude, strip
    pruned, callbacks = prune_low_magnitude(model, target_sparsity=0.8, end_step=2000)
    pruned.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    pruned.fit(train, epochs=3, callbacks=callbacks)
    final = strip(pruned)           # plain layers again, zeros in the kernels
"""

import dataclasses
import math
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tf_keras as keras

from trainer.keras_path import check_keras_object

SCHEDULES = ("polynomial", "constant")
PRESERVE = ("none", "sparsity", "clusters")
METHODS = ("ptq", "qat", "prune", "pqat", "cluster", "cqat", "structured", "distill")
_TFMOT = "tensorflow_model_optimization"
MIN_PRUNED_WEIGHTS = 1024  # the search leaves layers with fewer kernel weights unpruned


def _tfmot():
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError:
        raise ImportError(
            "compression needs tensorflow-model-optimization 0.8.1; install it with "
            "`pip install --no-deps tensorflow-model-optimization==0.8.1` (see `make setup`)"
        ) from None
    return tfmot


def _copy(model: keras.Model) -> keras.Model:
    """A clone with the same weights: TF-MOT wraps the layer objects it is given."""
    check_keras_object(model, "model")
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"TF-MOT needs a functional or Sequential model; {model.name!r} is a subclassed "
            f"{type(model).__name__}. Rebuild it with the functional API."
        )
    for layer in model.layers:
        module = type(layer).__module__
        if "preprocessing" in module or type(layer).__name__.startswith("Random"):
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) is a preprocessing layer, which "
                "TF-MOT rejects. Move augmentation into the tf.data pipeline (trainer.augment) "
                "and keep the model to the layers that run at inference."
            )
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _check_layer_names(model: keras.Model, layer_names: Sequence[str] | None) -> set[str] | None:
    if layer_names is None:
        return None
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(layer_names) - names)
    if unknown:
        raise ValueError(f"layer_names {unknown} are not in the model; its layers: {sorted(names)}")
    return set(layer_names)


def _wrap_some(model: keras.Model, layer_names: set[str] | None, wrap) -> keras.Model:
    if layer_names is None:
        return wrap(model)
    return keras.models.clone_model(
        model, clone_function=lambda layer: wrap(layer) if layer.name in layer_names else layer
    )


def _parse_m_by_n(sparsity_m_by_n) -> tuple[int, int] | None:
    if sparsity_m_by_n is None or sparsity_m_by_n == "":
        return None
    text = (
        sparsity_m_by_n if isinstance(sparsity_m_by_n, str) else ":".join(map(str, sparsity_m_by_n))
    )
    parts = text.split(":")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ValueError(
            f"sparsity_m_by_n must look like '2:4' or (2, 4), received {sparsity_m_by_n!r}"
        )
    m, n = int(parts[0]), int(parts[1])
    if not 0 < m < n:
        raise ValueError(f"sparsity_m_by_n needs 0 < M < N, received {sparsity_m_by_n!r}")
    return m, n


def prune_low_magnitude(
    model: keras.Model,
    target_sparsity: float,
    end_step: int,
    schedule: str = "polynomial",
    layer_names: Sequence[str] | None = None,
    sparsity_m_by_n: str | tuple[int, int] | None = None,
    frequency: int = 100,
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """Wraps a clone of `model` for magnitude pruning; returns it with its required callbacks.

    Args:
        model: a trained functional or Sequential model (left unchanged).
        target_sparsity: fraction of each pruned kernel set to zero, in (0, 1).
        end_step: training step at which the target is reached (polynomial) or pruning stops
            (constant); leave some steps after it to recover accuracy.
        schedule: "polynomial" (sparsity rises from 0, gentler) or "constant" (target at once).
        layer_names: prune only these layers; default every prunable layer.
        sparsity_m_by_n: "2:4" for structured N:M sparsity (at most M non-zeros in every N
            consecutive weights), which some accelerators run faster; ignores the target.
        frequency: prune every this many steps.

    Returns:
        `(pruned_model, callbacks)`: compile and fit `pruned_model` with `callbacks` (it holds
        `UpdatePruningStep`), then call `strip` before saving or export.

    Example:

        pruned, callbacks = prune_low_magnitude(model, 0.8, end_step=len(train) * 2)
        pruned.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
        pruned.fit(train, epochs=3, callbacks=callbacks)
        print(sparsity_report(strip(pruned)))
    """
    tfmot = _tfmot()
    m_by_n = _parse_m_by_n(sparsity_m_by_n)
    if m_by_n is None and not 0.0 < target_sparsity < 1.0:
        raise ValueError(f"target_sparsity must be in (0, 1), received {target_sparsity}")
    if end_step < 1:
        raise ValueError(f"end_step must be at least 1, received {end_step}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")
    frequency = max(1, min(int(frequency), end_step))
    sparsity = tfmot.sparsity.keras
    if schedule == "constant":
        pruning_schedule = sparsity.ConstantSparsity(
            target_sparsity, begin_step=0, end_step=end_step, frequency=frequency
        )
    else:
        pruning_schedule = sparsity.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=target_sparsity, begin_step=0,
            end_step=end_step, frequency=frequency,
        )  # fmt: skip
    clone = _copy(model)
    names = _check_layer_names(clone, layer_names)

    def wrap(target):
        return sparsity.prune_low_magnitude(
            target, pruning_schedule=pruning_schedule, sparsity_m_by_n=m_by_n
        )

    return _wrap_some(clone, names, wrap), [sparsity.UpdatePruningStep()]


def cluster_weights(
    model: keras.Model,
    number_of_clusters: int = 16,
    layer_names: Sequence[str] | None = None,
    preserve_sparsity: bool = False,
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """Wraps a clone of `model` so each kernel shares `number_of_clusters` values.

    Fine-tune the result for an epoch or two, then `strip` it. Clustering needs no callbacks;
    the empty list is returned so every helper is used the same way.

    Args:
        model: a trained functional or Sequential model (left unchanged).
        number_of_clusters: distinct values per kernel (16 ~ 4 bits).
        layer_names: cluster only these layers; default every clusterable layer.
        preserve_sparsity: keep zeros from earlier pruning at zero (sparsity-preserving
            clustering).

    Example:

        clustered, callbacks = cluster_weights(model, number_of_clusters=16)
        clustered.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss)
        clustered.fit(train, epochs=1, callbacks=callbacks)
        final = strip(clustered)
    """
    tfmot = _tfmot()
    if number_of_clusters < 2:
        raise ValueError(f"number_of_clusters must be at least 2, received {number_of_clusters}")
    clustering = tfmot.clustering.keras
    clone = _copy(strip(model))
    names = _check_layer_names(clone, layer_names)

    def wrap(target):
        return clustering.cluster_weights(
            target,
            number_of_clusters=number_of_clusters,
            cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
            preserve_sparsity=preserve_sparsity,
        )

    return _wrap_some(clone, names, wrap), []


def quantize_aware(
    model: keras.Model, preserve: str = "none"
) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """A clone of `model` with fake-quantization for quantization-aware training (QAT).

    Fine-tune for an epoch or two at a low learning rate, then export with
    `trainer.export.convert(model, "int8", representative_images)`. Save with
    `save_compressed`: a QAT model saved as `.keras` does not reload.

    Args:
        model: a trained model, or a stripped pruned/clustered one (wrappers are stripped).
        preserve: "none" (plain QAT), "sparsity" (pruning-preserving QAT: zeros stay zero)
            or "clusters" (cluster-preserving QAT: shared values stay shared, and zeros too).

    Returns:
        `(qat_model, callbacks)`; QAT needs no callbacks, the list is empty.

    Example:

        qat, callbacks = quantize_aware(model)
        qat.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss, metrics=["accuracy"])
        qat.fit(train, epochs=1, callbacks=callbacks)
        tflite = convert(qat, "int8", representative_images)
    """
    tfmot = _tfmot()
    if preserve not in PRESERVE:
        raise ValueError(f"unknown preserve {preserve!r}; choose from {', '.join(PRESERVE)}")
    clone = _copy(strip(model))
    quantization = tfmot.quantization.keras
    if preserve == "none":
        return quantization.quantize_model(clone), []
    combine = tfmot.experimental.combine
    if preserve == "sparsity":
        scheme = combine.Default8BitPrunePreserveQuantizeScheme()
    else:
        scheme = combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    annotated = quantization.quantize_annotate_model(clone)
    return quantization.quantize_apply(annotated, scheme), []


def wrapped_layers(model: keras.Model) -> list[str]:
    """Names of layers still wrapped by TF-MOT pruning or clustering (QAT wrappers excluded)."""
    names = []
    for layer in model.layers:
        kind = type(layer).__name__
        if type(layer).__module__.startswith(_TFMOT) and kind in (
            "PruneLowMagnitude", "ClusterWeights", "ClusterWeightsMHA", "ClusterWeightsRNN",
        ):  # fmt: skip
            names.append(layer.name)
        if isinstance(layer, keras.Model):
            names += wrapped_layers(layer)
    return names


def is_quantize_aware(model: keras.Model) -> bool:
    """True if `model` holds TF-MOT quantization wrappers (a QAT model)."""
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def strip(model: keras.Model) -> keras.Model:
    """Removes pruning and clustering wrappers; returns `model` itself if it has none.

    The stripped model has plain layers whose kernels hold the zeros / shared values, so it
    saves, reloads and converts like any model. QAT wrappers stay: they are the model.
    """
    if not wrapped_layers(model):
        return model
    tfmot = _tfmot()
    stripped = tfmot.sparsity.keras.strip_pruning(model)
    if wrapped_layers(stripped):
        stripped = tfmot.clustering.keras.strip_clustering(stripped)
    return stripped


def sparsity_report(model: keras.Model) -> list[dict]:
    """Per-layer kernel sparsity: name, number of weights, zeros, fraction of zeros."""
    rows = []
    for layer in strip(model).layers:
        for weight in layer.weights:
            if "kernel" not in weight.name:
                continue
            values = weight.numpy()
            zeros = int(np.sum(values == 0))
            rows.append(
                {"layer": layer.name, "weights": int(values.size), "zeros": zeros,
                 "sparsity": zeros / max(values.size, 1)}
            )  # fmt: skip
    return rows


def sparsity_table(rows: list[dict]) -> str:
    """Markdown table of `sparsity_report` rows, with the total."""
    lines = ["| layer | weights | zeros | sparsity |", "|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['layer']} | {row['weights']:,} | {row['zeros']:,} | {row['sparsity']:.1%} |"
        )
    total, zeros = sum(row["weights"] for row in rows), sum(row["zeros"] for row in rows)
    lines.append(f"| **all kernels** | {total:,} | {zeros:,} | {zeros / max(total, 1):.1%} |")
    return "\n".join(lines)


def save_compressed(model: keras.Model, path: str | Path) -> Path:
    """Strips wrappers and saves `model` in a form that reloads with `load_compressed`.

    Plain and stripped models go to a `.keras` file. QAT models are saved as a SavedModel
    folder, because a QAT model saved as `.keras` does not reload in TF-MOT 0.8.1.

    Raises:
        ValueError: a QAT model with a path ending in `.keras` (give a folder name).
    """
    path = Path(path)
    model = strip(model)
    if is_quantize_aware(model):
        if path.suffix in (".keras", ".h5"):
            raise ValueError(
                f"a QAT model cannot be saved as {path.suffix} (it does not reload); pass a "
                f"folder name such as {path.with_suffix('')} to save a SavedModel"
            )
        # Write beside the target and rename, so a reader never sees a half-written folder.
        partial = path.with_name(f".{path.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        model.save(partial, save_format="tf", include_optimizer=False)
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
        return path
    if path.suffix != ".keras":
        raise ValueError(f"save plain models to a .keras file, received {str(path)!r}")
    from trainer.files import atomic_write_bytes

    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    atomic_write_bytes(path, partial.read_bytes())
    partial.unlink()
    return path


def load_compressed(path: str | Path) -> keras.Model:
    """Loads a model written by `save_compressed` (QAT SavedModel folder or `.keras` file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no saved model at {path}")
    if path.is_dir():
        with _tfmot().quantization.keras.quantize_scope():
            return keras.models.load_model(path, compile=False)
    return keras.models.load_model(path, compile=False)


# ---------------------------------------------------------------------------------------------
# The budgeted search: `trainer compress RUN_DIR --max_accuracy_drop=0.5`


@dataclasses.dataclass
class CompressConfig:
    max_accuracy_drop: float = 0.5  # largest accuracy drop allowed, percentage points
    method: str = "auto"  # auto (cheapest first, within budget) or a comma list of: ptq, qat, prune, pqat, cluster, cqat, structured, distill
    sparsities: str = "0.5,0.75,0.9"  # magnitude-pruning targets, tried in rising order
    structured_ratios: str = "0.25,0.5"  # fractions of filters removed, tried in rising order
    criterion: str = "bn"  # structured-pruning saliency: l1, l2 or bn (batch-norm scale)
    structured_epochs: float = 8.0  # epochs of retraining after filter pruning
    structured_distill: bool = False  # retrain filter-pruned models on the original's soft labels
    clusters: int = 16  # shared values per kernel for clustering
    finetune_epochs: float = 3.0  # epochs of fine-tuning after pruning/clustering and for QAT
    distill_epochs: int = 6  # epochs to train the distilled student
    student_width: int = 0  # student's small_cnn width; 0 = half the run's width
    teacher: str = ""  # run directory whose model teaches (default: this run's model)
    temperature: float = 2.0  # distillation temperature
    alpha: float = 0.1  # distillation weight of the hard-label loss
    learning_rate: float = 5e-4  # peak fine-tuning learning rate (Adam, cosine decay)
    batch_size: int = 128  # examples per fine-tuning step
    validation_size: int = 5000  # training images to select on (a run's own held-out slice wins)
    prefer: str = "size"  # keep the smallest (size) or fastest (latency) within budget
    int8_io: bool = False  # int8 candidates take and return int8 tensors (integer-only hardware)
    out_dir: str = ""  # output folder; default RUN_DIR/compression
    seed: int = 0  # seeds the validation split, fine-tuning and the student


@dataclasses.dataclass
class RunData:
    """The arrays a compression search needs: fine-tuning, selection and scoring sets."""

    x_fit: np.ndarray  # uint8 training images minus the validation slice (fine-tuning)
    y_fit: np.ndarray
    x_val: np.ndarray  # float32 NHWC in [0, 1]: candidates are selected on these
    y_val: np.ndarray
    x_test: np.ndarray  # float32 NHWC in [0, 1]: final numbers are reported on these
    y_test: np.ndarray
    representative: np.ndarray  # float32 NHWC fit images for int8 calibration


def load_run_data(run_config: dict, validation_size: int, seed: int = 0) -> RunData:
    """Loads a run's data as its config describes and splits off a validation slice.

    If the run held out training images (`validation_size` in its config), the slice is
    exactly those images, which the model never trained on; otherwise `validation_size`
    images chosen by `seed`, which the model did train on. Today this reads Fashion-MNIST
    IDX files (`data_dir`, `train_limit`, `test_limit` from the run's `config.yaml`); it is
    the one place to change for other sources.

    Raises:
        ValueError: `validation_size` leaves fewer than half the training images for
            fine-tuning.
    """
    from trainer.data.idx import FASHION_MNIST_DIR, load_fashion_mnist
    from trainer.data.split import holdout_split

    data_dir = run_config.get("data_dir") or FASHION_MNIST_DIR
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(
        data_dir, check_counts=Path(data_dir) == Path(FASHION_MNIST_DIR)
    )
    if run_config.get("train_limit"):
        x_train, y_train = (
            x_train[: run_config["train_limit"]],
            y_train[: run_config["train_limit"]],
        )
    if run_config.get("test_limit"):
        x_test, y_test = x_test[: run_config["test_limit"]], y_test[: run_config["test_limit"]]
    held_out = int(run_config.get("validation_size", 0) or 0)
    if held_out:  # the run never trained on this slice: select on exactly these images
        validation_size, seed = held_out, int(run_config.get("seed", 0) or 0)
    if not 0 < validation_size <= len(x_train) // 2:
        raise ValueError(
            f"validation_size must be between 1 and half the {len(x_train)} training images, "
            f"received {validation_size}; pass --validation_size=N"
        )
    fit, val = holdout_split(len(x_train), validation_size, seed)
    rng = np.random.default_rng(seed + 1)
    representative = x_train[rng.choice(fit, min(500, len(fit)), replace=False)]

    def as_float(images):
        return images[..., None].astype(np.float32) / 255.0

    return RunData(
        x_train[fit], y_train[fit], as_float(x_train[val]), y_train[val],
        as_float(x_test), y_test, as_float(representative),
    )  # fmt: skip


@dataclasses.dataclass
class Candidate:
    """One exported, measured compressed model."""

    technique: str
    settings: str
    format: str
    path: str
    val_accuracy: float
    val_drop_pp: float
    test_accuracy: float
    test_drop_pp: float
    size_bytes: int
    gzip_bytes: int
    latency_ms: float
    parameters: int
    nonzero_parameters: int
    flops: int
    seconds: float
    within_budget: bool = False

    @property
    def name(self) -> str:
        return Path(self.path).stem


def _parse_fractions(text: str, option: str) -> list[float]:
    try:
        values = sorted(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--{option} takes comma-separated fractions, received {text!r}") from None
    if not values or not all(0.0 < value < 1.0 for value in values):
        raise ValueError(f"--{option} values must be in (0, 1), received {text!r}")
    return values


def _parse_methods(text: str) -> list[str]:
    if text == "auto":
        return ["auto"]
    methods = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"unknown --method {text!r}; use auto or a comma list of {', '.join(METHODS)}"
        )
    return methods


def _count_nonzero(model: keras.Model) -> int:
    return int(sum(np.count_nonzero(weight) for weight in model.get_weights()))


class _Search:
    """Runs the candidates of one `compress_run`, sharing data, settings and results."""

    def __init__(self, model, data: RunData, config: CompressConfig, run_config: dict, out_dir):
        self.model = model
        self.data = data
        self.config = config
        self.run_config = run_config
        self.out_dir = Path(out_dir)
        self.candidates: list[Candidate] = []
        self.models: dict[str, keras.Model] = {}
        self.sparsity_tables: dict[str, str] = {}
        self.notes: list[str] = []
        self.reference_val = self._keras_accuracy(model, data.x_val, data.y_val)
        self.reference_test = self._keras_accuracy(model, data.x_test, data.y_test)

    @staticmethod
    def _keras_accuracy(model, x, y) -> float:
        logits = model.predict(x, batch_size=1000, verbose=0)
        return float(np.mean(np.argmax(logits, axis=-1) == y))

    def _log(self, message: str) -> None:
        print(message, flush=True)

    # -- fitting ---------------------------------------------------------------------------

    def _dataset(self):
        from trainer.augment import Compose, RandomCropWithPadding, RandomFlip
        from trainer.data.pipeline import image_dataset

        padding = int(self.run_config.get("crop_padding", 0) or 0)
        augment = Compose(
            ([RandomCropWithPadding(padding)] if padding else [])
            + ([RandomFlip(horizontal=True)] if self.run_config.get("flip") else [])
        )
        classes = int(self.model.output_shape[-1])
        return image_dataset(
            self.data.x_fit, self.data.y_fit, classes, self.config.batch_size, True, augment,
            self.config.seed,
        )  # fmt: skip

    def steps(self, epochs: float) -> int:
        per_epoch = math.ceil(len(self.data.x_fit) / self.config.batch_size)
        return max(1, int(round(epochs * per_epoch)))

    def fit(
        self,
        model,
        callbacks,
        epochs: float,
        learning_rate: float | None = None,
        teacher=None,
        warmup: bool = False,
    ) -> None:
        """Compiles and trains for `epochs` (fractions allowed) with cosine-decayed Adam.

        With a `teacher`, the model trains as the student of a `Distiller` (the run's label
        smoothing on the hard loss, `temperature` and `alpha` from the config). With `warmup`
        the learning rate rises linearly over the first half epoch, for models trained from
        scratch.
        """
        from trainer.callbacks import EpochLogger
        from trainer.distill import Distiller

        total = self.steps(epochs)
        rounds = max(1, math.ceil(epochs))  # Keras epochs, so callbacks see epoch ends
        peak = learning_rate or self.config.learning_rate
        warmup_steps = min(self.steps(0.5), total - 1) if warmup else 0
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else peak, decay_steps=total - warmup_steps,
            warmup_target=peak if warmup_steps else None, warmup_steps=warmup_steps,
        )  # fmt: skip
        smoothing = float(self.run_config.get("label_smoothing", 0.0) or 0.0)
        hard_loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=smoothing
        )
        if teacher is None:
            trained = model
            trained.compile(keras.optimizers.Adam(schedule), hard_loss, metrics=["accuracy"])
        else:
            trained = Distiller(
                model, teacher, self.config.temperature, self.config.alpha, student_loss=hard_loss
            )
            trained.compile(optimizer=keras.optimizers.Adam(schedule), metrics=["accuracy"])
        trained.fit(
            self._dataset().repeat(), epochs=rounds, steps_per_epoch=math.ceil(total / rounds),
            callbacks=[*callbacks, EpochLogger()], verbose=0,
        )  # fmt: skip

    def teacher(self) -> keras.Model:
        """The frozen teacher for distillation: the `--teacher` run's model, or a copy of this
        run's model (a copy, so the original, source of every other candidate, stays
        trainable)."""
        if "teacher" not in self.models:
            if self.config.teacher:
                from trainer.distill import load_teacher

                teacher = load_teacher(self.config.teacher)
            else:
                teacher = keras.models.clone_model(self.model)
                teacher.set_weights(self.model.get_weights())
            teacher.trainable = False
            self.models["teacher"] = teacher
        return self.models["teacher"]

    # -- measuring -------------------------------------------------------------------------

    def measure(self, technique: str, settings: str, model, format: str, started: float):
        from trainer.export import convert, gzip_size, measure_latency, tflite_accuracy
        from trainer.files import atomic_write_bytes
        from trainer.flops import count_flops

        model = strip(model)
        parts = [technique, settings.replace("=", "").replace(",", "_"), format]
        name = "-".join(part for part in parts if part)
        int8_io = self.config.int8_io and format == "int8"
        content = convert(model, format, self.data.representative, int8_io=int8_io)
        path = atomic_write_bytes(self.out_dir / "candidates" / f"{name}.tflite", content)
        val_accuracy = tflite_accuracy(content, self.data.x_val, self.data.y_val)
        test_accuracy = tflite_accuracy(content, self.data.x_test, self.data.y_test)
        # Best of three: the machine may be shared, and interference only ever adds time.
        latency = min(measure_latency(content, self.data.x_test[0], runs=100) for _ in range(3))
        parameters = int(model.count_params())
        candidate = Candidate(
            technique=technique, settings=settings, format=format, path=str(path),
            val_accuracy=val_accuracy,
            val_drop_pp=round((self.reference_val - val_accuracy) * 100, 3),
            test_accuracy=test_accuracy,
            test_drop_pp=round((self.reference_test - test_accuracy) * 100, 3),
            size_bytes=len(content), gzip_bytes=gzip_size(content), latency_ms=latency,
            parameters=parameters, nonzero_parameters=_count_nonzero(model),
            flops=count_flops(model), seconds=round(time.perf_counter() - started, 1),
        )  # fmt: skip
        candidate.within_budget = candidate.val_drop_pp <= self.config.max_accuracy_drop
        self.candidates.append(candidate)
        self.models[candidate.name] = model
        verdict = "within budget" if candidate.within_budget else "OVER budget"
        self._log(
            f"  {candidate.name}: val {val_accuracy:.4f} (drop {candidate.val_drop_pp:+.2f} pp, "
            f"{verdict}), test {test_accuracy:.4f}, {len(content) / 1024:.1f} KiB, "
            f"gzip {candidate.gzip_bytes / 1024:.1f} KiB, {latency:.3f} ms"
        )
        return candidate

    # -- techniques, cheapest first --------------------------------------------------------

    def baseline(self) -> Candidate:
        self._log("baseline: the run's model as float32 TFLite")
        return self.measure("original", "", self.model, "float32", time.perf_counter())

    def ptq(self) -> Candidate:
        self._log("post-training quantization")
        for format in ("float16", "dynamic"):
            self.measure("ptq", "", self.model, format, time.perf_counter())
        return self.measure("ptq", "", self.model, "int8", time.perf_counter())

    def qat(self) -> Candidate:
        self._log(f"quantization-aware training, {self.config.finetune_epochs} epochs")
        started = time.perf_counter()
        qat_model, callbacks = quantize_aware(self.model)
        self.fit(qat_model, callbacks, self.config.finetune_epochs, self.config.learning_rate / 5)
        return self.measure("qat", "", qat_model, "int8", started)

    def large_layers(self) -> list[str]:
        """Conv/Dense layers with at least `MIN_PRUNED_WEIGHTS` kernel weights.

        Small layers, typically the first convolution (288 weights in `small_cnn`), hold
        almost none of the size but every image passes through them: pruning them costs
        accuracy and saves nothing.
        """
        return [
            layer.name
            for layer in self.model.layers
            if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
            and layer.kernel.shape.num_elements() >= MIN_PRUNED_WEIGHTS
        ]

    def pruned(self, sparsity: float) -> keras.Model:
        """The model magnitude-pruned to `sparsity` and fine-tuned (cached per sparsity)."""
        key = f"pruned-{sparsity}"
        if key not in self.models:
            self._log(f"magnitude pruning to {sparsity:.0%}, {self.config.finetune_epochs} epochs")
            total = self.steps(self.config.finetune_epochs)
            # Reach the target after 40% of the steps, while the cosine-decayed learning rate
            # is still high enough for the remaining 60% to recover accuracy at that sparsity.
            pruned, callbacks = prune_low_magnitude(
                self.model, sparsity, end_step=max(1, int(total * 0.4)),
                layer_names=self.large_layers() or None, frequency=max(1, total // 20),
            )  # fmt: skip
            self.fit(pruned, callbacks, self.config.finetune_epochs)
            self.models[key] = strip(pruned)
        return self.models[key]

    def _quantized(self, technique: str, preserve: str, settings: str, model, qat: bool, started):
        """`model` as int8: post-training quantized (`technique+ptq`), or after 1 epoch of QAT
        that keeps its sparsity or clusters (`preserve`; prune+pqat, cluster+cqat)."""
        if not qat:
            return self.measure(f"{technique}+ptq", settings, model, "int8", started)
        self._log(f"  {preserve}-preserving QAT, 1 epoch")
        qat_model, callbacks = quantize_aware(model, preserve=preserve)
        self.fit(qat_model, callbacks, min(1.0, self.config.finetune_epochs), 1e-4)
        return self.measure(f"{technique}+{technique[0]}qat", settings, qat_model, "int8", started)

    def prune(self, sparsity: float, preserve_with_qat: bool) -> Candidate:
        started = time.perf_counter()
        model = self.pruned(sparsity)
        settings = f"sparsity={sparsity:g}"
        self.sparsity_tables[settings] = sparsity_table(sparsity_report(model))
        return self._quantized("prune", "sparsity", settings, model, preserve_with_qat, started)

    def clustered(self) -> keras.Model:
        if "clustered" not in self.models:
            count = self.config.clusters
            self._log(f"weight clustering, {count} clusters, {self.config.finetune_epochs} epochs")
            clustered, callbacks = cluster_weights(self.model, count)
            self.fit(clustered, callbacks, self.config.finetune_epochs, 1e-4)
            self.models["clustered"] = strip(clustered)
        return self.models["clustered"]

    def cluster(self, preserve_with_qat: bool) -> Candidate:
        started = time.perf_counter()
        settings = f"clusters={self.config.clusters}"
        model = self.clustered()
        return self._quantized("cluster", "clusters", settings, model, preserve_with_qat, started)

    def structured(self, ratio: float) -> Candidate:
        from trainer.structured_pruning import prune_filters

        self._log(
            f"structured pruning: {ratio:.0%} of filters by {self.config.criterion}, "
            f"{self.config.structured_epochs:g} epochs"
        )
        started = time.perf_counter()
        smaller = prune_filters(self.model, ratio, criterion=self.config.criterion)
        # A narrower network is retrained rather than fine-tuned: the run's own peak learning
        # rate with warmup ("learning-rate rewinding", Renda et al. 2020). Measured at 37.5% on
        # Fashion-MNIST, 8 epochs: test drop 0.43 pp, against 0.99 pp at the fine-tuning rate
        # 5e-4 for 6 epochs; the original as a teacher (structured_distill) gave 0.84 pp.
        teacher = self.teacher() if self.config.structured_distill else None
        learning_rate = float(self.run_config.get("learning_rate", self.config.learning_rate))
        self.fit(
            smaller, [], self.config.structured_epochs, learning_rate, teacher=teacher, warmup=True
        )
        settings = f"ratio={ratio:g}"
        self.measure("structured", settings, smaller, "float32", started)
        return self.measure("structured+ptq", settings, smaller, "int8", time.perf_counter())

    def distill(self) -> Candidate:
        from trainer.models import small_cnn

        width = self.config.student_width or max(4, int(self.run_config.get("width", 32)) // 2)
        teacher_name = self.config.teacher or "this run's model"
        self._log(
            f"distillation into small_cnn(width={width}), {self.config.distill_epochs} epochs, "
            f"teacher: {teacher_name}"
        )
        started = time.perf_counter()
        keras.utils.set_random_seed(self.config.seed)
        student = small_cnn(
            self.model.input_shape[1:], int(self.model.output_shape[-1]), width=width,
            dropout=float(self.run_config.get("dropout", 0.3)),
            head_units=int(self.run_config.get("head_units", 0) or 0),
        )  # fmt: skip
        learning_rate = float(self.run_config.get("learning_rate", 1e-3))
        self.fit(
            student, [], self.config.distill_epochs, learning_rate, self.teacher(), warmup=True
        )
        settings = f"width={width}"
        self.measure("distill", settings, student, "float32", started)
        return self.measure("distill+ptq", settings, student, "int8", time.perf_counter())

    # -- the search ------------------------------------------------------------------------

    def run(self, methods: list[str]) -> None:
        config = self.config
        auto = methods == ["auto"]
        sparsities = _parse_fractions(config.sparsities, "sparsities")
        ratios = _parse_fractions(config.structured_ratios, "structured_ratios")
        self.baseline()
        ptq_ok = True
        if auto or "ptq" in methods:
            ptq_ok = self.ptq().within_budget
        if "qat" in methods or (auto and not ptq_ok):
            self.qat()
        elif auto:
            self.notes.append("QAT skipped: PTQ int8 already stays within the budget.")
        # In auto mode, stop raising a ratio at the first candidate over budget: higher ones
        # cost more accuracy, so they would only be rejected too.
        ladders = (
            ("prune", sparsities, lambda value: self.prune(value, auto and not ptq_ok)),
            ("pqat", sparsities, lambda value: self.prune(value, True)),
            ("structured", ratios, self.structured),
        )
        for method, values, try_value in ladders:
            if method not in methods and not (auto and method != "pqat"):
                continue
            for value in values:
                if not try_value(value).within_budget and auto:
                    self.notes.append(f"{method}: stopped at {value:g}, the first over budget.")
                    break
        if "cluster" in methods:
            self.cluster(preserve_with_qat=False)
        if "cqat" in methods:
            self.cluster(preserve_with_qat=True)
        if auto or "distill" in methods:
            self.distill()

    def remeasure_latency(self, rounds: int = 5) -> None:
        """Measures every candidate again, round-robin, keeping each one's best time.

        Load from other processes comes and goes during a long search; interleaving gives
        every candidate the same chances of a quiet moment, so speed ratios stay fair.
        """
        from trainer.export import measure_latency

        contents = [Path(candidate.path).read_bytes() for candidate in self.candidates]
        for _ in range(rounds):
            for candidate, content in zip(self.candidates, contents, strict=True):
                latency = measure_latency(content, self.data.x_test[0], runs=100)
                candidate.latency_ms = min(candidate.latency_ms, latency)

    def best(self) -> Candidate:
        """The smallest (gzip) or fastest candidate within budget; the original otherwise."""
        eligible = [candidate for candidate in self.candidates if candidate.within_budget]
        if not eligible:
            return self.candidates[0]
        if self.config.prefer == "latency":
            return min(eligible, key=lambda candidate: (candidate.latency_ms, candidate.gzip_bytes))
        return min(eligible, key=lambda candidate: (candidate.gzip_bytes, candidate.latency_ms))


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.1f} KiB"


def _label(candidate: Candidate) -> str:
    return " ".join(part for part in (candidate.technique, candidate.settings) if part) + (
        f" ({candidate.format})"
    )


def candidates_table(candidates: Sequence[Candidate], best: Candidate | None = None) -> str:
    """Markdown table of every candidate with ratios against the first (the original)."""
    reference = candidates[0]
    lines = [
        "| candidate | val acc | val drop (pp) | test acc | test drop (pp) | size | gzip size "
        "| latency | params (non-zero) | MFLOPs | budget | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for candidate in candidates:
        mark = " **best**" if best is not None and candidate is best else ""
        size_ratio = candidate.size_bytes / reference.size_bytes
        gzip_ratio = candidate.gzip_bytes / reference.gzip_bytes
        speed = reference.latency_ms / candidate.latency_ms
        lines.append(
            f"| {_label(candidate)}{mark} "
            f"| {candidate.val_accuracy:.2%} | {candidate.val_drop_pp:+.2f} "
            f"| {candidate.test_accuracy:.2%} | {candidate.test_drop_pp:+.2f} "
            f"| {_size(candidate.size_bytes)} ({size_ratio:.2f}x) "
            f"| {_size(candidate.gzip_bytes)} ({gzip_ratio:.2f}x) "
            f"| {candidate.latency_ms:.3f} ms ({speed:.2f}x faster) "
            f"| {candidate.parameters:,} ({candidate.nonzero_parameters:,}) "
            f"| {candidate.flops / 1e6:.2f} | {'within' if candidate.within_budget else 'over'} "
            f"| {candidate.seconds:.0f} s |"
        )
    return "\n".join(lines)


def compress_run(run_dir: str | Path, config: CompressConfig) -> dict:
    """Compresses a trained run within an accuracy budget; writes a report and the best model.

    Every candidate is exported to TFLite under `OUT_DIR/candidates/` and measured with
    LiteRT: accuracy on the validation slice (selects) and the test set (scores), size raw and
    gzip, batch-1 latency on one thread, parameters and FLOPs. The best candidate is copied to
    `OUT_DIR/model_compressed.tflite` with its Keras model; `report.md` holds the table and
    `accuracy_vs_size.png`.

    Raises:
        FileNotFoundError: the run directory, its config.yaml or model.keras is missing.
        ValueError: a bad option value (quoted in the message).
    """
    import yaml

    from trainer.files import atomic_write_bytes
    from trainer.plots import plot_accuracy_vs_size
    from trainer.report import write_report
    from trainer.runs import CONFIG_FILE, MODEL_FILE

    started = time.perf_counter()
    run_dir = Path(run_dir)
    check_compress_options(run_dir, config)
    methods = _parse_methods(config.method)
    run_config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    out_dir = Path(config.out_dir) if config.out_dir else run_dir / "compression"
    keras.utils.set_random_seed(config.seed)
    model = keras.models.load_model(run_dir / MODEL_FILE, compile=False)
    data = load_run_data(run_config, config.validation_size, config.seed)
    print(
        f"compressing {run_dir}: budget {config.max_accuracy_drop} pp, method {config.method}; "
        f"{len(data.x_fit)} fine-tuning / {len(data.x_val)} validation / {len(data.x_test)} test"
    )
    search = _Search(model, data, config, run_config, out_dir)
    search.run(methods)
    search.remeasure_latency()
    best = search.best()
    best_path = out_dir / (
        "model_compressed" + ("" if is_quantize_aware(search.models[best.name]) else ".keras")
    )
    save_compressed(search.models[best.name], best_path)
    atomic_write_bytes(out_dir / "model_compressed.tflite", Path(best.path).read_bytes())
    seconds = time.perf_counter() - started

    plot_accuracy_vs_size(
        [(_label(c), c.gzip_bytes, c.test_accuracy, c.within_budget)
         for c in search.candidates],
        search.reference_test, config.max_accuracy_drop, out_dir / "accuracy_vs_size.png",
        size_label="gzip size",
    )  # fmt: skip
    table = candidates_table(search.candidates, best)
    print(table)
    sections = {
        "Result": _summary(best, search, config, seconds),
        "Candidates": table + "\n\n" + _legend(search, config),
        "Accuracy vs size": "Test accuracy against gzip size; the dashed line is the float "
        "model's test accuracy minus the budget. Colours show the verdict on the validation "
        "slice, which selects; the test set only scores.\n\n![accuracy vs size](accuracy_vs_size.png)",
    }
    for settings, sparsity in search.sparsity_tables.items():
        sections[f"Per-layer sparsity, magnitude pruning {settings}"] = sparsity
    metrics = {
        "run_dir": str(run_dir),
        "config": dataclasses.asdict(config),
        "reference_val_accuracy": search.reference_val,
        "reference_test_accuracy": search.reference_test,
        "best": best.name,
        "seconds": round(seconds, 1),
        "candidates": [{**dataclasses.asdict(c), "name": c.name} for c in search.candidates],
    }
    write_report(out_dir, f"Compression of {run_dir}", sections, metrics)
    print(f"best: {best.name}; report: {out_dir / 'report.md'} ({seconds:.0f} s)")
    return metrics


def _summary(best: Candidate, search: _Search, config: CompressConfig, seconds: float) -> str:
    reference = search.candidates[0]
    return (
        f"Kept **{_label(best)}**: test accuracy "
        f"{best.test_accuracy:.2%} ({best.test_drop_pp:+.2f} pp vs the float model's "
        f"{search.reference_test:.2%}), {_size(best.size_bytes)} "
        f"({best.size_bytes / reference.size_bytes:.2f}x), gzip {_size(best.gzip_bytes)} "
        f"({best.gzip_bytes / reference.gzip_bytes:.2f}x), {best.latency_ms:.3f} ms per image "
        f"({reference.latency_ms / best.latency_ms:.2f}x faster). Budget: "
        f"{config.max_accuracy_drop} pp; preferred: smallest {'gzip size' if config.prefer == 'size' else 'latency'}. "
        f"Search took {seconds:.0f} s. Files: `model_compressed.tflite` and its Keras model."
    )


def _legend(search: _Search, config: CompressConfig) -> str:
    data = search.data
    lines = [
        f"Selection: accuracy drop on a validation slice of {len(data.x_val)} training images "
        f"against the float Keras model ({search.reference_val:.2%}); a candidate is within "
        f"budget when that drop is at most {config.max_accuracy_drop} pp. "
        + (
            "The run held these images out of training (its `validation_size`), so the drops "
            "are unbiased; fine-tuning never sees them either."
            if search.run_config.get("validation_size")
            else "The original model was trained on these images, so its validation accuracy is "
            "optimistic and drops of retrained candidates are overstated; train with "
            "`--validation_size=5000` to hold them out. Fine-tuning never sees them."
        ),
        f"Scoring: the test set ({len(data.x_test)} images, float Keras model "
        f"{search.reference_test:.2%}), never used for any choice.",
        f"Fine-tuning: {len(data.x_fit)} training images, {config.finetune_epochs} epochs, Adam "
        f"with cosine decay from {config.learning_rate:g}; filter-pruned models retrain "
        f"{config.structured_epochs:g} epochs and distilled students {config.distill_epochs}, both "
        f"from the run's learning rate after half an epoch of warmup "
        f"(T={config.temperature:g}, alpha={config.alpha:g}). Magnitude pruning skips "
        f"layers with fewer than {MIN_PRUNED_WEIGHTS} kernel weights.",
        "Latency: batch 1, one thread, LiteRT interpreter; best of 8 means of 100 runs, 5 of "
        "them taken round-robin over all candidates after the search. Size ratios and "
        "speed-ups are against the first row. MFLOPs count pruned zeros, which still execute.",
    ]
    return "\n".join(f"- {line}" for line in lines + search.notes)


def check_compress_options(run_dir: str | Path, config: CompressConfig) -> None:
    """Fails fast, before any work, on a missing run file or a bad option value.

    Raises:
        FileNotFoundError: the run directory, its config.yaml or model.keras is missing.
        ValueError: a bad option value (quoted in the message).
    """
    from trainer.runs import CONFIG_FILE, MODEL_FILE

    required = [Path(run_dir) / CONFIG_FILE, Path(run_dir) / MODEL_FILE]
    if config.teacher:
        required.append(Path(config.teacher) / MODEL_FILE)
    for path in required:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: pass a run directory made by `trainer train`"
            )
    if config.max_accuracy_drop < 0:
        raise ValueError(f"max_accuracy_drop must be >= 0 pp, received {config.max_accuracy_drop}")
    if config.prefer not in ("size", "latency"):
        raise ValueError(f"prefer must be size or latency, received {config.prefer!r}")
    if config.finetune_epochs <= 0 or config.structured_epochs <= 0 or config.distill_epochs < 1:
        raise ValueError(
            f"finetune_epochs and structured_epochs must be > 0 and distill_epochs >= 1, "
            f"received {config.finetune_epochs}, {config.structured_epochs} and "
            f"{config.distill_epochs}"
        )
    _parse_methods(config.method)
    _parse_fractions(config.sparsities, "sparsities")
    _parse_fractions(config.structured_ratios, "structured_ratios")


def cli_main(argv: list[str]) -> int:
    """`trainer compress RUN_DIR [--key=value ...]`: see `--help` for the options."""
    from trainer.config import ConfigError, help_text, parse_args

    program = "trainer compress RUN_DIR"
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(CompressConfig, program))
        return 0 if argv else 2
    if argv[0].startswith("-"):
        print(f"{program}: error: the first argument must be a run directory, received "
              f"{argv[0]!r}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        config = parse_args(CompressConfig, argv[1:], program=program)
        check_compress_options(argv[0], config)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    compress_run(argv[0], config)
    return 0
