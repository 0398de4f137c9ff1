"""The files `trainer compress` writes, made the way `trainer train` makes its files, and
their scores.

Every candidate is written as the file an app loads (`trainer.export.verify.mobile_file`: an
image model behind an RGB input, with probabilities out and its normalization and labels in
the TFLite metadata; a text model behind int32 token ids with its tokenizer and labels in the
metadata), so the accuracy, size and latency measured (with LiteRT, `measure`) are those of
the file that ships. The chosen one is copied to `model_compressed.tflite` and verified as
training verifies its files (`trainer.export.verify.verify_file`: LiteRT against the original
Keras model on the whole test set, then MediaPipe Tasks as an app runs it), with its sidecar
`model_compressed.json`.

This module must not train or choose candidates (`trainer.compress.search` does).

Example (not run: needs a trained run folder):

    import time
    from trainer.compress.files import CandidateFiles
    from trainer.compress.rebuild import rebuild_run, run_model
    original = run_model("runs/fm")
    _, _, experiment = rebuild_run("runs/fm")
    files = CandidateFiles(original, experiment, "uint8", "runs/fm/compression",
                           original.predict(experiment.x_test), references=(0.9, 0.9))
    candidate = files.measure("ptq", "", original, "int8", started=time.perf_counter())
    print(candidate.test_accuracy, candidate.gzip_bytes, candidate.latency_ms)
"""

import time
from pathlib import Path

import numpy as np
import tf_keras as keras

from trainer.compress.candidates import Candidate
from trainer.experiment import Experiment
from trainer.export.verify import (
    ExportResult,
    keras_reference,
    mobile_file,
    mobile_target,
    verify_file,
    write_sidecar,
)
from trainer.files import atomic_write_bytes, atomic_write_text

COMPRESSED_FILE = "model_compressed.tflite"


def pin_quantized_input(model: keras.Model, input_range: tuple[float, float]) -> None:
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


class CandidateFiles:
    """Writes candidates as the files an app loads, and the chosen one as the compressed file.

    Args:
        original: the run's trained model (the labels and input are read from it).
        experiment: what the run's recipe built: class names, input_spec, output kind, title,
            artifacts (a text model's vocabulary, written into `out_dir`), test data.
        io: the input and output type of int8 files: float32, uint8 (raw pixels) or int8.
        out_dir: the compression folder; candidates go to `out_dir/candidates/`.
        keras_outputs: the original's outputs (logits) on the test set, the reference.
        references: the original's (validation, test) accuracy, which the drops are against.
    """

    def __init__(
        self,
        original: keras.Model,
        experiment: Experiment,
        io: str,
        out_dir: str | Path,
        keras_outputs: np.ndarray,
        references: tuple[float, float],
    ):
        self.original = original
        self.experiment = experiment
        self.io = io
        self.out_dir = Path(out_dir)
        self.keras_outputs = keras_outputs
        self.reference_val, self.reference_test = references
        for name, text in experiment.artifacts.items():
            atomic_write_text(self.out_dir / name, text)
        self.target = mobile_target(
            original,
            experiment.x_test,
            self.out_dir,
            class_names=list(experiment.class_names),
            input_spec=experiment.input_spec,
            outputs=experiment.export_outputs,
            title=experiment.title,
        )

    def file_io(self, format: str) -> str:
        """The input and output type of a file in `format` (only int8 files take `io`)."""
        return self.io if format == "int8" else "float32"

    def write(self, name: str, model: keras.Model, format: str) -> tuple[Path, bytes]:
        """Writes `model` in `format` as `out_dir/candidates/<name>.tflite`, made as training
        makes its files; returns the path and the file's bytes.

        A quantization-aware model's input range is first pinned to the raw pixel range, so
        that an integer input stands for the pixels exactly.
        """
        io = self.file_io(format)
        if io != "float32" and self.target.image is not None:
            pin_quantized_input(model, self.target.image.pixel_range)
        content = mobile_file(model, self.target, format, self.experiment.representative, io)
        path = atomic_write_bytes(self.out_dir / "candidates" / f"{name}.tflite", content)
        return path, content

    def measure(
        self, technique: str, settings: str, model: keras.Model, format: str, started: float
    ) -> Candidate:
        """Writes `model` (stripped of TF-MOT wrappers) as a candidate file and scores that
        file with LiteRT: validation and test accuracy and their drops, raw and gzip size,
        batch-1 latency on one thread (best of three), parameters, non-zero weights and FLOPs.
        `started` is when making the candidate began (its time in the report)."""
        from trainer.export import gzip_size, measure_latency, predict_tflite
        from trainer.flops import count_flops

        experiment = self.experiment
        parts = [technique, settings.replace("=", "").replace(",", "_"), format]
        path, content = self.write("-".join(part for part in parts if part), model, format)
        val_outputs = predict_tflite(content, experiment.x_val)
        test_outputs = predict_tflite(content, experiment.x_test)
        val_accuracy = float(
            np.mean(np.argmax(val_outputs, axis=-1) == np.asarray(experiment.y_val))
        )
        test_accuracy = float(
            np.mean(np.argmax(test_outputs, axis=-1) == np.asarray(experiment.y_test))
        )
        # Best of three: the machine may be shared, and interference only ever adds time.
        sample = experiment.x_test[0]
        latency = min(measure_latency(content, sample, runs=100) for _ in range(3))
        return Candidate(
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
            nonzero_parameters=int(sum(np.count_nonzero(w) for w in model.get_weights())),
            flops=count_flops(model),
            seconds=round(time.perf_counter() - started, 1),
            finite_outputs=bool(np.isfinite(val_outputs).all() and np.isfinite(test_outputs).all()),
        )

    def remeasure_latency(self, candidates: list[Candidate], rounds: int = 5) -> None:
        """Measures every candidate's file again, round-robin, keeping each one's best time.

        Load from other processes comes and goes during a long search; interleaving gives
        every candidate the same chances of a quiet moment, so speed ratios stay fair.
        """
        from trainer.export import measure_latency

        contents = [Path(candidate.path).read_bytes() for candidate in candidates]
        for _ in range(rounds):
            for candidate, content in zip(candidates, contents, strict=True):
                latency = measure_latency(content, self.experiment.x_test[0], runs=100)
                candidate.latency_ms = min(candidate.latency_ms, latency)

    def write_compressed(self, best: Candidate, budget_pp: float) -> ExportResult:
        """Copies `best`'s file to `out_dir/model_compressed.tflite`, verifies it on the whole
        test set against the original with LiteRT and MediaPipe Tasks (`budget_pp` is the
        drop it is held to), writes its sidecar `model_compressed.json` and returns the
        verification."""
        experiment = self.experiment
        content = Path(best.path).read_bytes()
        path = atomic_write_bytes(self.out_dir / COMPRESSED_FILE, content)
        reference = keras_reference(
            self.original,
            self.target,
            experiment.x_test,
            experiment.y_test,
            self.reference_test,
            self.keras_outputs,
            experiment.test_texts,
        )
        io = self.file_io(best.format)
        result = verify_file(content, path, best.format, io, self.target, reference, budget_pp)
        sidecar = write_sidecar(
            result,
            content,
            experiment.class_names,
            experiment.input_spec,
            list(experiment.artifacts),
            self.target.image,
            self.target.text,
        )
        result.sidecar_path = str(sidecar)
        return result
