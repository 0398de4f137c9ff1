"""Benchmark: does class balance or text augmentation change the default text model's accuracy?

On the four text sets of `bench/real_data.py` (debian-descriptions, man-pages, debian-desktop,
debian-languages; their folders built by its `build_set`, group-aware train/test splits),
`recipes.text_classifier.main(Config(data=..., run_dir=..., seed=S, ...))` runs with its
default model and each of these settings, every one with the same seeds:
- none: the defaults;
- class_weights, oversample: `--balance=` (already in the recipe);
- dropout: one extra training copy of each text with each word dropped with probability 0.1
  (`trainer.data.text_augment.augment_texts(copies=1, word_dropout=0.1, word_swap=0)`);
- dropout+swap: the same copy, then 0.1 swaps per word (EDA's random deletion and swap);
- dropout x2: two copies at word dropout 0.2;
- copy: one unaltered extra copy of each text, the control: it changes what doubling the
  data changes (twice the steps per epoch, and a weaker L2 penalty per text when the penalty
  is scaled by the number of texts) without a new word order or a missing word.
The recipe has no augmentation option yet, so for the augmented settings the child process
wraps the recipe's `prepare_data`: the training split it returns (after the validation split
is carved) is augmented; validation and test stay as they are. That is where a recipe option
would apply it.

Each run is a fresh process (as bench/real_data.py runs recipes), at the caller's niceness;
results are written after every run, so an interrupted benchmark keeps what it measured.

Run:  nice -n 10 .venv/bin/python bench/text_augment.py                   (about 2 hours on
                                                                        2 shared cores)
      nice -n 10 .venv/bin/python bench/text_augment.py --sets=man-pages --seeds=0
Writes bench/results/text_augment.json; run folders under bench/results/text_augment/.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "text_augment"
SETS = ("debian-descriptions", "man-pages", "debian-desktop", "debian-languages")
# name -> (recipe Config overrides, augment_texts keywords or None)
SETTINGS = {
    "none": ({}, None),
    "class_weights": ({"balance": "class_weights"}, None),
    "oversample": ({"balance": "oversample"}, None),
    "dropout": ({}, {"copies": 1, "word_dropout": 0.1, "word_swap": 0.0}),
    "dropout+swap": ({}, {"copies": 1, "word_dropout": 0.1, "word_swap": 0.1}),
    "dropout x2": ({}, {"copies": 2, "word_dropout": 0.2, "word_swap": 0.0}),
    "copy": ({}, {"copies": 1, "word_dropout": 0.0, "word_swap": 0.0}),
}


def child(arguments: dict) -> None:
    """Runs one recipe run in this process (`--child`), augmenting the training split when
    asked, and writes the run's metrics plus the sizes it trained on to RUN_DIR/bench.json."""
    import trainer  # noqa: F401  (the Keras 2 API before TensorFlow loads)
    from recipes import text_classifier
    from trainer.data.text_augment import augment_texts

    augment = arguments["augment"]
    sizes = {}
    original = text_classifier.prepare_data

    def prepare_and_augment(*args, **kwargs):
        data, report = original(*args, **kwargs)
        sizes["train_before"] = len(data.x_train)
        if augment:
            x, y = augment_texts(data.x_train, data.y_train, seed=arguments["seed"], **augment)
            extra = [f"augmented[{index}]" for index in range(len(x) - len(data.x_train))]
            data = dataclasses.replace(
                data,
                x_train=x,
                y_train=y,
                ids={**data.ids, "train": data.split_ids("train") + extra},
            )
        sizes["train_after"] = len(data.x_train)
        return data, report

    text_classifier.prepare_data = prepare_and_augment
    config = text_classifier.Config(**arguments["config"])
    started = time.process_time()
    metrics = text_classifier.main(config)
    result = {
        "test_accuracy": metrics["test_accuracy"],
        "train_seconds": metrics.get("train_seconds"),
        "train_cpu_seconds": metrics.get("train_cpu_seconds"),
        "process_cpu_seconds": round(time.process_time() - started, 1),
        "epochs": metrics.get("epochs"),
        **sizes,
    }
    (Path(config.run_dir) / "bench.json").write_text(json.dumps(result, indent=2) + "\n")


def run(data: Path, run_dir: Path, model: str, setting: str, seed: int) -> dict:
    """One run in a fresh process; returns its bench.json plus wall time and load."""
    overrides, augment = SETTINGS[setting]
    config = {"data": str(data), "run_dir": str(run_dir), "model": model, "seed": seed}
    config.update(export="float32", backup_every=0, **overrides)
    arguments = {"config": config, "augment": augment, "seed": seed}
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    log = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        finished = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(arguments)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=environment,
            check=False,
        )
    if finished.returncode != 0:
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-4:])
        raise RuntimeError(f"exit code {finished.returncode}; see {log}: {tail}")
    result = json.loads((run_dir / "bench.json").read_text())
    result.update(
        wall_seconds=round(time.perf_counter() - started, 1),
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
    )
    return result


def _hardware() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    flags = fields.get("Flags", "").split()
    vector = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "?"
    return f"{fields.get('Model name', '?').strip()} ({vector}), {os.cpu_count()} cores"


