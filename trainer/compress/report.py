"""The report of `trainer compress`: summary, candidate table, legend, plot, the compressed
file's verification (LiteRT and MediaPipe Tasks rows, as in a training run's report) and
metrics.

Writes `OUT_DIR/report.md`, `OUT_DIR/metrics.json` and `OUT_DIR/accuracy_vs_size.png` from a
finished `trainer.compress.search.Search`. This module must not train, convert or measure models.
"""

import dataclasses
from pathlib import Path
from typing import Any

from trainer.compress.candidates import Candidate, candidates_table, kibibytes
from trainer.compress.options import MIN_PRUNED_WEIGHTS

# `search` below is a finished `trainer.compress.search.Search`; it is not imported here,
# because the search imports this module to write its report.


def summary(best: Candidate, search: Any, seconds: float) -> str:
    """The report's first paragraph: what was kept and what it gained and cost."""
    reference, config = search.candidates[0], search.config
    preferred = "gzip size" if config.prefer == "size" else "latency"
    return (
        f"Kept **{best.label}**: test accuracy {best.test_accuracy:.2%} "
        f"({best.test_drop_pp:+.2f} pp vs the float model's {search.reference_test:.2%}), "
        f"{kibibytes(best.size_bytes)} ({best.size_bytes / reference.size_bytes:.2f}x), gzip "
        f"{kibibytes(best.gzip_bytes)} ({best.gzip_bytes / reference.gzip_bytes:.2f}x), "
        f"{best.latency_ms:.3f} ms per example "
        f"({reference.latency_ms / best.latency_ms:.2f}x faster). Budget: "
        f"{config.max_accuracy_drop} pp; preferred: smallest {preferred}. Search took "
        f"{seconds:.0f} s. Files: `model_compressed.tflite` and its Keras model."
    )


def legend(search: Any) -> str:
    """How to read the table: what selects, what scores, how candidates were trained."""
    experiment, config = search.experiment, search.config
    if experiment.validation_held_out:
        bias = (
            "The run held these examples out of training, so the drops are unbiased; "
            "fine-tuning never sees them either."
        )
    else:
        bias = (
            "The run also trained on these examples, so the original's validation accuracy is "
            "optimistic and drops of retrained candidates are overstated (biased); train the "
            "run with a held-out validation share to select without bias. Fine-tuning never "
            "sees them."
        )
    batch = config.batch_size if config.batch_size > 0 else experiment.batch_size
    lines = [
        f"Selection: accuracy drop on the run's {len(experiment.x_val)} validation examples "
        f"against the float Keras model ({search.reference_val:.2%}); a candidate is within "
        f"budget when that drop is at most {config.max_accuracy_drop} pp. {bias}",
        f"Scoring: the run's test set ({len(experiment.x_test)} examples, float Keras model "
        f"{search.reference_test:.2%}), never used for any choice.",
        f"Fine-tuning: the run's own training data, augmentation and loss, batch {batch}, "
        f"{search.steps_per_epoch} steps per epoch; {config.finetune_epochs:g} epochs of Adam "
        f"with cosine decay from {search.finetune_rate:.3g} (QAT and clustering from a fifth "
        f"of it); filter-pruned models retrain {config.structured_epochs:g} epochs and "
        f"distilled students {config.distill_epochs}, both from the run's learning rate "
        f"{search.experiment.learning_rate:g} after half an epoch of warmup "
        f"(T={config.temperature:g}, alpha={config.alpha:g}). Magnitude pruning prunes the "
        f"kernels and embedding tables of layers with at least {MIN_PRUNED_WEIGHTS} of them.",
        f"Quantized candidates are {search.int8}"
        + (
            "."
            if search.int8 == "int8"
            else " (dynamic range: int8 weights, float inputs), because the run does not "
            "export int8: quantizing its inputs (such as token ids) would break the model."
        ),
        f"Files: every candidate is the file an app loads, made as `trainer train` makes its "
        f"files ({_file_kind(search)}), so sizes and latencies are those of the file that "
        "ships"
        + (f"; int8 files take and return {search.io}" if search.int8 == "int8" else "")
        + ". Candidates are scored with LiteRT, which computes what MediaPipe Tasks does from "
        "the same file; MediaPipe checks the chosen file below.",
        "Latency: batch 1, one thread, LiteRT interpreter; best of 8 means of 100 runs, 5 of "
        "them taken round-robin over all candidates after the search. Size ratios and "
        "speed-ups are against the first row. MFLOPs count pruned zeros, which still execute.",
    ]
    return "\n".join(f"- {line}" for line in lines + search.notes)


