"""A run's `model_card.md`: what the model classifies, on what data, how well, and its limits.

The card says what a trained model classifies (the class names in output order and the input
it takes), the data it was trained, validated and tested on with counts, its test accuracy
overall and per class, each exported file's size, latency and accuracy, and its known limits
(chance level, small test set, grayscale input, weak classes, int8 loss). Every number comes
from what `trainer.experiment.finish` measured (`metrics.json` and the test predictions);
nothing is measured here. The report's snippet for apps is `trainer.snippets`. This module must not
train, convert or evaluate.

Example:

    from trainer.model_card import write_model_card
    write_model_card(run_dir, experiment, metrics, predictions)   # RUN/model_card.md
"""

import math
from pathlib import Path
from typing import Any

import numpy as np

from trainer.files import atomic_write_text
from trainer.report import format_size
from trainer.snippets import USE_HEADING, percent, read_sidecar

MODEL_CARD_FILE = "model_card.md"


def per_class_accuracy(y_true, predictions, class_names) -> list[tuple[str, int, int]]:
    """(class name, test examples, correct) per class, in output order."""
    y_true, predictions = np.asarray(y_true), np.asarray(predictions)
    return [
        (
            str(name),
            int(np.sum(y_true == index)),
            int(np.sum((y_true == index) & (predictions == y_true))),
        )
        for index, name in enumerate(class_names)
    ]


def _input_lines(experiment, sidecar: dict) -> list[str]:
    spec = dict(experiment.input_spec or {})
    image, text = sidecar.get("image"), sidecar.get("text")
    lines = []
    if spec.get("shape"):
        lines.append(
            f"- Model input: {spec['shape']} {spec.get('dtype', 'float32')}"
            + (f" ({spec['preprocessing']})" if spec.get("preprocessing") else "")
        )
    if image:
        gray = image.get("model_channels") == 1
        lines.append(
            f"- Exported image files take an RGB image of {image['height']}x{image['width']} pixels "
            f"({image.get('dtype', 'float32')}; float input is (pixel - {image['mean']:g}) / "
            f"{image['std']:g})" + ("; the model converts it to gray inside" if gray else "")
        )
    if text:
        lines.append(
            f"- Exported text files take {text['sequence_length']} int32 token ids "
            f"({text['tokenizer']} tokenizer, vocabulary {text.get('vocabulary_file')}); "
            "longer texts are cut"
        )
    output = (sidecar.get("output") or {}).get("kind")
    if output:
        lines.append(f"- Exported files return {output}, one per class in the order above")
    return lines


def _data_lines(experiment, metrics: dict) -> list[str]:
    tests = len(experiment.y_test)
    train = experiment.train
    batches = int(train.cardinality()) if hasattr(train, "cardinality") else -1
    lines, epochs = [], metrics.get("epochs") or 0
    if batches > 0:
        lines.append(
            f"- Training: {batches} batches per epoch of up to {experiment.batch_size} examples "
            f"(at most {batches * experiment.batch_size:,} examples), {epochs} "
            f"epoch{'s' if epochs != 1 else ''}"
        )
    if experiment.x_val is not None and len(experiment.x_val):
        held = "held out of the training data" if experiment.validation_held_out else "monitored"
        lines.append(f"- Validation: {len(experiment.x_val):,} examples ({held})")
    lines.append(f"- Test: {tests:,} examples, never used to choose anything")
    report = experiment.data_report
    if report is not None:
        counts = ", ".join(f"{split} {sum(c.values()):,}" for split, c in report.counts.items())
        lines.append(
            f"- Source: {report.source} ({report.kind}; as found by the data check: {counts})"
        )
    return lines


