"""Compression on Fashion-MNIST: every technique against the float model, with the issue's targets.

Runs `trainer.compression.compress_run` on a trained Fashion-MNIST run with every technique
forced on (PTQ float16/dynamic/int8, QAT, magnitude pruning 50/80% + int8, structured
pruning 25/37.5/50% float and int8, distillation into a half-width student), so the reference for
each ratio is the run's own float32 TFLite file measured in the same process. Then it checks:

  PTQ int8     size <= 0.27x, test drop <= 0.5 pp, >= 1.5x faster (batch 1, one thread)
  QAT int8     size <= 0.27x, test drop <= 0.2 pp, >= 1.5x faster
  80% pruned + int8   gzip size <= 0.10x the float file's gzip size, drop <= 1 pp
  structured   >= 1.5x faster than the float model (float32 vs float32), drop <= 1 pp

Accuracy drops are on the 10k test set against the float Keras model; selection inside the
search uses a validation slice of the training set (see the run's compression/report.md).

Run (train the teacher once, about 5 minutes alone on 2 cores):
    .venv/bin/trainer train fashion_mnist --run_dir=runs/compression-teacher
    nice -n 5 .venv/bin/python bench/compression.py --run_dir=runs/compression-teacher
"""

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainer  # noqa: E402,F401  (selects the Keras 2 API before TensorFlow loads)
from trainer.compress import CompressConfig, compress_run  # noqa: E402
from trainer.files import atomic_write_json  # noqa: E402


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _find(candidates: list[dict], technique: str, settings: str = "", format: str = "int8"):
    for candidate in candidates:
        if (candidate["technique"], candidate["settings"], candidate["format"]) == (
            technique,
            settings,
            format,
        ):
            return candidate
    return None


def check_targets(metrics: dict) -> list[dict]:
    """One row per target: what was measured, the target, and whether it was met."""
    candidates = metrics["candidates"]
    original = candidates[0]
    rows = []

    def add(name, candidate, drop_limit, size_key=None, size_limit=None, speed_limit=None):
        if candidate is None:
            rows.append({"target": name, "met": False, "measured": "not run"})
            return
        size = candidate[size_key] / original[size_key] if size_key else None
        speed = original["latency_ms"] / candidate["latency_ms"]
        met = candidate["test_drop_pp"] <= drop_limit
        met &= size is None or size <= size_limit
        met &= speed_limit is None or speed >= speed_limit
        measured = f"test drop {candidate['test_drop_pp']:+.2f} pp (<= {drop_limit})"
        if size is not None:
            measured += f", {size_key.replace('_bytes', '')} {size:.3f}x (<= {size_limit})"
        if speed_limit is not None:
            measured += f", {speed:.2f}x faster (>= {speed_limit})"
        rows.append(
            {"target": name, "candidate": candidate["name"], "met": bool(met), "measured": measured}
        )

    add("PTQ int8", _find(candidates, "ptq"), 0.5, "size_bytes", 0.27, 1.5)
    add("QAT int8", _find(candidates, "qat"), 0.2, "size_bytes", 0.27, 1.5)
    pruned = _find(candidates, "prune+ptq", "sparsity=0.8")
    add("80% magnitude pruning + int8", pruned, 1.0, "gzip_bytes", 0.10)
    structured = [
        c for c in candidates if c["technique"] == "structured" and c["test_drop_pp"] <= 1.0
    ]
    fastest = min(structured, key=lambda c: c["latency_ms"]) if structured else None
    add("structured pruning (float32)", fastest, 1.0, speed_limit=1.5)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", default="runs/compression-teacher")
    parser.add_argument("--out_dir", default="", help="default RUN_DIR/compression-bench")
    parser.add_argument("--finetune_epochs", type=float, default=4.0)
    parser.add_argument("--structured_epochs", type=float, default=8.0)
    parser.add_argument("--method", default="ptq,qat,prune,structured,distill")
    parser.add_argument("--sparsities", default="0.5,0.8")
    parser.add_argument("--structured_ratios", default="0.25,0.375,0.5")
    parser.add_argument("--distill_epochs", type=int, default=4)
    args = parser.parse_args(argv)
    out_dir = args.out_dir or str(Path(args.run_dir) / "compression-bench")
    config = CompressConfig(
        max_accuracy_drop=0.5,
        method=args.method,
        sparsities=args.sparsities,
        structured_ratios=args.structured_ratios,
        finetune_epochs=args.finetune_epochs,
        structured_epochs=args.structured_epochs,
        distill_epochs=args.distill_epochs,
        out_dir=out_dir,
    )
    started = time.perf_counter()
    metrics = compress_run(args.run_dir, config)
    seconds = time.perf_counter() - started
    rows = check_targets(metrics)
    print(
        f"\nbenchmark: {_cpu_name()}, {datetime.now(UTC):%Y-%m-%d}, {seconds / 60:.1f} min "
        "(shared machine: other users were training at the same time)"
    )
    for row in rows:
        print(f"  {'MET ' if row['met'] else 'MISS'}  {row['target']:<32} {row['measured']}")
    results = {
        "cpu": _cpu_name(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "settings": {
            "finetune_epochs": args.finetune_epochs,
            "structured_epochs": args.structured_epochs,
            "distill_epochs": args.distill_epochs,
        },
        "targets": rows,
        "candidates": metrics["candidates"],
    }
    atomic_write_json(Path("bench/results/compression.json"), results)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
