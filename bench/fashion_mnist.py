"""Benchmark: trainer's Fashion-MNIST recipe (defaults) vs a plain-Keras reference, one run.

Runs `recipes/fashion_mnist.py` with its default config, then the plain-Keras two-conv CNN
(`bench/reference/keras_fashion_mnist.py`) for as many epochs as fit in the same training
time, and prints both test accuracies and the time ratio. Both run in fresh processes on the
same machine, one after the other.

Run: python bench/fashion_mnist.py            (about 10-12 minutes on 2 CPU cores)
     python bench/fashion_mnist.py --quick    (smoke check: 1 epoch on 5000 images)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=REPO)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch on 5000 images")
    parser.add_argument("--run_dir", default="", help="where our recipe writes its run")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.run_dir or str(REPO / "runs" / f"bench-fashion_mnist-{stamp}")
    ours_args = [f"--run_dir={run_dir}"]
    if args.quick:
        ours_args += ["--epochs=1", "--train_limit=5000"]
    print(f"ours: trainer train fashion_mnist {' '.join(ours_args)}", flush=True)
    started = time.perf_counter()
    _run([sys.executable, str(REPO / "recipes" / "fashion_mnist.py"), *ours_args])
    ours_wall = time.perf_counter() - started
    ours = json.loads((Path(run_dir) / "metrics.json").read_text())

    budget = ours["train_seconds"]
    print(f"reference: plain Keras two-conv CNN, Adam, {budget:.0f}s training budget", flush=True)
    reference_args = [f"--time_budget={budget}"] + (["--max_epochs=1"] if args.quick else [])
    started = time.perf_counter()
    result = _run(
        [sys.executable, str(REPO / "bench/reference/keras_fashion_mnist.py"), *reference_args]
    )
    reference_wall = time.perf_counter() - started
    reference = json.loads(result.stdout.strip().splitlines()[-1])

    exports = {item["format"]: item for item in ours["exports"]}
    rows = [
        ("", "trainer recipe", "plain Keras reference"),
        (
            "test accuracy",
            f"{ours['test_accuracy'] * 100:.2f}%",
            f"{reference['test_accuracy'] * 100:.2f}%",
        ),
        ("epochs", str(ours["epochs"]), str(reference["epochs"])),
        ("training time", f"{ours['train_seconds']:.0f}s", f"{reference['train_seconds']:.0f}s"),
        (
            "training CPU time (steadier on shared hosts)",
            f"{ours.get('train_cpu_seconds', 0):.0f}s",
            f"{reference.get('train_cpu_seconds', 0):.0f}s",
        ),
        ("wall time (load, train, export, verify)", f"{ours_wall:.0f}s", f"{reference_wall:.0f}s"),
        ("parameters", f"{ours['parameters']:,}", f"{reference['parameters']:,}"),
    ]
    for name in ("float32", "int8"):
        if name in exports:
            rows.append(
                (
                    f"TFLite {name} accuracy (drop)",
                    f"{exports[name]['accuracy'] * 100:.2f}% ({exports[name]['drop_pp']:+.2f} pp)",
                    "-",
                )
            )
    width = max(len(row[0]) for row in rows)
    print(
        f"\nhardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{time.strftime('%Y-%m-%d %H:%M')}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (other processes slow both runs alike)"
    )
    for row in rows:
        print(f"{row[0]:<{width}}  {row[1]:>22}  {row[2]:>22}")
    print(
        f"\naccuracy difference: {(ours['test_accuracy'] - reference['test_accuracy']) * 100:+.2f} pp"
    )
    print(
        f"training time ratio (ours / reference): {ours['train_seconds'] / reference['train_seconds']:.2f}"
    )
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
