"""Hyperparameter search: Hyperband vs random search vs Bayesian optimization on Fashion-MNIST,
and the resident memory of a long search.

`compare` (default): the three keras-tuner tuners search the fashion_mnist recipe's default
`SEARCH_SPACE` with the same fixed budget: at most `--max_epochs` per trial, `--max_trials`
trials for random and Bayesian (Hyperband decides its own trials from `--max_epochs`, factor
3, one iteration), on the first `--train_limit` training images (validation: 10% of them, held
out; the test set is not used to choose). Random search is the reference: the table gives
each tuner's best validation accuracy, its difference to random's in pp, the epochs it spent
and their ratio to random's. Then each winner is retrained once through the recipe's own
`main` (same `train_limit`, `max_epochs` epochs) and scored on the 10k test set. Target:
Hyperband within 0.5 pp of random's best at one third of its epochs or fewer.

`memory`: 20 tiny trials on the digits recipe, resident memory (VmRSS) of the process that ran
each trial, from the trial log: as shipped (keras-tuner clears the Keras session before each
trial), with `clear_session` disabled (the reference), and with `--trials_per_process=5`
(trials in worker processes replaced every 5 trials). Prints the growth per trial of each.

Run:
    .venv/bin/python bench/tuning.py compare        # about 15 min alone on 2 cores
    .venv/bin/python bench/tuning.py memory         # about 2 min
Results: bench/results/tuning-compare.{json,md}, bench/results/tuning-memory.json.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}"


def compare(args) -> dict:
    import recipes.fashion_mnist as fashion_mnist
    import trainer  # noqa: F401  (Keras 2 API before TensorFlow loads)
    from trainer.tuning import TuneOptions, final_run, search

    base = fashion_mnist.Config(train_limit=args.train_limit, backup_every=0, seed=0)
    root = Path(args.out) / datetime.now(UTC).strftime("bench-tuning-%Y%m%d-%H%M%S")
    rows = {}
    for tuner in ("random", "hyperband", "bayesian"):
        options = TuneOptions(
            tuner=tuner,
            max_trials=args.max_trials,
            max_epochs=args.max_epochs,
            trial_patience=0,
            tune_dir=str(root / tuner),
        )
        started = time.perf_counter()
        result = search(fashion_mnist, base, options=options)
        seconds = time.perf_counter() - started
        final = final_run(result.directory) if result.best else {}
        rows[tuner] = {
            "trials": len(result.trials),
            "best_val_accuracy": result.best.objective if result.best else None,
            "epochs": sum(trial.epochs for trial in result.trials),
            "search_seconds": round(seconds, 1),
            "best": result.best.values if result.best else None,
            "winner_test_accuracy": final.get("test_accuracy"),
            "tune_dir": str(result.directory),
        }
        print(json.dumps({tuner: rows[tuner]}), flush=True)
    reference = rows["random"]
    for row in rows.values():
        row["val_minus_random_pp"] = round(
            (row["best_val_accuracy"] - reference["best_val_accuracy"]) * 100, 2
        )
        row["epochs_ratio_to_random"] = round(row["epochs"] / reference["epochs"], 3)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": vars(args),
        "results": rows,
    }


def compare_table(report: dict) -> str:
    lines = [
        f"Fashion-MNIST, first {report['settings']['train_limit']} training images, at most "
        f"{report['settings']['max_epochs']} epochs per trial, {report['settings']['max_trials']}"
        f" trials (random, Bayesian); {report['date']}, {report['machine']}.",
        "",
        "| tuner | trials | best val acc | vs random | epochs | epochs / random | search s |"
        " winner test acc |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tuner, row in report["results"].items():
        test = row["winner_test_accuracy"]
        lines.append(
            f"| {tuner} | {row['trials']} | {row['best_val_accuracy'] * 100:.2f}% | "
            f"{row['val_minus_random_pp']:+.2f} pp | {row['epochs']} | "
            f"{row['epochs_ratio_to_random']:.2f} | {row['search_seconds']:.0f} | "
            + (f"{test * 100:.2f}% |" if test is not None else "- |")
        )
    return "\n".join(lines) + "\n"


MEMORY_CHILD = """
import sys
import trainer
import recipes.digits as digits
from trainer.tuning import TuneOptions, keras_tuner, search

keras_tuner()
if sys.argv[2] == "no_clear_session":
    from keras_tuner.src.engine import tuner as tuner_module
    tuner_module.keras.backend.clear_session = lambda: None
options = TuneOptions(max_trials=int(sys.argv[3]), max_epochs=2, trial_patience=0,
                      tune_dir=sys.argv[1],
                      trials_per_process=5 if sys.argv[2] == "trials_per_process_5" else 0)
search(digits, digits.Config(), "learning_rate=log:1e-3:3e-2; width=8,16,32", options=options)
"""
VARIANTS = ("clear_session", "no_clear_session", "trials_per_process_5")


def memory(args) -> dict:
    import tempfile

    results = {}
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory() as folder:
            command = [sys.executable, "-c", MEMORY_CHILD, f"{folder}/tune", variant]
            subprocess.run([*command, str(args.trials)], cwd=REPO, capture_output=True, check=True)
            log = Path(folder, "tune", "trial_log.jsonl").read_text().splitlines()
        records = sorted((json.loads(line) for line in log), key=lambda r: int(r["trial"]))
        samples = [record["rss_mb"] for record in records]
        half = len(samples) // 2
        growth = (samples[-1] - samples[half]) / max(1, len(samples) - 1 - half)
        results[variant] = {
            "rss_mb_after_each_trial": samples,
            "processes": len({record["process"] for record in records}),
            "max_mb": max(samples),
            "growth_mb_per_trial_second_half": round(growth, 2),
        }
        print(
            f"{variant}: {samples[0]:.0f} MB after trial 1, {samples[-1]:.0f} MB after trial "
            f"{len(samples)}, max {max(samples):.0f} MB; {growth:+.2f} MB per trial over the "
            "second half",
            flush=True,
        )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "trials": args.trials,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=("compare", "memory"))
    parser.add_argument("--train_limit", type=int, default=6000)
    parser.add_argument("--max_epochs", type=int, default=6)
    parser.add_argument("--max_trials", type=int, default=9)
    parser.add_argument("--trials", type=int, default=20, help="memory: trials to run")
    parser.add_argument("--out", default="runs")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.mode == "memory":
        report = memory(args)
        (RESULTS / "tuning-memory.json").write_text(json.dumps(report, indent=1))
        return
    report = compare(args)
    (RESULTS / "tuning-compare.json").write_text(json.dumps(report, indent=1))
    table = compare_table(report)
    (RESULTS / "tuning-compare.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
