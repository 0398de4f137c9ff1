"""The budgeted search of `trainer compress RUN_DIR`: rebuild the run, try techniques, measure.

`compress_run` rebuilds a run through the recipe that made it (`run.json` names it, and
`config.yaml` holds its config), so the data, preprocessing, loss and learning rate are the
run's own, whatever the recipe. `Search` then tries techniques from cheapest to most expensive
(post-training quantization, QAT, magnitude pruning, clustering, filter pruning,
distillation), exports every candidate to TFLite, measures it with LiteRT and keeps the
smallest (or fastest) whose accuracy drop on the run's validation data stays within the
budget. The test set only scores. Techniques that do not apply to the model are skipped with
a note in the report.

This module owns the search; the TF-MOT helpers are `trainer.compression`, TFLite conversion is
`trainer.export`, the report is `trainer.compress.report`. It must not parse command lines.

Example:

    from trainer.compress import CompressConfig, compress_run
    metrics = compress_run("runs/fm", CompressConfig(max_accuracy_drop=0.5))
    print(metrics["best"])
"""

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import tf_keras as keras

from trainer.compress.candidates import Candidate, best_candidate
from trainer.compress.options import (
    MIN_PRUNED_WEIGHTS,
    CompressConfig,
    check_compress_options,
    parse_fractions,
    parse_methods,
)
from trainer.compression import cluster_weights as cluster_layers
from trainer.compression import (
    is_quantize_aware,
    prune_filters,
    prune_low_magnitude,
    quantize_aware,
    save_compressed,
    sparsity_report,
    sparsity_table,
    strip,
)
from trainer.experiment import Experiment
from trainer.models.image import without_test_time_flip
from trainer.precision import float32_copy

STUDENT_RATIO = 0.5  # filters removed from the original for a student of a width-less recipe
# Fine-tuning runs at a sixth of the run's peak learning rate unless --learning_rate says
# otherwise (Fashion-MNIST: 5e-4 against 3e-3), QAT and clustering at a fifth of that again.
FINETUNE_FRACTION = 1 / 6
GENTLE_FRACTION = 1 / 5

# Makes the untrained distillation student: (model, settings for the candidate's name, a
# phrase for the log and the report).
StudentFactory = Callable[[], tuple[keras.Model, str, str]]


def rebuild_run(run_dir: str | Path) -> tuple[ModuleType, Any, Experiment]:
    """The recipe module, its config and `recipe.build(config)` for the run in `run_dir`.

    Raises:
        FileNotFoundError: `run.json` or `config.yaml` is missing, or names a recipe file that
            no longer exists.
        ValueError: `run.json` names no recipe, or the recipe has no `build` (the recipe
            contract), or its `build` returned no validation data.
    """
    from trainer.recipe_loader import load_run_recipe

    recipe, config = load_run_recipe(run_dir, "rebuild the run's data and model for compress")
    recipe_name = recipe.__name__
    if getattr(config, "precision", "float32") != "float32":
        # TF-MOT's fake-quantization and clustering ops take float32 only (measured: bfloat16
        # inputs fail in FakeQuantWithMinMaxVars and KmeansPlusPlusInitialization).
        print(f"compress fine-tunes in float32 (the run's precision: {config.precision})")
        config = dataclasses.replace(config, precision="float32")
    experiment = recipe.build(config)
    if experiment.x_val is None or experiment.y_val is None or len(experiment.x_val) == 0:
        raise ValueError(
            f"recipe {recipe_name!r} built no validation data for {run_dir} (x_val is None). "
            "Compress chooses candidates on validation data, never on the test set: train the "
            "run again with a validation share (e.g. --validation_size=N if the recipe has it)"
        )
    return recipe, config, experiment


