"""`trainer compress RUN_DIR`: compress a trained run within an accuracy budget.

This module owns the command's options (`CompressConfig`) and checks every one of them, and
the run folder's files, before any work starts. It must not load models or data.
"""

import dataclasses
from pathlib import Path

from trainer.config import (
    at_least,
    choice,
    count,
    fraction,
    limit,
    option,
    positive,
    validate,
)

METHODS = ("ptq", "qat", "prune", "pqat", "cluster", "cqat", "structured", "distill")
PREFER = ("size", "latency")
MIN_PRUNED_WEIGHTS = 1024  # magnitude pruning leaves layers with fewer kernel weights unpruned
CRITERIA = ("l1", "l2", "bn")  # as trainer.compression.structured; not imported: --help stays fast
IO_TYPES = ("float32", "uint8", "int8")  # as trainer.export.IO_TYPES, for the same reason
# What compress writes into its --out_dir (trainer.compress.files and .report): a folder that
# holds these beside files trainer did not make is refused (trainer.outputs).
COMPRESS_WRITES = (
    "candidates",
    "model_compressed*",
    "report.md",
    "metrics.json",
    "accuracy_vs_size.png",
    "*vocabulary.txt",
)


def parse_fractions(text: str) -> list[float]:
    """`"0.5,0.25"` -> `[0.25, 0.5]`; a ValueError unless each is a fraction in (0, 1)."""
    try:
        values = sorted(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = []
    if not values or not all(0.0 < value < 1.0 for value in values):
        raise ValueError("expects comma-separated fractions in (0, 1), e.g. 0.25,0.5")
    return values


def parse_methods(text: str) -> list[str]:
    """`"auto"` -> `["auto"]`, or the comma list of methods, each one of `METHODS`."""
    if text == "auto":
        return ["auto"]
    methods = [part.strip() for part in text.split(",") if part.strip()]
    if not methods or any(method not in METHODS for method in methods):
        raise ValueError(f"expects auto or a comma list of {', '.join(METHODS)}")
    return methods


def _check_batch_size(value: int) -> None:
    if value == 0 or value < -1:
        raise ValueError("must be >= 1, or -1 for the run's own batch size")


def _check_io(value: str) -> None:
    if value and value not in IO_TYPES:
        raise ValueError(f"must be one of {', '.join(IO_TYPES)}, or empty for the run's --io")


def compress_io(config: "CompressConfig", run_io: str) -> str:
    """The int8 files' input and output type: `--io`, or else the run's own (`run_io`), so
    that a run trained with `--io=uint8` compresses into files that take raw pixels too."""
    return config.io or run_io or "float32"


@dataclasses.dataclass
class CompressConfig:
    max_accuracy_drop: float = limit(0.5)  # largest accuracy drop allowed, percentage points
    # auto (cheapest first, within budget) or a comma list of: ptq, qat, prune, pqat, cluster,
    # cqat, structured, distill
    method: str = option("auto", check=parse_methods)
    # magnitude-pruning targets, tried in rising order
    sparsities: str = option("0.5,0.75,0.9", check=parse_fractions)
    # fractions of filters removed, tried in rising order
    structured_ratios: str = option("0.25,0.5", check=parse_fractions)
    # structured-pruning saliency: l1, l2 or bn (batch-norm scale)
    criterion: str = choice("bn", *CRITERIA)
    structured_epochs: float = positive(8.0)  # epochs of retraining after filter pruning
    # retrain filter-pruned models on the original's soft labels
    structured_distill: bool = option(False)
    clusters: int = at_least(16, 2)  # shared values per kernel for clustering
    # epochs of fine-tuning after pruning/clustering and for QAT
    finetune_epochs: float = positive(3.0)
    distill_epochs: int = count(6)  # epochs to train the distilled student
    # the student's `width` (recipes whose Config has one); 0 = half the run's width
    student_width: int = limit(0)
    teacher: str = option("")  # run directory whose model teaches (default: this run's model)
    temperature: float = positive(2.0)  # distillation temperature
    alpha: float = fraction(0.1)  # distillation weight of the hard-label loss
    # peak fine-tuning learning rate (Adam, cosine decay); 0 = the run's learning rate / 6
    learning_rate: float = limit(0.0)
    # examples per fine-tuning step; -1 = the run's own batch size
    batch_size: int = option(-1, check=_check_batch_size)
    # keep the smallest (size) or fastest (latency) within budget
    prefer: str = choice("size", *PREFER)
    # input/output type of int8 files: float32; uint8 = raw 0-255 pixels, what MediaPipe and
    # the TFLite Task Library accept; int8 = integer-only accelerators (MediaPipe refuses);
    # empty = the run's --io
    io: str = option("", check=_check_io)
    out_dir: str = option("")  # output folder; default RUN_DIR/compression
    seed: int = option(0)  # seeds fine-tuning and the student


def check_compress_options(run_dir: str | Path, config: CompressConfig) -> None:
    """Fails fast, before any work, on a missing run file or a bad option value.

    Every message names the option ("max_accuracy_drop must be >= 0, received -1.0").

    Raises:
        FileNotFoundError: the run directory, its config.yaml, run.json or model.keras is
            missing, or the `--teacher` run has no model.keras.
        ValueError: a bad option value (a `trainer.config.ConfigError` for a field's rule).
        OutputError, NotADirectoryError, PermissionError: `--out_dir` is inside the run's
            data, is a run's folder (this one's included) or inside another run's, or holds
            files trainer did not make (`trainer.outputs.check_output_folder`).
    """
    from trainer.runs import CONFIG_FILE, MODEL_FILE, RUN_INFO_FILE

    validate(config)  # every field against the rule declared beside it
    run_dir = Path(run_dir)
    required = [run_dir / CONFIG_FILE, run_dir / RUN_INFO_FILE, run_dir / MODEL_FILE]
    if config.teacher:
        required.append(Path(config.teacher) / MODEL_FILE)
    for path in required:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: pass a run directory made by `trainer train`"
            )
    from trainer.outputs import check_not_in_another_run, check_output_folder, run_data_sources

    out_dir = config.out_dir or run_dir / "compression"
    check_output_folder(out_dir, "--out_dir", run_data_sources(run_dir), COMPRESS_WRITES)
    check_not_in_another_run(out_dir, "--out_dir", run_dir)
    if config.student_width:
        import yaml

        saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8")) or {}
        if "width" not in saved:
            raise ValueError(
                f"--student_width={config.student_width} needs a recipe whose Config has a "
                f"`width` field, and {run_dir / CONFIG_FILE} has none; leave it at 0 (the "
                "student is then the original with half its filters, re-initialised)"
            )
