"""Benchmark: transfer learning on Fashion-MNIST, five classes pretrained, five transferred.

Pretrain `image_classifier` on Fashion-MNIST classes 0-4 (T-shirt/top, Trouser, Pullover,
Dress, Coat), a seeded 1,000 training images per class, images padded to 32x32; the run folder
is the pretrained model. Two pretrainings: the recipe's default CNN (defaults), and MobileNetV2
from scratch (`--backbone=mobilenet_v2 --weights=none`, 6 epochs). Then transfer to classes 5-9
(Sandal, Shirt, Sneaker, Bag, Ankle boot) with 10, 50 and 200 training images per class; the
arms of a cell see the same images and seed:
- scratch: `image_classifier` defaults (the small CNN), nothing pretrained;
- transfer: `--weights=CNN_PRETRAIN_RUN --fine_tune_epochs=5`: the pretrained CNN without its
  last layer, frozen under a new head (15 epochs, the default), then its last conv stage at a
  tenth of the learning rate, batch norm in inference mode throughout;
- mobilenet_v2 scratch: `--backbone=mobilenet_v2 --weights=none`;
- mobilenet_v2 transfer: `--backbone=mobilenet_v2 --weights=MOBILENET_PRETRAIN_RUN
  --fine_tune_epochs=5` (the top 20% of the backbone in the second phase).
Every run holds 10% of its training images out for validation (the default; it picks the
best epoch) and is scored on the whole Fashion-MNIST test set of its classes (5,000 images for
classes 5-9), which nothing selects on. The training images of a seed are nested: the 10 per
class are the first 10 of the 50, which are the first 50 of the 200. Pretraining sees no
image of classes 5-9.

Data (Debian's `dataset-fashion-mnist`, /usr/share/datasets/fashion-mnist/) is written as
.npz sources under bench/results/transfer/data/ (git-ignored); run folders go to
bench/results/transfer/runs/. Each recipe run is a fresh process.

Run:  python bench/transfer.py                   (scratch vs transfer, 3 seeds: 38 minutes
                                                  on 2 CPU cores shared with other jobs)
      python bench/transfer.py --arms=mobilenet_v2 scratch,mobilenet_v2 transfer
      python bench/transfer.py --quick           (smoke check: tiny sets, 1 epoch; minutes)
Writes bench/results/transfer.json and .md (transfer-quick.* for --quick; --out=NAME for
another name) after every run.
"""

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.real_data import _commit, _hardware, _learning_curve  # noqa: E402
from bench.real_data import run_recipe as run_real_data_recipe  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "transfer"
SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)
PRETRAIN_PER_CLASS = 1000
PRETRAIN_SEED = 0
SIZES = (10, 50, 200)
SEEDS = (0, 1, 2)
BACKBONE = "mobilenet_v2"
FINE_TUNE_EPOCHS = 5
# Every run: no int8 export or resume backups (they cost time and say nothing here).
COMMON = {"export": "float32", "backup_every": 0}
# name -> settings of the pretraining run on classes 0-4
PRETRAININGS = {
    "cnn": {},
    BACKBONE: {"backbone": BACKBONE, "weights": "none", "epochs": 6},  # 6: time
}
# arm -> (settings, the pretraining whose run folder is --weights, or None)
ARMS = {
    "scratch": ({}, None),
    "transfer": ({"fine_tune_epochs": FINE_TUNE_EPOCHS}, "cnn"),
    f"{BACKBONE} scratch": ({"backbone": BACKBONE, "weights": "none"}, None),
    f"{BACKBONE} transfer": (
        {"backbone": BACKBONE, "fine_tune_epochs": FINE_TUNE_EPOCHS},
        BACKBONE,
    ),
}
DEFAULT_ARMS = ("scratch", "transfer")


def per_class_subset(labels: np.ndarray, classes: tuple[int, ...], per_class: int, seed: int):
    """Indices of `per_class` examples of each of `classes`: the first ones of a seeded
    permutation of that class, so that for one seed a smaller subset lies inside a larger one.
    Sorted; raises ValueError when a class has too few examples."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in classes:
        members = np.flatnonzero(labels == label)
        order = rng.permutation(len(members))  # drawn for every class, whatever per_class is
        if per_class > len(members):
            raise ValueError(
                f"class {label} has {len(members)} examples, fewer than the {per_class} asked for"
            )
        chosen.append(members[order[:per_class]])
    return np.sort(np.concatenate(chosen))


def class_subset_arrays(
    images: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(images[indices], labels renumbered 0..len(classes)-1 in the order of `classes`)."""
    renumber = {label: position for position, label in enumerate(classes)}
    picked = labels[indices]
    if not set(np.unique(picked).tolist()) <= set(classes):
        raise ValueError(f"indices reach labels outside {classes}")
    return images[indices], np.asarray([renumber[int(label)] for label in picked], np.int64)