def _limits(metrics: dict, classes: list[tuple[str, int, int]], sidecar: dict) -> list[str]:
    limits = []
    if metrics.get("at_chance"):
        limits.append(
            "**The test accuracy is at chance level: the model did not learn. Do not use it.**"
        )
    tests = sum(total for _, total, _ in classes)
    accuracy = float(metrics.get("test_accuracy") or 0.0)
    if tests:
        margin = 1.96 * math.sqrt(max(accuracy * (1 - accuracy), 1e-12) / tests)
        if tests < 1000:
            limits.append(
                f"The test set has {tests} examples: the accuracy is known to about "
                f"±{margin * 100:.1f} pp (95% interval)."
            )
    scored = [(name, correct / total) for name, total, correct in classes if total]
    if len(scored) > 1:
        name, worst = min(scored, key=lambda item: item[1])
        if worst < accuracy - 0.05:
            limits.append(f"Weakest class: {name} ({worst * 100:.1f}% of its test examples).")
    image = sidecar.get("image") or {}
    if image.get("model_channels") == 1:
        limits.append(
            "Trained on grayscale images: colour carries no information to the model, and "
            "images unlike the training data (other backgrounds, framing, contrast) are "
            "outside what it was tested on."
        )
    for export in metrics.get("exports") or []:
        if not export.get("within_budget", True):
            limits.append(
                f"The {export['format']} file loses {export['drop_pp']:.2f} pp of accuracy, over "
                f"its {export['budget_pp']:g} pp budget: do not ship it."
            )
        check = export.get("mediapipe") or {}
        if check.get("checked", True) and check and not check.get("loaded"):
            limits.append(
                f"MediaPipe Tasks refused the {export['format']} file: {check.get('error', '')}"
            )
    return limits or ["None measured beyond the test set's own limits."]


def _files_table(metrics: dict, run_dir: Path) -> str:
    rows = [
        "| file | test accuracy | size | gzip size | latency / example (median / p90) | "
        "MediaPipe Tasks |",
        "|---|---|---|---|---|---|",
    ]
    model_file = run_dir / "model.keras"
    if model_file.is_file():
        rows.append(
            f"| model.keras (Keras) | {percent(metrics.get('test_accuracy'))} "
            f"| {format_size(model_file.stat().st_size)} | - | - | - |"
        )
    for export in metrics.get("exports") or []:
        check = export.get("mediapipe") or {}
        runtime = (
            "-"
            if not check or not check.get("checked", True)
            else percent(check.get("accuracy"))
            if check.get("loaded")
            else "refused"
        )
        p90 = export.get("latency_p90_ms")
        rows.append(
            f"| {Path(export['path']).name} | {percent(export['accuracy'])} "
            f"| {format_size(export['size_bytes'])} | {format_size(export['gzip_bytes'])} "
            f"| {export['latency_ms']:.3f}{'' if p90 is None else f' / {p90:.3f}'} ms "
            f"| {runtime} |"
        )
    return "\n".join(rows)


def model_card(experiment, metrics: dict[str, Any], predictions, run_dir: str | Path) -> str:
    """The Markdown text of the card (see the module docstring)."""
    run_dir = Path(run_dir)
    names = list(experiment.class_names)
    classes = per_class_accuracy(experiment.y_test, predictions, names)
    exports = metrics.get("exports") or []
    sidecar = read_sidecar(exports[0]) if exports else {}
    class_rows = [
        f"| {index} | {name} | {total} | {correct} | {percent(correct / total if total else None)} |"
        for index, (name, total, correct) in enumerate(classes)
    ]
    parts = [
        f"# Model card: {experiment.title or run_dir.name}",
        "",
        "## What it classifies",
        "",
        f"{len(names)} classes, in output order: {', '.join(names)}.",
        "",
        *_input_lines(experiment, sidecar),
        "",
        "## Data",
        "",
        *_data_lines(experiment, metrics),
        "",
        "## Accuracy",
        "",
        f"Test accuracy (Keras model): **{percent(metrics.get('test_accuracy'))}** on "
        f"{len(experiment.y_test):,} examples; validation accuracy "
        f"{percent(metrics.get('val_accuracy'))}; {metrics.get('parameters', 0):,} parameters.",
        "",
        "| id | class | test examples | correct | accuracy |",
        "|---|---|---|---|---|",
        *class_rows,
        "",
        "## Files",
        "",
        _files_table(metrics, run_dir),
        "",
        "Latency: batch 1 on one CPU thread of the training machine, with LiteRT.",
        "",
        "## Known limits",
        "",
        *[f"- {limit}" for limit in _limits(metrics, classes, sidecar)],
        "",
        'How to run the files: see report.md, section "' + USE_HEADING + '".',
        "",
    ]
    return "\n".join(parts)


def write_model_card(experiment, run_dir: str | Path, metrics: dict, predictions) -> Path:
    """Writes `RUN/model_card.md` from what `finish` measured and returns its path."""
    text = model_card(experiment, metrics, predictions, run_dir)
    return atomic_write_text(Path(run_dir) / MODEL_CARD_FILE, text)
