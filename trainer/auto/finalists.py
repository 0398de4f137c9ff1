"""A finalist of `trainer auto`: trained to the end by its recipe, then compressed by the
compress search until it fits the device budget, its best file verified.

`train_finalist` is the candidate recipe's `main` into a run folder, `epoch_seconds` what one
of its epochs costs on this machine now. `compress_finalist`
rebuilds that run as `trainer compress` does (`trainer.compress.rebuild`) and drives its
`Search` one technique at a time, cheapest first, stopping as soon as a file fits: the float
model and post-training quantization, then filter pruning at rising ratios, then
distillation into half the width. Every file is measured as the verification table measures
(median batch-1 LiteRT latency on one thread; the best of three medians, since other
processes only add time); the most accurate on validation among those that fit is chosen,
or the closest to the budget when none fits, and verified with LiteRT and MediaPipe Tasks on
the whole test set (`CandidateFiles.write_compressed`), with compress's report and a model
card of the file beside it.

This module must not run the search or choose the winner among finalists
(`trainer.auto.search_stage`, `trainer.auto.finalist_stage` and `trainer.auto.report` do).
"""

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from trainer.auto.cost import Budget
from trainer.files import atomic_write_text

# Filter-pruning ratios tried in turn when the quantized model does not fit.
STRUCTURED_RATIOS = (0.25, 0.5)
CALIBRATION_STEPS = 30  # optimizer steps timed to plan a finalist's epochs


@dataclasses.dataclass
class Measured:
    """One file a finalist's compression made, as auto compares files."""

    name: str  # the compress candidate's name (its file's stem)
    label: str  # e.g. "structured+ptq ratio=0.25 (int8)"
    path: str
    val_accuracy: float
    test_accuracy: float
    size_bytes: int
    latency_ms: float  # median batch-1 LiteRT latency, one thread (best of three medians)
    fits: bool

    @property
    def kib(self) -> float:
        return self.size_bytes / 1024


def train_finalist(candidate_module, config: Any, run_dir: Path) -> dict:
    """Trains `config` (a `trainer.auto.candidate.Config`) to the end into `run_dir` with the
    recipe's own `main`; a folder left by a killed session is cleared first."""
    import shutil

    if run_dir.exists():
        shutil.rmtree(run_dir)
    return candidate_module.main(dataclasses.replace(config, run_dir=str(run_dir)))


def epoch_seconds(candidate_module, config: Any, steps: int = CALIBRATION_STEPS) -> float:
    """Seconds one epoch of `config` (a `trainer.auto.candidate.Config`) takes on this machine
    now, on its own data and model: `steps` optimizer steps timed after five that build the
    graph, scaled to the epoch's steps, plus one validation pass. What a finalist's epochs are
    planned from when its trial trained on a share of the data: a trial's seconds also hold
    its data loading, its cost measurement and a validation pass that does not shrink with
    its training set (measured on Fashion-MNIST: 2.4x a finalist's real epoch).

    Example (not run: loads the data and trains a few steps):

        from trainer.auto import candidate
        seconds = epoch_seconds(candidate, candidate.Config(data="photos", image_size=28))
    """
    import tf_keras as keras

    from trainer.experiment import validation_dataset

    recipe = candidate_module.recipe_for(config)
    experiment = recipe.build(candidate_module.recipe_config(config, recipe))
    steps_per_epoch = len(experiment.train)
    ends: list[float] = []

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(time.perf_counter())

    warmup = 5
    taken = min(steps_per_epoch, warmup + steps)
    experiment.model.fit(experiment.train.take(taken), callbacks=[StepClock()], verbose=0)
    first = warmup if len(ends) > warmup + 1 else 0
    per_step = (ends[-1] - ends[first]) / max(1, len(ends) - 1 - first)
    validation = validation_dataset(experiment)
    validation_seconds = 0.0
    if validation is not None:
        experiment.model.evaluate(validation.take(1), verbose=0)  # builds the graph
        started = time.perf_counter()
        experiment.model.evaluate(validation, verbose=0)
        validation_seconds = time.perf_counter() - started
    keras.backend.clear_session()
    return per_step * steps_per_epoch + validation_seconds


def median_latency(path: str | Path, sample) -> float:
    """The verification table's latency of a file: median batch-1 LiteRT time on one thread,
    the best of three medians."""
    from trainer.export import latency_percentiles

    content = Path(path).read_bytes()
    return min(latency_percentiles(content, sample, runs=100)[0] for _ in range(3))


def validation_shift(run_dir: Path, reference_val: float) -> float:
    """What to add to the validation accuracy of a finalist's files so that finalists compare
    without bias: 0 for a run that held its validation split out of training; for a linear
    text run fitted again on train + validation, its held-out estimate (the accuracy its C
    was chosen on, `trainer.logistic_regression.held_out_val_accuracy`) minus its float
    model's accuracy on the validation texts it was fitted on (`reference_val`), so each
    file keeps its drop from the float model but starts from the held-out level (on man
    pages a linear file scored 99.53% on the validation texts it was fitted on)."""
    from trainer.logistic_regression import held_out_val_accuracy

    held_out = held_out_val_accuracy(run_dir)
    return 0.0 if held_out is None else held_out - reference_val