def write_source(path: Path, train: tuple, test: tuple, class_names: list[str]) -> Path:
    """An .npz source for the recipe: x_train, y_train, x_test, y_test, class_names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=train[0],
        y_train=train[1],
        x_test=test[0],
        y_test=test[1],
        class_names=np.asarray(class_names),
    )
    return path


def build_sources(quick: bool, sizes: tuple[int, ...], seeds: tuple[int, ...]) -> dict:
    """Writes the pretraining source and one source per (size, seed); returns their paths."""
    from trainer.data.idx import FASHION_MNIST_CLASSES, load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    # An .npz source keeps its image size and the backbones take 32x32 or more: pad the 28x28
    # images with their own black background, for every arm alike.
    x_train, x_test = (np.pad(images, ((0, 0), (2, 2), (2, 2))) for images in (x_train, x_test))
    data = WORK / ("data-quick" if quick else "data")
    test_per_class = 100 if quick else None  # None: the whole test file of those classes

    def test_split(classes):
        if test_per_class is None:
            indices = np.flatnonzero(np.isin(y_test, classes))
        else:
            indices = per_class_subset(y_test, classes, test_per_class, seed=0)
        return class_subset_arrays(x_test, y_test, classes, indices)

    def names(classes):
        return [FASHION_MNIST_CLASSES[label] for label in classes]

    pretrain_count = 100 if quick else PRETRAIN_PER_CLASS
    pretrain = per_class_subset(y_train, SOURCE_CLASSES, pretrain_count, PRETRAIN_SEED)
    sources = {
        "pretrain": write_source(
            data / "pretrain.npz",
            class_subset_arrays(x_train, y_train, SOURCE_CLASSES, pretrain),
            test_split(SOURCE_CLASSES),
            names(SOURCE_CLASSES),
        )
    }
    target_test = test_split(TARGET_CLASSES)
    for seed in seeds:
        for size in sizes:
            indices = per_class_subset(y_train, TARGET_CLASSES, size, seed)
            sources[(size, seed)] = write_source(
                data / f"target-{size}-seed{seed}.npz",
                class_subset_arrays(x_train, y_train, TARGET_CLASSES, indices),
                target_test,
                names(TARGET_CLASSES),
            )
    return sources


def run_recipe(settings: dict, run_dir: Path) -> dict:
    """`recipes.image_classifier.main(Config(**settings, run_dir=...))` in a fresh process
    (bench/real_data.py's runner), output in RUN_DIR.log; returns metrics.json's numbers with
    the wall time and learning curve."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    overrides = {key: value for key, value in settings.items() if key != "data"}
    metrics = run_real_data_recipe(
        "image_classifier", Path(settings["data"]), run_dir, quick=False, **overrides
    )
    with (run_dir / "history.csv").open() as history:  # both phases of a fine-tuned run
        epochs = sum(1 for _ in history) - 1
    return {
        "test_accuracy": metrics["test_accuracy"],
        "epochs": epochs,
        "best_epoch": metrics.get("best_epoch"),
        "train_seconds": metrics.get("train_seconds"),
        "wall_seconds": metrics["wall_seconds"],
        **_learning_curve(run_dir),
    }


def summarize(rows: list[dict]) -> dict:
    """{(arm, size): (mean, low, high, runs, mean wall seconds, epochs)} over seeds."""
    cells: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        if "test_accuracy" in row:
            cells.setdefault((row["arm"], row["per_class"]), []).append(row)
    summary = {}
    for key, group in cells.items():
        accuracies = np.asarray([row["test_accuracy"] for row in group])
        summary[key] = (
            float(accuracies.mean()),
            float(accuracies.min()),
            float(accuracies.max()),
            len(group),
            float(np.mean([row["wall_seconds"] for row in group])),
            group[0]["epochs"],
        )
    return summary


def markdown_table(results: dict) -> str:
    summary = summarize(results["rows"])
    arms = [arm for arm in ARMS if any(key[0] == arm for key in summary)]
    sizes = sorted({key[1] for key in summary})
    lines = [
        f"Transfer benchmark{' (--quick, not a result)' if results['quick'] else ''}, "
        f"{results['date']}, {results['hardware']}, commit {results['commit']}, load average "
        f"{results['load_average_start']} at start, {results.get('load_average_end', '-')} at end.",
        "",
        "Test accuracy on Fashion-MNIST classes 5-9 (mean over seeds, [min-max]), wall time "
        "per run (process start to report), epochs:",
        "",
        "| train images per class | " + " | ".join(arms) + " |",
        "|---:|" + "---:|" * len(arms),
    ]
    for size in sizes:
        cells = []
        for arm in arms:
            if (arm, size) not in summary:
                cells.append("-")
                continue
            mean, low, high, runs, wall, epochs = summary[(arm, size)]
            spread = f" [{low * 100:.1f}-{high * 100:.1f}]" if runs > 1 else ""
            cells.append(f"{mean * 100:.1f}%{spread}, {wall:.0f} s, {epochs} ep")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    for name, pretrain in results.get("pretrain", {}).items():
        lines += [
            "",
            f"Pretraining {name}: {pretrain['description']}; test accuracy on classes 0-4 "
            f"{pretrain['test_accuracy'] * 100:.1f}%, {pretrain['epochs']} epochs, "
            f"{pretrain['wall_seconds']} s.",
        ]
    return "\n".join(lines) + "\n"


def write_results(results: dict, stem: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    markdown_path.write_text(markdown_table(results))
    return json_path, markdown_path


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="images per class")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS), help=", ".join(ARMS))
    parser.add_argument(
        "--pretrained", default="", help="reuse pretraining runs: cnn=DIR,mobilenet_v2=DIR"
    )
    parser.add_argument("--out", default="", help="results file name (default transfer)")
    parser.add_argument("--quick", action="store_true", help="tiny sets, 1 epoch")
    args = parser.parse_args()
    sizes, seeds = _numbers(args.sizes), _numbers(args.seeds)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    if not arms or any(arm not in ARMS for arm in arms):
        parser.error(f"--arms={args.arms!r}; choose from {', '.join(ARMS)}")
    reused = dict(item.split("=", 1) for item in args.pretrained.split(",") if "=" in item)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    stem = args.out or ("transfer-quick" if args.quick else "transfer")
    runs = WORK / "runs" / f"{stem}-{stamp}"
    epochs = {"epochs": 1} if args.quick else {}
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": _hardware(),
        "commit": _commit(),
        "quick": args.quick,
        "load_average_start": round(os.getloadavg()[0], 2),
        "pretrain": {},
        "rows": [],
    }

    def say(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    say("writing the data sources")
    sources = build_sources(args.quick, sizes, seeds)
    pretrained = {}
    for name in dict.fromkeys(ARMS[arm][1] for arm in arms if ARMS[arm][1]):
        if name in reused:
            pretrained[name] = Path(reused[name])
            continue
        pretrained[name] = runs / f"pretrain-{name}"
        settings = {
            "data": str(sources["pretrain"]),
            "seed": PRETRAIN_SEED,
            **PRETRAININGS[name],
            **COMMON,
            **epochs,
        }
        say(f"pretraining {name} on classes 0-4 into {pretrained[name]}")
        metrics = run_recipe(settings, pretrained[name])
        results["pretrain"][name] = {
            **metrics,
            "run_dir": str(pretrained[name]),
            "settings": settings,
            "description": f"{'the default CNN' if name == 'cnn' else name + ' from scratch'}, "
            f"{100 if args.quick else PRETRAIN_PER_CLASS} images per class (10% of them held "
            "out for validation), padded to 32x32",
        }
        say(f"pretrained {name}: test {metrics['test_accuracy']:.4f}, {metrics['wall_seconds']} s")
        write_results(results, stem)
    failed = 0
    # Seed by seed, so that an interrupted run still has every cell for the seeds it finished.
    for seed in seeds:
        for size in sizes:
            for arm in arms:
                arm_settings, pretraining = ARMS[arm]
                settings = {"data": str(sources[(size, seed)]), "seed": seed, **arm_settings}
                if pretraining:
                    settings["weights"] = str(pretrained[pretraining])
                settings.update(COMMON, **epochs)
                run_dir = runs / f"{arm.replace(' ', '-')}-{size}-seed{seed}"
                row = {"arm": arm, "per_class": size, "seed": seed, "settings": settings}
                try:
                    row.update(run_recipe(settings, run_dir))
                except RuntimeError as error:
                    failed += 1
                    row["error"] = str(error)
                    say(f"{arm}, {size}/class, seed {seed}: FAILED: {error}")
                else:
                    say(
                        f"{arm}, {size}/class, seed {seed}: test {row['test_accuracy']:.4f} "
                        f"(val best {row.get('val_accuracy_best', float('nan')):.3f}), "
                        f"{row['wall_seconds']} s, load {os.getloadavg()[0]:.1f}"
                    )
                results["rows"].append(row)
                results["load_average_end"] = round(os.getloadavg()[0], 2)
                write_results(results, stem)
    json_path, markdown_path = write_results(results, stem)
    print("\n" + markdown_table(results), flush=True)
    print(f"results: {json_path} and {markdown_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
