"""Hyperparameter search: Hyperband vs random search vs Bayesian optimization on Fashion-MNIST,
and the resident memory of a long search.

`compare` (default): the three keras-tuner tuners search the fashion_mnist recipe's default
`SEARCH_SPACE` (10 dimensions) on the first `--train_limit` training images, of which
`--validation_size` are held out to score trials (the test set is not used to choose), with a
fixed budget: at most `--max_epochs` per trial, `--max_trials` trials for random and Bayesian,
and Hyperband with `max_epochs`, factor 3 and one iteration. Random search is the reference:
the table gives each tuner's best validation accuracy, its difference to random's in pp, the
epochs it spent and their ratio to random's. Then each winner is retrained once through the
recipe's own `main` (same images, `max_epochs` epochs, float32 export only) and scored on the
10k test set. Target: Hyperband within 0.5 pp of random's best at one third of its epochs or
fewer. `--search_seeds=0,1` repeats all of it per keras-tuner oracle seed (the trials' own
training seed stays 0).

Epochs spent, by design. Random and Bayesian: `max_trials` x `max_epochs` (no early stopping
here), 25 x 9 = 225 by default. Hyperband (keras-tuner 1.4.8's oracle, factor 3, one
iteration): floor(log3(E)) + 1 brackets for E = `max_epochs`. With E = 9: bracket 2 trains 9
configurations for 1 epoch, continues the best 3 from their checkpoints to epoch 3 and the
best 1 to epoch 9 (9 + 3x2 + 6 = 21 epochs; a checkpoint holds the weights *and* the
optimizer, so the learning-rate schedule, which spans 9 epochs in every trial, resumes at its
step); bracket 1 trains 5 for 3 epochs and continues 2 to 9 (15 + 12 = 27); bracket 0 trains
3 for 9 epochs (27). 75 epochs in 23 trials, 17 configurations: 75/225 = 1/3 of random's. A
trial's epochs are those its `fit` ran (`len(history)`), so a continued trial counts its new
epochs, not its `tuner/epochs` target (tests/test_tuning.py checks it at E = 3). Other E:
3 -> 11 epochs in 5 configurations (12 random trials for 1/3), 6 -> 36 (18 trials), 27 ->
375 (42 trials). Every trial is scored on the held-out images after re-estimating its
batch-norm statistics (trainer.tuning.hypermodel.PreciseValidation), as `trainer train` scores its final
model; without it a 1-epoch trial validated at 10-24% (chance), and Hyperband's first round
ranked noise.

`memory`: 20 tiny trials on the digits recipe, resident memory (VmRSS) of the process that ran
each trial, from the trial log: as shipped (keras-tuner clears the Keras session before each
trial), with `clear_session` disabled (the reference), and with `--trials_per_process=5`
(trials in worker processes replaced every 5 trials). Prints the growth per trial of each.

Run:
    .venv/bin/python bench/tuning.py compare --tuners=hyperband,random --search_seeds=0,1
    .venv/bin/python bench/tuning.py memory         # about 2 min
Writes bench/results/tuning-compare.{json,md} and bench/results/tuning-memory.json. The
measured comparison (dates, machine, load, search times) is committed as
bench/results/tuning_searchers.json and shown on the documentation's Tuning page.
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


def _load() -> str:
    """The 1, 5 and 15 minute load averages (the machine is shared: wall times depend on it)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def compare_once(args, search_seed: int, root: Path) -> dict:
    """The three tuners with one oracle seed, each winner retrained and scored on the test set."""
    import recipes.fashion_mnist as fashion_mnist
    import trainer  # noqa: F401  (Keras 2 API before TensorFlow loads)
    from trainer.tuning import TuneOptions, final_run, search

    base = fashion_mnist.Config(
        train_limit=args.train_limit,
        validation_size=args.validation_size,
        export="float32",  # the winner's test accuracy is the Keras model's; skip int8 here
        backup_every=0,
        seed=0,
    )
    rows = {}
    for tuner in args.tuners.split(","):
        options = TuneOptions(
            tuner=tuner,
            max_trials=args.max_trials,
            max_epochs=args.max_epochs,
            trial_patience=0,
            search_seed=search_seed,
            tune_dir=str(root / f"seed{search_seed}-{tuner}"),
        )
        load_before, started = _load(), time.perf_counter()
        result = search(fashion_mnist, base, options=options)
        seconds = time.perf_counter() - started
        final_started = time.perf_counter()
        final = final_run(result.directory) if result.best else {}
        configs = {json.dumps(trial.values, sort_keys=True) for trial in result.trials}
        rows[tuner] = {
            # Hyperband's continued trials (same values, from the checkpoint) count as trials
            "trials": len(result.trials),
            "configs": len(configs),
            "best_val_accuracy": result.best.objective if result.best else None,
            # epochs each trial trained (a continued trial counts only its new epochs)
            "epochs": sum(trial.epochs for trial in result.trials),
            "search_seconds": round(seconds, 1),
            "final_seconds": round(time.perf_counter() - final_started, 1),
            "load_before": load_before,
            "load_after": _load(),
            "best": result.best.values if result.best else None,
            "winner_test_accuracy": final.get("test_accuracy"),
            "tune_dir": str(result.directory),
        }
        print(json.dumps({f"seed {search_seed} {tuner}": rows[tuner]}), flush=True)
    reference = rows.get("random")
    for row in rows.values():
        row["val_minus_random_pp"] = reference and round(
            (row["best_val_accuracy"] - reference["best_val_accuracy"]) * 100, 2
        )
        row["epochs_ratio_to_random"] = reference and round(row["epochs"] / reference["epochs"], 3)
    hyperband = rows.get("hyperband")
    target_met = None  # not decided without both random and Hyperband
    if reference and hyperband:
        target_met = (
            hyperband["val_minus_random_pp"] >= -0.5
            and hyperband["epochs_ratio_to_random"] <= 1 / 3
        )
    return {"search_seed": search_seed, "target_met": target_met, "results": rows}


