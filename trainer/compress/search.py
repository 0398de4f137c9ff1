"""The budgeted search of `trainer compress RUN_DIR`: rebuild the run, try techniques, measure.

`compress_run` rebuilds a run through the recipe that made it (`trainer.compress.rebuild`), so
the data, preprocessing, loss and learning rate are the run's own, whatever the recipe.
`Search` then tries techniques from cheapest to most expensive (post-training quantization,
QAT, magnitude pruning, clustering, filter pruning, distillation), writes every candidate as
the file an app loads (`trainer.compress.files`: the same graph and metadata as the files of
`trainer train`), measures that file with LiteRT and keeps the smallest (or fastest) whose
accuracy drop on the run's validation data stays within the budget. The test set only scores.
Techniques that do not apply to the model are skipped with a note in the report.

Candidates are scored with LiteRT only: it computes what MediaPipe Tasks computes from the
same file, batched, while the task API classifies one example per call. MediaPipe checks the
chosen file, `model_compressed.tflite`, on the whole test set, as training checks its files.

This module owns the search; the TF-MOT helpers are `trainer.compression`, fine-tuning is
`trainer.compress.finetune`, the report is `trainer.compress.report`. It must not parse
command lines.

Example:

    from trainer.compress import CompressConfig, compress_run
    metrics = compress_run("runs/fm", CompressConfig(max_accuracy_drop=0.5))
    print(metrics["best"], metrics["compressed_file"]["mediapipe"]["agreement"])
"""

import time
from pathlib import Path

import numpy as np
import tf_keras as keras

from trainer.compress.candidates import Candidate, best_candidate
from trainer.compress.files import COMPRESSED_FILE, CandidateFiles
from trainer.compress.finetune import GENTLE_FRACTION, FineTuning
from trainer.compress.options import (
    MIN_PRUNED_WEIGHTS,
    CompressConfig,
    check_compress_options,
    compress_io,
    parse_fractions,
    parse_methods,
)
from trainer.compress.rebuild import (
    STUDENT_RATIO,
    StudentFactory,
    load_original,
    rebuild_run,
    refuse_untrained,
    run_model,
    student_factory,
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

__all__ = [
    "STUDENT_RATIO",
    "Search",
    "StudentFactory",
    "compress_run",
    "load_original",
    "rebuild_run",
    "refuse_untrained",
    "run_model",
    "student_factory",
]


def _accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, axis=-1) == np.asarray(y)))


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
        self.tuning = FineTuning(experiment, config)
        self.loss = self.tuning.loss
        self.steps_per_epoch = self.tuning.steps_per_epoch
        self.finetune_rate = self.tuning.learning_rate
        self.reference_val = _accuracy(
            original.predict(experiment.x_val, batch_size=256, verbose=0), experiment.y_val
        )
        test_outputs = original.predict(experiment.x_test, batch_size=256, verbose=0)
        self.reference_test = _accuracy(test_outputs, experiment.y_test)
        refuse_untrained(
            self.reference_val, experiment.y_val, self.reference_test, experiment.y_test
        )
        self.io = compress_io(config, experiment.export_io)
        references = self.reference_val, self.reference_test
        self.files = CandidateFiles(
            original, experiment, self.io, self.out_dir, test_outputs, references
        )

    def _log(self, message: str) -> None:
        print(message, flush=True)

    # -- fitting ---------------------------------------------------------------------------

    def steps(self, epochs: float) -> int:
        return self.tuning.steps(epochs)

    def fit(
        self,
        model: keras.Model,
        callbacks: list,
        epochs: float,
        learning_rate: float | None = None,
        teacher: keras.Model | None = None,
        warmup: bool = False,
    ) -> None:
        """Trains `model` on the run's data with the run's loss (see `FineTuning.fit`)."""
        self.tuning.fit(model, callbacks, epochs, learning_rate, teacher, warmup)

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
        """Writes `model` as the `format` file an app loads, scores that file with LiteRT
        (`CandidateFiles.measure`) and records the candidate with its verdict."""
        model = strip(model)
        candidate = self.files.measure(technique, settings, model, format, started)
        candidate.within_budget = (
            candidate.finite_outputs and candidate.val_drop_pp <= self.config.max_accuracy_drop
        )
        self.candidates.append(candidate)
        self.models[candidate.name] = model
        verdict = "within budget" if candidate.within_budget else "OVER budget"
        if not candidate.finite_outputs:
            verdict = "NaN or infinite outputs: OVER budget"
        self._log(
            f"  {candidate.name}: val {candidate.val_accuracy:.4f} (drop "
            f"{candidate.val_drop_pp:+.2f} pp, {verdict}), test {candidate.test_accuracy:.4f}, "
            f"{candidate.size_bytes / 1024:.1f} KiB, gzip {candidate.gzip_bytes / 1024:.1f} KiB, "
            f"{candidate.latency_ms:.3f} ms"
        )
        return candidate

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
        """Measures every candidate again, round-robin, keeping each one's best time (see
        `CandidateFiles.remeasure_latency`)."""
        self.files.remeasure_latency(self.candidates, rounds)

    def best(self) -> Candidate:
        """The smallest (gzip) or fastest candidate within budget; the original otherwise."""
        return best_candidate(self.candidates, self.config.prefer)


def compress_run(run_dir: str | Path, config: CompressConfig) -> dict:
    """Compresses a trained run within an accuracy budget; writes a report and the best model.

    The run is rebuilt through its recipe (`rebuild_run`). Every candidate is written under
    `OUT_DIR/candidates/` as the file an app loads (made as `trainer train` makes its files:
    the runtimes' input, probabilities out, labels and normalization or tokenizer in the
    metadata) and measured with LiteRT: accuracy on the run's validation data (selects) and
    test set (scores), size raw and gzip, batch-1 latency on one thread, parameters and
    FLOPs. The best candidate is copied to `OUT_DIR/model_compressed.tflite` with its Keras
    model and its sidecar JSON, and verified like training's files: LiteRT against the
    original on the test set, and MediaPipe Tasks as an app runs it. `report.md` holds the
    tables and `accuracy_vs_size.png`. Returns the metrics written to `OUT_DIR/metrics.json`.

    Raises:
        FileNotFoundError: the run directory, its config.yaml, run.json or model.keras is
            missing.
        ValueError: a bad option value, an unreadable model.keras, a recipe without `build`
            or validation data, or an original at chance level.
    """
    from trainer.compress.report import write_compression_report

    started = time.perf_counter()
    run_dir = Path(run_dir)
    check_compress_options(run_dir, config)
    methods = parse_methods(config.method)
    out_dir = Path(config.out_dir) if config.out_dir else run_dir / "compression"
    original = run_model(run_dir)
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
    print(f"verifying {COMPRESSED_FILE} ({best.name}) with LiteRT and MediaPipe Tasks", flush=True)
    compressed = search.files.write_compressed(best, config.max_accuracy_drop)
    seconds = time.perf_counter() - started
    metrics = write_compression_report(search, best, run_dir, seconds, compressed)
    print(f"best: {best.name}; report: {out_dir / 'report.md'} ({seconds:.0f} s)")
    return metrics
