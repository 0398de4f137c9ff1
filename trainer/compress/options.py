"""`trainer compress RUN_DIR`: compress a trained run within an accuracy budget.

This module owns the command's options (`CompressConfig`) and checks every one of them, and
the run folder's files, before any work starts. It must not load models or data.
"""

import dataclasses
import math
from pathlib import Path

METHODS = ("ptq", "qat", "prune", "pqat", "cluster", "cqat", "structured", "distill")
PREFER = ("size", "latency")
CRITERIA = ("l1", "l2", "bn")  # as trainer.compression.structured; not imported: --help stays fast


@dataclasses.dataclass
class CompressConfig:
    max_accuracy_drop: float = 0.5  # largest accuracy drop allowed, percentage points
    # auto (cheapest first, within budget) or a comma list of: ptq, qat, prune, pqat, cluster,
    # cqat, structured, distill
    method: str = "auto"
    sparsities: str = "0.5,0.75,0.9"  # magnitude-pruning targets, tried in rising order
    structured_ratios: str = "0.25,0.5"  # fractions of filters removed, tried in rising order
    criterion: str = "bn"  # structured-pruning saliency: l1, l2 or bn (batch-norm scale)
    structured_epochs: float = 8.0  # epochs of retraining after filter pruning
    structured_distill: bool = False  # retrain filter-pruned models on the original's soft labels
    clusters: int = 16  # shared values per kernel for clustering
    finetune_epochs: float = 3.0  # epochs of fine-tuning after pruning/clustering and for QAT
    distill_epochs: int = 6  # epochs to train the distilled student
    # the student's `width` (recipes whose Config has one); 0 = half the run's width
    student_width: int = 0
    teacher: str = ""  # run directory whose model teaches (default: this run's model)
    temperature: float = 2.0  # distillation temperature
    alpha: float = 0.1  # distillation weight of the hard-label loss
    # peak fine-tuning learning rate (Adam, cosine decay); 0 = the run's learning rate / 6
    learning_rate: float = 0.0
    batch_size: int = -1  # examples per fine-tuning step; -1 = the run's own batch size
    prefer: str = "size"  # keep the smallest (size) or fastest (latency) within budget
    int8_io: bool = False  # int8 candidates take and return int8 tensors (integer-only hardware)
    out_dir: str = ""  # output folder; default RUN_DIR/compression
    seed: int = 0  # seeds fine-tuning and the student


def parse_fractions(text: str, option: str) -> list[float]:
    """`"0.5,0.25"` -> `[0.25, 0.5]`, each in (0, 1); ValueError naming `--option` otherwise."""
    try:
        values = sorted(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--{option} takes comma-separated fractions, received {text!r}") from None
    if not values or not all(0.0 < value < 1.0 for value in values):
        raise ValueError(f"--{option} values must be in (0, 1), received {text!r}")
    return values


def parse_methods(text: str) -> list[str]:
    """`"auto"` -> `["auto"]`, or the comma list of methods, each one of `METHODS`."""
    if text == "auto":
        return ["auto"]
    methods = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        raise ValueError(
            f"unknown --method {text!r}; use auto or a comma list of {', '.join(METHODS)}"
        )
    return methods


def _check_number(name: str, value: float, low: float, *, above: bool = False) -> None:
    """Fails unless `value` is finite and >= low (> low with `above`)."""
    if not math.isfinite(value) or value < low or (above and value == low):
        relation = ">" if above else ">="
        raise ValueError(f"--{name} must be a finite number {relation} {low:g}, received {value!r}")


def check_compress_options(run_dir: str | Path, config: CompressConfig) -> None:
    """Fails fast, before any work, on a missing run file or a bad option value.

    Every message names the option (`--max_accuracy_drop must be ...`) and quotes the value.

    Raises:
        FileNotFoundError: the run directory, its config.yaml, run.json or model.keras is
            missing, or the `--teacher` run has no model.keras.
        ValueError: a bad option value.
    """
    from trainer.runs import CONFIG_FILE, MODEL_FILE, RUN_INFO_FILE

    run_dir = Path(run_dir)
    required = [run_dir / CONFIG_FILE, run_dir / RUN_INFO_FILE, run_dir / MODEL_FILE]
    if config.teacher:
        required.append(Path(config.teacher) / MODEL_FILE)
    for path in required:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: pass a run directory made by `trainer train`"
            )
    _check_number("max_accuracy_drop", config.max_accuracy_drop, 0.0)
    for name in ("finetune_epochs", "structured_epochs", "temperature"):
        _check_number(name, getattr(config, name), 0.0, above=True)
    _check_number("learning_rate", config.learning_rate, 0.0)
    if not 0.0 <= config.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], received {config.alpha!r}")
    for name, low in (("distill_epochs", 1), ("clusters", 2), ("student_width", 0)):
        if getattr(config, name) < low:
            raise ValueError(f"--{name} must be >= {low}, received {getattr(config, name)!r}")
    if config.batch_size != -1 and config.batch_size < 1:
        raise ValueError(
            f"--batch_size must be >= 1, or -1 for the run's own batch size; received "
            f"{config.batch_size!r}"
        )
    if config.prefer not in PREFER:
        raise ValueError(f"--prefer must be size or latency, received {config.prefer!r}")
    if config.criterion not in CRITERIA:
        raise ValueError(
            f"--criterion must be one of {', '.join(CRITERIA)}, received {config.criterion!r}"
        )
    parse_methods(config.method)
    parse_fractions(config.sparsities, "sparsities")
    parse_fractions(config.structured_ratios, "structured_ratios")
    if config.student_width:
        import yaml

        saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        if "width" not in saved:
            raise ValueError(
                f"--student_width={config.student_width} needs a recipe whose Config has a "
                f"`width` field, and {run_dir / CONFIG_FILE} has none; leave it at 0 (the "
                "student is then the original with half its filters, re-initialised)"
            )