def load_original(path: str | Path) -> keras.Model:
    """The run's trained model; a truncated or unreadable file fails with a one-paragraph
    ValueError naming it, not a traceback from h5py or zipfile."""
    import zipfile

    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(
            f"{path} could not be read as a Keras model ({type(error).__name__}: {reason}); "
            "the file is probably truncated or was written by an interrupted run. Train the run "
            "again, or copy model.keras from where it was made."
        ) from None


def student_factory(
    recipe: ModuleType, recipe_config: Any, original: keras.Model, config: CompressConfig
) -> StudentFactory:
    """How to make the distillation student: the run's own architecture, shrunk.

    If the recipe's Config has a `width`, the student is `recipe.build(config with width
    halved, at least 4, or --student_width)`'s fresh model; otherwise the original with half
    its filters removed (`prune_filters`) and its weights re-initialised.
    """
    if hasattr(recipe_config, "width"):
        width = config.student_width or max(4, int(recipe_config.width) // 2)

        def build_student() -> tuple[keras.Model, str, str]:
            smaller = dataclasses.replace(recipe_config, width=width)
            model = recipe.build(smaller).model
            return model, f"width={width}", f"the recipe's model at width={width}"

        return build_student

    def prune_student() -> tuple[keras.Model, str, str]:
        pruned = prune_filters(original, STUDENT_RATIO, criterion="l1")
        if pruned.count_params() >= original.count_params():
            raise ValueError("no layer of the model can lose filters")
        # clone_model builds new layers from the config: fresh, re-initialised weights.
        fresh = keras.models.clone_model(pruned)
        description = f"the original without {STUDENT_RATIO:.0%} of its filters, re-initialised"
        return fresh, f"ratio={STUDENT_RATIO:g}", description

    return prune_student


def refuse_untrained(
    val_accuracy: float, y_val: np.ndarray, test_accuracy: float, y_test: np.ndarray
) -> None:
    """Fails when the original scores at chance on validation or test data: compressing a
    model that never learned would only measure noise (and may call noise "within budget")."""
    from trainer.diagnosis import CHANCE_MARGIN, at_chance, majority_share

    for split, accuracy, labels in (
        ("validation", val_accuracy, y_val),
        ("test", test_accuracy, y_test),
    ):
        if at_chance(accuracy, labels):
            raise ValueError(
                f"the run's model never learned: its {split} accuracy {accuracy:.1%} is at "
                f"chance level (the majority class is {majority_share(labels):.1%} of the "
                f"{split} labels, +{CHANCE_MARGIN * 100:g} pp). There is nothing to compress. "
                "Train it again with more epochs (or a smaller batch size, for more steps) and "
                "read the fit diagnosis in the run's report.md for what else to change."
            )


def _count_nonzero(model: keras.Model) -> int:
    return int(sum(np.count_nonzero(weight) for weight in model.get_weights()))


def _keras_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    logits = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))


def _batches_per_epoch(dataset) -> int:
    count = int(dataset.cardinality())
    if count == -1:  # tf.data.INFINITE_CARDINALITY
        raise ValueError(
            "experiment.train repeats forever; build() must return one epoch of batches "
            "(no .repeat()), so compress can count the steps of an epoch"
        )
    if count < 0:  # unknown (e.g. after filter): count it once
        count = sum(1 for _ in dataset)
    return max(1, count)