def _commit() -> str:
    if os.environ.get("BENCH_COMMIT"):  # a snapshot made by `git archive`, which has no .git
        return os.environ["BENCH_COMMIT"]

    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=REPO).stdout

    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "recipes", "trainer").strip()
    return head + (" + uncommitted changes in recipes/ or trainer/" if dirty else "")


def summarize(results: dict) -> None:
    """Fills results["rows"]: per set and setting, the mean test accuracy over the seeds run,
    its spread, and the change against `none` on the same seeds."""
    import statistics

    rows = []
    for name in results["sets"]:
        runs = [entry for entry in results["runs"] if entry["set"] == name]
        plain = {
            entry["seed"]: entry["test_accuracy"] for entry in runs if entry["setting"] == "none"
        }
        for setting in SETTINGS:
            found = [entry for entry in runs if entry["setting"] == setting]
            if not found:
                continue
            accuracies = [entry["test_accuracy"] for entry in found]
            paired = [
                entry["test_accuracy"] - plain[entry["seed"]]
                for entry in found
                if entry["seed"] in plain
            ]
            rows.append(
                [
                    name,
                    setting,
                    len(found),
                    f"{statistics.mean(accuracies) * 100:.2f}%",
                    f"{statistics.pstdev(accuracies) * 100:.2f} pp",
                    f"{statistics.mean(paired) * 100:+.2f} pp" if paired else "-",
                    f"{min(paired) * 100:+.2f} / {max(paired) * 100:+.2f} pp" if paired else "-",
                    f"{statistics.mean(e['train_seconds'] for e in found):.0f} s "
                    f"({statistics.mean(e['train_cpu_seconds'] for e in found):.0f} s)",
                    f"{found[0]['train_after']:,}",
                ]
            )
    results["rows"] = rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=str(RESULTS / "text_augment.json"))
    parser.add_argument(
        "--resume",
        default="",
        help="a results file of the same code whose runs are kept (their set, setting and "
        "seed are not run again)",
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    names = [name for name in args.sets.split(",") if name]
    settings = [name for name in args.settings.split(",") if name]
    wrong = [name for name in names if name not in SETS] + [
        name for name in settings if name not in SETTINGS
    ]
    if wrong:
        parser.error(f"unknown {wrong}; sets: {', '.join(SETS)}; settings: {', '.join(SETTINGS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    from bench.real_data import build_set
    from recipes.text_classifier import Config

    model = Config().model  # the default, pinned for every run of this benchmark
    out = Path(args.out)
    results = {
        "title": "Class balance and text augmentation with the default text model",
        "what": __doc__.split("\n\n")[1].replace("\n", " "),
        "command": "nice -n 10 .venv/bin/python bench/text_augment.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "hardware": _hardware(),
        "model": model,
        "niceness": os.nice(0),
        "load": {"start": round(os.getloadavg()[0], 2)},
        "columns": [
            "set",
            "setting",
            "seeds",
            "test accuracy (mean)",
            "spread (population sd)",
            "change vs none (mean of paired seeds)",
            "paired change min / max",
            "train time (CPU)",
            "training texts",
        ],
        "rows": [],
        "notes": [],
        "sets": names,
        "seeds": seeds,
        "runs": [],
    }
    if args.resume:
        kept = json.loads(Path(args.resume).read_text())
        results["runs"] = [run for run in kept["runs"] if run["set"] in names]
        results["notes"].append(
            f"{len(results['runs'])} runs kept from {kept['date']} ({kept['commit']}, load "
            f"{kept['load']}); the same recipe code"
        )
    done = {(run["set"], run["setting"], run["seed"]) for run in results["runs"]}
    folders = {}
    for name in names:
        folders[name], manifest = build_set(name, quick=False, rebuild=False)
        results.setdefault("data", {})[name] = {
            key: manifest[key] for key in ("digest", "classes", "train", "test")
        }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    failed = 0
    for seed in seeds:
        for name in names:
            for setting in settings:
                if (name, setting, seed) in done:
                    continue
                run_dir = (
                    WORK / stamp / f"{name}-{setting.replace(' ', '').replace('+', '-')}-{seed}"
                )
                print(f"[{time.strftime('%H:%M:%S')}] {name} {setting} seed {seed}", flush=True)
                try:
                    result = run(folders[name], run_dir, model, setting, seed)
                except RuntimeError as error:
                    failed += 1
                    print(f"  FAILED: {error}", flush=True)
                    continue
                results["runs"].append({"set": name, "setting": setting, "seed": seed, **result})
                print(
                    f"  {result['test_accuracy']:.4f}, train {result['train_seconds']} s "
                    f"({result['train_cpu_seconds']} s CPU), {result['train_after']} texts, "
                    f"load {result['load_before']}-{result['load_after']}",
                    flush=True,
                )
                results["load"]["end"] = round(os.getloadavg()[0], 2)
                loads = [r["load_before"] for r in results["runs"]] + [
                    r["load_after"] for r in results["runs"]
                ]
                results["load"]["range"] = [min(loads), max(loads)]
                summarize(results)
                out.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