class FinalistCompression:
    """The compress search of one finalist's run, stopped at the first technique that fits.

    Args:
        run_dir: the finalist's run folder (made by `train_finalist`).
        budget: the device limits.
        epochs: epochs of retraining after filter pruning and of the distilled student.
        seed: seeds the retraining.
    """

    def __init__(self, run_dir: Path, budget: Budget, epochs: int, seed: int = 0):
        from trainer.compress import CompressConfig
        from trainer.compress.rebuild import rebuild_run, run_model, student_factory
        from trainer.compress.search import Search

        self.run_dir, self.budget, self.started = Path(run_dir), budget, time.perf_counter()
        self.config = CompressConfig(
            max_accuracy_drop=100.0,  # auto chooses by the device budget, not by a drop
            method="ptq,structured,distill",
            structured_epochs=float(max(1, epochs)),
            distill_epochs=max(1, epochs),
            out_dir=str(self.run_dir / "compression"),
            seed=seed,
        )
        original = run_model(self.run_dir)
        recipe, recipe_config, self.experiment = rebuild_run(self.run_dir)
        make_student = student_factory(recipe, recipe_config, original, self.config)
        self.search = Search(
            original, self.experiment, self.config, self.config.out_dir, make_student
        )
        self.search.notes.append(
            "Chosen by `trainer auto` for the device budget: the most accurate candidate on "
            "validation whose .tflite file fits --max_kib and --max_ms (median batch-1 LiteRT "
            "latency, one thread); the accuracy budget above is not used."
        )
        self.measured: dict[str, Measured] = {}
        self.val_shift = validation_shift(self.run_dir, self.search.reference_val)

    def _measure_new(self) -> bool:
        """Measures the candidates made since the last call; True if any of them fits."""
        sample = self.experiment.x_test[0]
        for candidate in self.search.candidates:
            if candidate.name in self.measured:
                continue
            latency = median_latency(candidate.path, sample)
            fits = self.budget.fits(candidate.size_bytes / 1024, latency)
            self.measured[candidate.name] = Measured(
                candidate.name,
                candidate.label,
                candidate.path,
                candidate.val_accuracy + self.val_shift,
                candidate.test_accuracy,
                candidate.size_bytes,
                round(latency, 5),
                fits,
            )
            verdict = (
                "fits"
                if fits
                else "over: "
                + "; ".join(self.budget.broken_limits(candidate.size_bytes / 1024, latency))
            )
            estimate = " held-out estimate" if self.val_shift else ""
            print(
                f"  {candidate.label}: val{estimate} {candidate.val_accuracy + self.val_shift:.2%}, "
                f"{candidate.size_bytes / 1024:.1f} KiB, {latency:.4f} ms ({verdict})",
                flush=True,
            )
        return any(entry.fits for entry in self.measured.values())

    def run(self, deadline: float | None = None) -> None:
        """Tries the techniques cheapest first until a file fits (or `deadline`, a
        `time.time()`, has passed after the quantized model)."""
        self.search.baseline()
        self.search.ptq()
        if self._measure_new():
            return
        for ratio in STRUCTURED_RATIOS:
            if deadline is not None and time.time() >= deadline:
                return
            if self.search.structured(ratio) is None or self._measure_new():
                return
        if deadline is None or time.time() < deadline:
            self.search.distill()
            self._measure_new()

    def chosen(self) -> Measured:
        """The most accurate file on validation that fits (the smaller one on a tie), or the
        one closest to the budget."""
        entries = list(self.measured.values())
        fitting = [entry for entry in entries if entry.fits]
        if fitting:
            return max(fitting, key=lambda entry: (entry.val_accuracy, -entry.size_bytes))
        return min(entries, key=lambda entry: self.budget.excess(entry.kib, entry.latency_ms))

    def verify(self, chosen: Measured) -> dict:
        """Verifies `chosen` on the whole test set with LiteRT and MediaPipe Tasks (as
        `model_compressed.tflite`), writes compress's report and a model card of the file;
        returns what auto keeps of the verification."""
        from trainer.compress.report import write_compression_report
        from trainer.export import DEFAULT_BUDGETS_PP, predict_tflite
        from trainer.model_card import model_card
        from trainer.report import export_table

        search = self.search
        candidate = next(c for c in search.candidates if c.name == chosen.name)
        budget_pp = DEFAULT_BUDGETS_PP.get(candidate.format, 0.5)
        result = search.files.write_compressed(candidate, budget_pp)
        seconds = time.perf_counter() - self.started
        metrics = write_compression_report(search, candidate, self.run_dir, seconds, result)
        run_metrics = json.loads((self.run_dir / "metrics.json").read_text(encoding="utf-8"))
        card_metrics = {
            **run_metrics,
            "test_accuracy": result.accuracy,
            "exports": [result.to_dict()],
        }
        predictions = predict_tflite(Path(result.path).read_bytes(), self.experiment.x_test).argmax(
            -1
        )
        card = model_card(self.experiment, card_metrics, predictions, search.out_dir)
        atomic_write_text(search.out_dir / "model_card.md", card)
        mediapipe = result.mediapipe
        return {
            "path": result.path,
            "sidecar": result.sidecar_path,
            "format": result.format,
            "accuracy": result.accuracy,
            "agreement": result.agreement,
            "size_bytes": result.size_bytes,
            "latency_ms": result.latency_ms,
            "mediapipe_loaded": bool(mediapipe and mediapipe.loaded),
            "mediapipe_accuracy": None if mediapipe is None else mediapipe.accuracy,
            "mediapipe_agreement": None if mediapipe is None else mediapipe.agreement,
            "table": export_table(search.reference_test, None, [result]),
            "report": str(search.out_dir / "report.md"),
            "model_card": str(search.out_dir / "model_card.md"),
            "compress_seconds": metrics["seconds"],
        }