def compare(args) -> dict:
    """Runs `compare_once` per search seed; the results files are rewritten after each seed."""
    root = Path(args.out) / datetime.now(UTC).strftime("bench-tuning-%Y%m%d-%H%M%S")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_at_start": _load(),
        "machine": _machine(),
        "settings": vars(args),
        "runs": [],
    }
    for seed in args.search_seeds.split(","):
        report["runs"].append(compare_once(args, int(seed), root))
        report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / "tuning-compare.json").write_text(json.dumps(report, indent=1))
        (RESULTS / "tuning-compare.md").write_text(compare_table(report))
    return report


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def compare_table(report: dict) -> str:
    settings = report["settings"]
    lines = [
        f"Fashion-MNIST, first {settings['train_limit']} training images "
        f"({settings['validation_size']} of them held out for validation), at most "
        f"{settings['max_epochs']} epochs per trial, {settings['max_trials']} trials (random, "
        f"Bayesian); {report['date']} to {report['finished']}, load at start "
        f"{report['load_at_start']}, {report['machine']}.",
        "",
        "| seed | tuner | trials (configs) | best val acc | vs random | epochs | epochs / random |"
        " search s | winner test acc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        for tuner, row in run["results"].items():
            test = row["winner_test_accuracy"]
            lines.append(
                f"| {run['search_seed']} | {tuner} | {row['trials']} ({row['configs']}) | "
                f"{row['best_val_accuracy'] * 100:.2f}% | {_number(row['val_minus_random_pp'], '+.2f')}"
                f" pp | {row['epochs']} | {_number(row['epochs_ratio_to_random'], '.2f')} | "
                f"{row['search_seconds']:.0f} | "
                + (f"{test * 100:.2f}% |" if test is not None else "- |")
            )
    lines.append("")
    for run in report["runs"]:
        met = {True: "met", False: "NOT met", None: "not decided (random or Hyperband not run)"}
        met = met[run["target_met"]]
        lines.append(
            f"Seed {run['search_seed']}: target (Hyperband within 0.5 pp at <= 1/3 of "
            f"random's epochs) {met}."
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
    parser.add_argument("--train_limit", type=int, default=15000)
    parser.add_argument("--validation_size", type=int, default=5000)
    parser.add_argument("--max_epochs", type=int, default=9)
    parser.add_argument("--max_trials", type=int, default=25)
    parser.add_argument("--search_seeds", default="0", help="compare: oracle seeds, e.g. 0,1")
    parser.add_argument("--tuners", default="random,hyperband,bayesian", help="compare: tuners")
    parser.add_argument("--trials", type=int, default=20, help="memory: trials to run")
    parser.add_argument("--out", default="runs")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.mode == "memory":
        report = memory(args)
        (RESULTS / "tuning-memory.json").write_text(json.dumps(report, indent=1))
        return
    print(compare_table(compare(args)))


if __name__ == "__main__":
    main()