def _file_kind(search: Any) -> str:
    """What the candidate files take and return, in words."""
    target = search.files.target
    if target.image is not None:
        return f"RGB image input, {target.outputs} out, labels and normalization in the metadata"
    if target.text is not None and not target.text.refused:
        return f"int32 token ids in, {target.outputs} out, tokenizer and labels in the metadata"
    if target.text is not None:
        refused = target.text.refused
        return f"int32 token ids in, {target.outputs} out; no tokenizer metadata: {refused}"
    return "the model's own input and logits, not a file for the mobile runtimes"


def verification(compressed: Any, best: Candidate, search: Any) -> str:
    """The compressed file's section: the verification table of a training run's report, on
    the whole test set, with the MediaPipe Tasks row."""
    from trainer.report import export_table

    table = export_table(search.reference_test, None, [compressed])
    return (
        f"`model_compressed.tflite` is {best.label}, checked as `trainer train` checks its "
        "files: LiteRT against the original Keras model on the whole test set, then MediaPipe "
        "Tasks as an app runs it. The budget column is --max_accuracy_drop applied to the test "
        "drop, for information (validation chose the file). Its sidecar is "
        "`model_compressed.json`.\n\n" + table
    )


def write_compression_report(
    search: Any, best: Candidate, run_dir: str | Path, seconds: float, compressed: Any = None
) -> dict:
    """Writes report.md, metrics.json and accuracy_vs_size.png into the search's `out_dir`;
    returns the metrics. `compressed` is the `trainer.export.ExportResult` of
    model_compressed.tflite (its section and `metrics["compressed_file"]`)."""
    from trainer.plots import plot_accuracy_vs_size
    from trainer.report import write_report

    out_dir, config = search.out_dir, search.config
    points = [
        (candidate.label, candidate.gzip_bytes, candidate.test_accuracy, candidate.within_budget)
        for candidate in search.candidates
    ]
    plot_accuracy_vs_size(
        points,
        search.reference_test,
        config.max_accuracy_drop,
        out_dir / "accuracy_vs_size.png",
        size_label="gzip size",
    )
    table = candidates_table(search.candidates, best)
    print(table)
    sections = {
        "Result": summary(best, search, seconds),
        "Candidates": table + "\n\n" + legend(search),
        "Accuracy vs size": "Test accuracy against gzip size; the dashed line is the float "
        "model's test accuracy minus the budget. Colours show the verdict on the validation "
        "data, which selects; the test set only scores.\n\n"
        "![accuracy vs size](accuracy_vs_size.png)",
    }
    if compressed is not None:
        sections["The compressed file"] = verification(compressed, best, search)
        print(sections["The compressed file"])
    for settings, sparsity in search.sparsity_tables.items():
        sections[f"Per-layer sparsity, magnitude pruning {settings}"] = sparsity
    metrics = {
        "run_dir": str(run_dir),
        "config": dataclasses.asdict(config),
        "reference_val_accuracy": search.reference_val,
        "reference_test_accuracy": search.reference_test,
        "validation_held_out": search.experiment.validation_held_out,
        "quantized_format": search.int8,
        "io": search.io,
        "best": best.name,
        "seconds": round(seconds, 1),
        "notes": list(search.notes),
        "compressed_file": None if compressed is None else compressed.to_dict(),
        "candidates": [
            {**dataclasses.asdict(candidate), "name": candidate.name}
            for candidate in search.candidates
        ],
    }
    write_report(out_dir, f"Compression of {run_dir}", sections, metrics)
    return metrics