class Search:
    """Runs the candidates of one compression, sharing the data, settings and results.

    Args:
        original: the run's trained model (never changed; every candidate starts from a copy).
        experiment: what the run's recipe built: training data, validation and test arrays,
            representative inputs, the compiled loss, learning rate and export formats.
        config: the command's options.
        out_dir: where candidate files go (`out_dir/candidates/*.tflite`).
        make_student: returns the untrained distillation student and a phrase describing it.

    Raises:
        ValueError: the original scores at chance (see `refuse_untrained`).
    """

    def __init__(
        self,
        original: keras.Model,
        experiment: Experiment,
        config: CompressConfig,
        out_dir: str | Path,
        make_student: StudentFactory | None = None,
    ):
        self.model = original
        self.experiment = experiment
        self.config = config
        self.out_dir = Path(out_dir)
        self.make_student = make_student
        self.candidates: list[Candidate] = []
        self.models: dict[str, keras.Model] = {}
        self.sparsity_tables: dict[str, str] = {}
        self.notes: list[str] = []
        # Quantizing the inputs breaks models that take ids (text): when the recipe does not
        # export int8, dynamic-range quantization (float inputs, int8 weights) stands in.
        self.int8 = "int8" if "int8" in experiment.export_formats else "dynamic"
        loss = experiment.model.loss
        self.loss = keras.losses.get(loss) if isinstance(loss, str) else loss
        if self.loss is None:
            raise ValueError("experiment.model is not compiled: build() must compile it")
        self.steps_per_epoch = _batches_per_epoch(experiment.train)
        if config.batch_size > 0:
            examples = self.steps_per_epoch * experiment.batch_size
            self.steps_per_epoch = max(1, math.ceil(examples / config.batch_size))
        self.finetune_rate = config.learning_rate or experiment.learning_rate * FINETUNE_FRACTION
        self.reference_val = _keras_accuracy(original, experiment.x_val, experiment.y_val)
        self.reference_test = _keras_accuracy(original, experiment.x_test, experiment.y_test)
        refuse_untrained(
            self.reference_val, experiment.y_val, self.reference_test, experiment.y_test
        )

    def _log(self, message: str) -> None:
        print(message, flush=True)

    # -- fitting ---------------------------------------------------------------------------

    def _dataset(self):
        train = self.experiment.train
        if self.config.batch_size > 0:
            train = train.unbatch().batch(self.config.batch_size)
        return train

    def steps(self, epochs: float) -> int:
        return max(1, int(round(epochs * self.steps_per_epoch)))

    def fit(
        self,
        model: keras.Model,
        callbacks: list,
        epochs: float,
        learning_rate: float | None = None,
        teacher: keras.Model | None = None,
        warmup: bool = False,
    ) -> None:
        """Compiles with the run's loss and trains for `epochs` (fractions allowed) with Adam,
        cosine decay from `learning_rate` (default: the fine-tuning rate).

        With a `teacher`, the model trains as the student of a `Distiller` (the run's loss on
        the hard labels, `temperature` and `alpha` from the options). With `warmup` the
        learning rate rises linearly over the first half epoch, for models trained from
        scratch.
        """
        from trainer.callbacks import EpochLogger
        from trainer.distill import Distiller
        from trainer.optimizers import scheduled_optimizer

        total = self.steps(epochs)
        rounds = max(1, math.ceil(epochs))  # Keras epochs, so callbacks see epoch ends
        optimizer = scheduled_optimizer(
            "adam",
            learning_rate or self.finetune_rate,
            steps_per_epoch=self.steps_per_epoch,
            epochs=epochs,
            warmup_epochs=0.5 if warmup else 0.0,
        )
        class_weight = self.experiment.class_weight
        if teacher is None:
            trained = model
            trained.compile(optimizer, self.loss, metrics=["accuracy"])
        else:
            trained = Distiller(
                model, teacher, self.config.temperature, self.config.alpha, student_loss=self.loss
            )
            trained.compile(optimizer=optimizer, metrics=["accuracy"])
            class_weight = None  # the distiller's hard loss is already reduced to a scalar
        trained.fit(
            self._dataset().repeat(),
            epochs=rounds,
            steps_per_epoch=math.ceil(total / rounds),
            class_weight=class_weight,
            callbacks=[*callbacks, EpochLogger()],
            verbose=0,
        )

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

    def measure(
        self, technique: str, settings: str, model: keras.Model, format: str, started: float
    ) -> Candidate:
        """Exports `model` as `format`, scores it with LiteRT and records the candidate."""
        from trainer.export import convert, gzip_size, measure_latency, tflite_accuracy
        from trainer.files import atomic_write_bytes
        from trainer.flops import count_flops

        experiment = self.experiment
        model = strip(model)
        parts = [technique, settings.replace("=", "").replace(",", "_"), format]
        name = "-".join(part for part in parts if part)
        input_range = self._input_range()
        if format == "int8" and input_range is not None:
            _pin_quantized_input(model, input_range)
        content = convert(
            model, format, experiment.representative, io=self.config.io, input_range=input_range
        )
        path = atomic_write_bytes(self.out_dir / "candidates" / f"{name}.tflite", content)
        val_accuracy = tflite_accuracy(content, experiment.x_val, experiment.y_val)
        test_accuracy = tflite_accuracy(content, experiment.x_test, experiment.y_test)
        # Best of three: the machine may be shared, and interference only ever adds time.
        sample = experiment.x_test[0]
        latency = min(measure_latency(content, sample, runs=100) for _ in range(3))
        candidate = Candidate(
            technique=technique,
            settings=settings,
            format=format,
            path=str(path),
            val_accuracy=val_accuracy,
            val_drop_pp=round((self.reference_val - val_accuracy) * 100, 3),
            test_accuracy=test_accuracy,
            test_drop_pp=round((self.reference_test - test_accuracy) * 100, 3),
            size_bytes=len(content),
            gzip_bytes=gzip_size(content),
            latency_ms=latency,
            parameters=int(model.count_params()),
            nonzero_parameters=_count_nonzero(model),
            flops=count_flops(model),
            seconds=round(time.perf_counter() - started, 1),
        )
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

    def _input_range(self) -> tuple[float, float] | None:
        """The model inputs of pixels 0 and 255, so that a uint8 or int8 file takes raw pixels
        exactly; None with float32 io or a model that does not take images."""
        from trainer.export import image_input

        if self.config.io == "float32":
            return None
        image = image_input(self.model, self.experiment.input_spec, self.experiment.x_test)
        return None if image is None else image.pixel_range

    def _skip(self, technique: str, reason: str) -> None:
        note = f"{technique} skipped: {reason}"
        self.notes.append(note)
        self._log(note)

    # -- techniques, cheapest first --------------------------------------------------------

    def baseline(self) -> Candidate:
        self._log("baseline: the run's model as float32 TFLite")
        return self.measure("original", "", self.model, "float32", time.perf_counter())

    def ptq(self) -> Candidate:
        self._log("post-training quantization")
        # The quantized format (int8, or dynamic standing in for it) is measured last and
        # decides whether auto mode tries QAT.
        lighter = ["float16", "dynamic"] if self.int8 == "int8" else ["float16"]
        for format in lighter:
            self.measure("ptq", "", self.model, format, time.perf_counter())
        return self.measure("ptq", "", self.model, self.int8, time.perf_counter())

    def quantized_inputs_apply(self, technique: str) -> bool:
        """QAT quantizes the model's inputs, which breaks models that take ids: only when the
        run exports int8 (its inputs survive quantization) does QAT apply."""
        if self.int8 == "int8":
            return True
        self._skip(
            technique,
            "the run does not export int8 (its inputs, such as token ids, do not survive "
            "quantization), and QAT quantizes the inputs",
        )
        return False

    def qat(self) -> Candidate | None:
        if not self.quantized_inputs_apply("qat"):
            return None
        self._log(f"quantization-aware training, {self.config.finetune_epochs} epochs")
        started = time.perf_counter()
        try:
            qat_model, callbacks = quantize_aware(self.model)
        except (ValueError, RuntimeError, TypeError) as error:
            self._skip("qat", f"TF-MOT cannot quantize this model ({error})")
            return None
        gentle = self.finetune_rate * GENTLE_FRACTION
        self.fit(qat_model, callbacks, self.config.finetune_epochs, gentle)
        return self.measure("qat", "", qat_model, "int8", started)

    def prunable_layers(self) -> list[str]:
        """The layers magnitude pruning wraps: Conv1D/Conv2D/Dense kernels, Embedding tables and
        layers that name their own prunable weights (`get_prunable_weights`, e.g. the bag of
        n-grams' table), each with at least `MIN_PRUNED_WEIGHTS` weights; if no layer is that
        large (tiny models), every such layer.

        Small layers, typically the first convolution (288 weights in `small_cnn`), hold
        almost none of the size but every input passes through them: pruning them costs
        accuracy and saves nothing. Other layers (custom ones, such as the Transformer's
        position embedding, TF-MOT rejects) are left as they are.
        """
        kinds = keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Dense
        sizes = {}
        for layer in self.model.layers:
            if hasattr(layer, "get_prunable_weights"):
                weights = layer.get_prunable_weights()
            elif isinstance(layer, kinds):
                weights = [layer.kernel]
            elif isinstance(layer, keras.layers.Embedding):
                weights = [layer.embeddings]
            else:
                continue
            sizes[layer.name] = sum(weight.shape.num_elements() for weight in weights)
        large = [name for name, size in sizes.items() if size >= MIN_PRUNED_WEIGHTS]
        return large or list(sizes)

    def pruned(self, sparsity: float) -> keras.Model:
        """The model magnitude-pruned to `sparsity` and fine-tuned (cached per sparsity).

        Raises:
            ValueError: no layer of the model can be pruned (see `prunable_layers`), or TF-MOT
                refuses one.
        """
        key = f"pruned-{sparsity}"
        if key not in self.models:
            names = self.prunable_layers()
            if not names:
                raise ValueError(
                    "no Conv1D, Conv2D, Dense or Embedding layer (or layer with "
                    "get_prunable_weights) to prune"
                )
            self._log(f"magnitude pruning to {sparsity:.0%}, {self.config.finetune_epochs} epochs")
            total = self.steps(self.config.finetune_epochs)
            # Reach the target after 40% of the steps, while the cosine-decayed learning rate
            # is still high enough for the remaining 60% to recover accuracy at that sparsity.
            pruned, callbacks = prune_low_magnitude(
                self.model,
                sparsity,
                end_step=max(1, int(total * 0.4)),
                layer_names=names,
                frequency=max(1, total // 20),
            )
            self.fit(pruned, callbacks, self.config.finetune_epochs)
            self.models[key] = strip(pruned)
        return self.models[key]

    def _quantized(self, technique: str, preserve: str, settings: str, model, qat: bool, started):
        """`model` quantized: post-training (`technique+ptq`), or after 1 epoch of QAT that
        keeps its sparsity or clusters (`preserve`; prune+pqat, cluster+cqat)."""
        if not qat:
            return self.measure(f"{technique}+ptq", settings, model, self.int8, started)
        self._log(f"  {preserve}-preserving QAT, 1 epoch")
        qat_model, callbacks = quantize_aware(model, preserve=preserve)
        gentle = self.finetune_rate * GENTLE_FRACTION
        self.fit(qat_model, callbacks, min(1.0, self.config.finetune_epochs), gentle)
        return self.measure(f"{technique}+{technique[0]}qat", settings, qat_model, "int8", started)

    def prune(self, sparsity: float, preserve_with_qat: bool) -> Candidate | None:
        if preserve_with_qat and not self.quantized_inputs_apply("prune+pqat"):
            return None
        started = time.perf_counter()
        try:
            model = self.pruned(sparsity)
        except (ValueError, RuntimeError, TypeError) as error:
            self._skip("prune", f"TF-MOT cannot prune this model ({error})")
            return None
        settings = f"sparsity={sparsity:g}"
        self.sparsity_tables[settings] = sparsity_table(sparsity_report(model))
        return self._quantized("prune", "sparsity", settings, model, preserve_with_qat, started)

    def clustered(self) -> keras.Model:
        if "clustered" not in self.models:
            count = self.config.clusters
            self._log(f"weight clustering, {count} clusters, {self.config.finetune_epochs} epochs")
            clustered, callbacks = cluster_layers(self.model, count)
            gentle = self.finetune_rate * GENTLE_FRACTION
            self.fit(clustered, callbacks, self.config.finetune_epochs, gentle)
            self.models["clustered"] = strip(clustered)
        return self.models["clustered"]

    def cluster(self, preserve_with_qat: bool) -> Candidate | None:
        if preserve_with_qat and not self.quantized_inputs_apply("cluster+cqat"):
            return None
        started = time.perf_counter()
        settings = f"clusters={self.config.clusters}"
        try:
            model = self.clustered()
        except (ValueError, RuntimeError, TypeError) as error:
            self._skip("cluster", f"TF-MOT cannot cluster this model ({error})")
            return None
        return self._quantized("cluster", "clusters", settings, model, preserve_with_qat, started)

    def structured(self, ratio: float) -> Candidate | None:
        self._log(
            f"structured pruning: {ratio:.0%} of filters by {self.config.criterion}, "
            f"{self.config.structured_epochs:g} epochs"
        )
        started = time.perf_counter()
        try:
            smaller = prune_filters(self.model, ratio, criterion=self.config.criterion)
        except ValueError as error:
            self._skip("structured", str(error))
            return None
        if smaller.count_params() >= self.model.count_params():
            self._skip(
                "structured",
                "no layer of this model can lose filters (only Conv1D/Conv2D/Dense layers "
                "whose channels do not reach an output or an unsupported layer can)",
            )
            return None
        # A narrower network is retrained rather than fine-tuned: the run's own peak learning
        # rate with warmup ("learning-rate rewinding", Renda et al. 2020). Measured at 37.5% on
        # Fashion-MNIST, 8 epochs: test drop 0.43 pp, against 0.99 pp at the fine-tuning rate
        # 5e-4 for 6 epochs; the original as a teacher (structured_distill) gave 0.84 pp.
        teacher = self.teacher() if self.config.structured_distill else None
        self.fit(
            smaller,
            [],
            self.config.structured_epochs,
            self.experiment.learning_rate,
            teacher=teacher,
            warmup=True,
        )
        settings = f"ratio={ratio:g}"
        self.measure("structured", settings, smaller, "float32", started)
        return self.measure("structured+ptq", settings, smaller, self.int8, time.perf_counter())

    def distill(self) -> Candidate | None:
        if self.make_student is None:
            self._skip("distill", "no student architecture was given")
            return None
        started = time.perf_counter()
        keras.utils.set_random_seed(self.config.seed)
        try:
            student, settings, description = self.make_student()
        except ValueError as error:
            self._skip("distill", f"no smaller student can be made ({error})")
            return None
        teacher_name = self.config.teacher or "this run's model"
        self._log(
            f"distillation into {description}, {self.config.distill_epochs} epochs, "
            f"teacher: {teacher_name}"
        )
        self.notes.append(f"Distillation student: {description}; teacher: {teacher_name}.")
        self.fit(
            student,
            [],
            self.config.distill_epochs,
            self.experiment.learning_rate,
            self.teacher(),
            warmup=True,
        )
        self.measure("distill", settings, student, "float32", started)
        return self.measure("distill+ptq", settings, student, self.int8, time.perf_counter())

    # -- the search ------------------------------------------------------------------------

    def run(self, methods: list[str]) -> None:
        """Measures the original, then the techniques of `methods` (`["auto"]`: cheapest
        first, QAT only if PTQ is over budget, each ladder stopped at its first rung over
        budget)."""
        config = self.config
        auto = methods == ["auto"]
        sparsities = parse_fractions(config.sparsities)
        ratios = parse_fractions(config.structured_ratios)
        self.baseline()
        ptq_ok = True
        if auto or "ptq" in methods:
            ptq_ok = self.ptq().within_budget
        if "qat" in methods or (auto and not ptq_ok):
            self.qat()
        elif auto:
            self.notes.append(f"QAT skipped: PTQ {self.int8} already stays within the budget.")
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
                candidate = try_value(value)
                if candidate is None:  # the technique does not apply: the note says why
                    break
                if not candidate.within_budget and auto:
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
                latency = measure_latency(content, self.experiment.x_test[0], runs=100)
                candidate.latency_ms = min(candidate.latency_ms, latency)

    def best(self) -> Candidate:
        """The smallest (gzip) or fastest candidate within budget; the original otherwise."""
        return best_candidate(self.candidates, self.config.prefer)


def _pin_quantized_input(model: keras.Model, input_range: tuple[float, float]) -> None:
    """Sets the input range a quantization-aware model learned to `input_range`, the range
    its integer input must stand for exactly; conversion takes a QAT model's input
    quantization from this layer, not from calibration. Other models are left as they are."""
    for layer in model.layers:
        if type(layer).__name__ != "QuantizeLayer" or layer.input is not model.input:
            continue
        for weight in layer.weights:
            if weight.name.endswith("_min:0"):
                weight.assign(input_range[0])
            elif weight.name.endswith("_max:0"):
                weight.assign(input_range[1])


def compress_run(run_dir: str | Path, config: CompressConfig) -> dict:
    """Compresses a trained run within an accuracy budget; writes a report and the best model.

    The run is rebuilt through its recipe (`rebuild_run`). Every candidate is exported to
    TFLite under `OUT_DIR/candidates/` and measured with LiteRT: accuracy on the run's
    validation data (selects) and test set (scores), size raw and gzip, batch-1 latency on
    one thread, parameters and FLOPs. The best candidate is copied to
    `OUT_DIR/model_compressed.tflite` with its Keras model; `report.md` holds the table and
    `accuracy_vs_size.png`. Returns the metrics written to `OUT_DIR/metrics.json`.

    Raises:
        FileNotFoundError: the run directory, its config.yaml, run.json or model.keras is
            missing.
        ValueError: a bad option value, an unreadable model.keras, a recipe without `build`
            or validation data, or an original at chance level.
    """
    from trainer.compress.report import write_compression_report
    from trainer.files import atomic_write_bytes
    from trainer.runs import MODEL_FILE

    started = time.perf_counter()
    run_dir = Path(run_dir)
    check_compress_options(run_dir, config)
    methods = parse_methods(config.method)
    out_dir = Path(config.out_dir) if config.out_dir else run_dir / "compression"
    loaded = load_original(run_dir / MODEL_FILE)
    original = without_test_time_flip(loaded)
    if original is not loaded:
        print(
            "compress works on the model without its test-time flip (the run's model averages "
            "the logits of each image and its mirror image; its candidates do not)"
        )
    # A mixed-precision run is compressed as its float32 copy (the same weights).
    original = float32_copy(original)
    recipe, recipe_config, experiment = rebuild_run(run_dir)
    keras.utils.set_random_seed(config.seed)
    print(
        f"compressing {run_dir}: budget {config.max_accuracy_drop} pp, method {config.method}; "
        f"{len(experiment.x_val)} validation / {len(experiment.x_test)} test examples",
        flush=True,
    )
    make_student = student_factory(recipe, recipe_config, original, config)
    search = Search(original, experiment, config, out_dir, make_student)
    search.run(methods)
    search.remeasure_latency()
    best = search.best()
    best_model = search.models[best.name]
    best_path = out_dir / ("model_compressed" + ("" if is_quantize_aware(best_model) else ".keras"))
    save_compressed(best_model, best_path)
    atomic_write_bytes(out_dir / "model_compressed.tflite", Path(best.path).read_bytes())
    seconds = time.perf_counter() - started
    metrics = write_compression_report(search, best, run_dir, seconds)
    print(f"best: {best.name}; report: {out_dir / 'report.md'} ({seconds:.0f} s)")
    return metrics
