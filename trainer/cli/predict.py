"""`trainer predict RUN_OR_FILE INPUT...`: classify new images or texts, top-k with probabilities.

    trainer predict runs/fashion_mnist-20261125-131500 shoe.png photos/    a run's model
    trainer predict runs/digits/model_int8.tflite seven.png --top_k=1       an exported file
    echo "a wonderful film" | trainer predict runs/imdb-20261125 - --format=json

RUN_OR_FILE is a run folder (its model.keras) or an exported .tflite file with its sidecar
JSON. INPUT is an image or text file, a folder (searched recursively for .png, .jpg, .jpeg,
.bmp, .gif or .txt files) or `-`: texts from standard input, one per line. Inputs are prepared
as the run's training data was: images converted to the model's channels, resized with
antialiasing to its input size (any size is accepted) and scaled with the run's mean and std;
texts tokenized with the run's vocabulary and sequence length. Prints one row per input with
the top-k labels and probabilities, or JSON lines with --format=json.

This module parses options and prints; `trainer.predict` loads and prepares.
"""

import dataclasses
import json

from trainer.config import ConfigError

PROGRAM = "trainer predict RUN_OR_FILE INPUT..."


@dataclasses.dataclass
class PredictConfig:
    top_k: int = 3  # labels to print per input, most probable first
    format: str = "table"  # table (aligned columns) or json (one JSON object per line)


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(positional arguments, --key=value options); `-` is positional (standard input)."""
    positional = [arg for arg in argv if arg == "-" or not arg.startswith("-")]
    options = [arg for arg in argv if arg != "-" and arg.startswith("-")]
    return positional, options


def _table(rows: list[tuple[str, list[tuple[str, float]]]], top_k: int) -> str:
    headers = ["input", *(f"top-{rank}" for rank in range(1, top_k + 1))]
    cells = [
        [name, *(f"{label} {probability:.3f}" for label, probability in best)]
        for name, best in rows
    ]
    widths = [max(len(row[i]) for row in [headers, *cells]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [headers, *cells]
    ]
    return "\n".join(line.rstrip() for line in lines)


def run(argv: list[str]) -> int:
    """`trainer predict RUN_OR_FILE INPUT... [--top_k=N] [--format=table|json]`."""
    from trainer.config import help_text, parse_args

    if not argv or argv[0] in ("-h", "--help") or "--help" in argv:
        print(help_text(PredictConfig, PROGRAM))
        print("\nexamples:\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    positional, options = _split(argv)
    if len(positional) < 2:
        raise ConfigError(
            f"{PROGRAM} needs a run folder or .tflite file and at least one input, received "
            f"{' '.join(argv)!r}"
        )
    config = parse_args(PredictConfig, options, program=PROGRAM)
    if config.format not in ("table", "json"):
        raise ConfigError(f"--format must be table or json, received {config.format!r}")
    if config.top_k < 1:
        raise ConfigError(f"--top_k must be at least 1, received {config.top_k}")
    from trainer.keras_path import import_tensorflow_quietly

    import_tensorflow_quietly()
    from trainer.predict import load_classifier, read_inputs, top_k

    classifier = load_classifier(positional[0])
    inputs = read_inputs(positional[1:], classifier.kind)
    best = top_k(classifier, inputs, config.top_k)
    if config.format == "json":
        for item, pairs in zip(inputs, best, strict=True):
            labels = [{"label": label, "probability": round(p, 6)} for label, p in pairs]
            print(json.dumps({"input": item.name, "top_k": labels}))
    else:
        rows = [(item.name, pairs) for item, pairs in zip(inputs, best, strict=True)]
        print(_table(rows, min(config.top_k, len(classifier.class_names))))
    return 0
