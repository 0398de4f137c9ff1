"""Benchmark: the generic recipes with default settings on real data, each next to scikit-learn.

For each data set the recipe runs exactly as a user would run it, with only `data` and
`run_dir` set (`recipes.image_classifier.main(Config(data=DIR, run_dir=...))`, in a fresh
process), and a scikit-learn baseline is trained in the same benchmark run on the same
train/test folders: an RBF SVM on the pixels (C in {1, 10, 100} x gamma in {0.5, 1, 2} x
"scale", chosen by 3-fold cross-validation on train) for images, TF-IDF on words and word
bigrams + logistic regression (C in {3, 10, 30, 100, 300}, same cross-validation, its folds
grouped like the test split so near-copies never straddle a fold) for texts. The recipe
holds 10% of train out for validation (its default): the image recipes choose their epoch on
it, text_classifier's default `linear` model its C, then fits again on all of train, as the
baseline fits on all of train. Both score the same test folder, which nothing selects on.

Target: the recipe at or above the baseline on every set, image and text (issue 24: the default
text model at or above it with at most 60 s of training per ~8k texts and a file of at most
1 MiB; `--record=NAME` writes that table for the docs and README.md).

Data (built by `bench/datasets.py` into bench/results/real_data/data/, git-ignored, and reused;
`--rebuild` rebuilds; every set's SHA-256 digest is in the results so runs can be compared):
- fashion-50, fashion-200, fashion-1000: Fashion-MNIST from Debian's `dataset-fashion-mnist`
  (/usr/share/datasets/fashion-mnist/), 50, 200 or 1,000 training images per class (nested
  seeded subsets of the 60k file) and the same 2,000 test images (200 per class, seeded, from
  the 10k file), as 28x28 greyscale PNGs in train/<class>/ and test/<class>/.
- digits: scikit-learn's bundled `load_digits` (1,797 8x8 images), stratified 80/20 split.
- debian-descriptions: the English long descriptions of Debian's packages (main component of
  the machine's release; Debian 12.15 "bookworm" here, 9,108 texts) labelled by archive
  Section, eight classes: admin, games, graphics, mail, net, science, sound, text. One text per
  distinct description; 20% of *source* packages (seeded) are test, so sibling packages with
  near-identical descriptions never straddle the split. Install step: apt keeps only short
  descriptions unless asked, so once: `sudo apt-get update -o Acquire::Languages=en`.
- debian-desktop (8 sections: editors, fonts, gnome, kde, localization, video, web, x11) and
  debian-languages (6 language ecosystems: gnu-r, java, lisp, ocaml, php, ruby): the same
  descriptions under other labels, smaller and larger, split by source package the same way.
- man-pages: the English manual pages in /usr/share/man by section (1, 2, 3, 5, 7, 8), 600
  sampled per section, the first 3,000 characters of each as plain words with every "name(N)"
  section reference removed; grouped by the page name's first word ("git-add" -> "git").

Run:  make bench-real                     (the apt step if needed, then everything; about
                                           20-40 minutes on 2 shared CPU cores)
      python bench/real_data.py --sets=digits,debian-descriptions
      python bench/real_data.py --sets=debian-descriptions,debian-desktop,debian-languages,man-pages
                                          --record=real_data_text   (the text sets, default
                                          model only; the README's table; about 10 minutes)
      python bench/real_data.py --quick     (smoke check: tiny sets, 1 recipe epoch, 1 baseline
                                           setting; about 2-3 minutes)
      python bench/real_data.py --sets=debian-descriptions --models=bow,cnn,lstm,gru,transformer
                                          (the text set only, and every text model against the
                                           same baseline: accuracy, training time, parameters,
                                           TFLite size and latency; about 30 minutes)
Writes bench/results/real_data.json and .md (real_data-quick.* for --quick) after every set,
and one run folder per recipe run (report.md, history.csv) under bench/results/real_data/runs/.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.datasets import (  # noqa: E402
    TextSet,
    _split_files,
    count_files,
    debian_descriptions,
    folder_digest,
    read_image_folder,
    read_text_folder,
    write_digits_folder,
    write_fashion_folder,
    write_text_folder,
)

RESULTS = REPO / "bench" / "results"
WORK = RESULTS / "real_data"
QUICK_TEXTS_PER_CLASS = 40  # --quick: the debian-descriptions texts kept per class
TEXT_TARGET_PP = 0.0  # text sets: the recipe may trail the baseline by at most this much
# --models: text_classifier's models that train without files from elsewhere (bert needs a
# pretrained checkpoint folder, which cannot be downloaded here).
TEXT_MODELS = ("linear", "bow", "cnn", "lstm", "gru", "transformer")


# debian-languages: libraries and tools by the language ecosystem's archive section.
LANGUAGE_SECTIONS = ("gnu-r", "java", "lisp", "ocaml", "php", "ruby")
# debian-desktop: a small set of desktop sections.
DESKTOP_SECTIONS = ("editors", "fonts", "gnome", "kde", "localization", "video", "web", "x11")
MAN_SECTIONS = ("1", "2", "3", "5", "7", "8")
MAN_PAGES_PER_SECTION = 600  # man-pages: sampled per section (section 1 alone has thousands)
MAN_TEXT_CHARACTERS = 3000  # man-pages: the start of each page (name, synopsis, description)


def _write_texts(root: Path, texts: TextSet, quick: bool) -> str:
    """Writes the folder (groups never straddle the split) and ROOT/../<set>-groups.json."""
    if quick:  # the first few texts of each label, in order
        keep, seen = [], {}
        for index, label in enumerate(texts.labels):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= QUICK_TEXTS_PER_CLASS:
                keep.append(index)
        for field in ("texts", "labels", "groups", "ids"):
            setattr(texts, field, [getattr(texts, field)[index] for index in keep])
    write_text_folder(root, texts)
    groups = dict(zip(texts.ids, texts.groups, strict=True))
    (root.parent / f"{root.name}-groups.json").write_text(json.dumps(groups) + "\n")
    return texts.source


def _debian(sections: tuple[str, ...]) -> Callable[[Path, bool], str]:
    def build(root: Path, quick: bool) -> str:
        return _write_texts(root, debian_descriptions(sections), quick)

    return build


_MAN_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_MAN_ESCAPE = re.compile(r"\\(\(..|\[[^\]]*\]|\*.|[&|^:%]|.)")
_MAN_REFERENCE = re.compile(r"\(\d[a-z]*\)")  # "ls(1)" names a section: the label


def man_page_text(source: str) -> str:
    """A roff manual page as plain words: text lines and the words of font macros (.B, .I,
    .SH, ...), escapes removed, the .TH header and every "name(N)" section number dropped."""
    lines = []
    for line in source.splitlines():
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro not in ("B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SH", "SS", "TP", "IP"):
                continue
            line = rest.replace('"', " ")
        line = _MAN_FONT.sub("", line).replace("\\-", "-")
        lines.append(_MAN_ESCAPE.sub(" ", line))
    text = _MAN_REFERENCE.sub("", " ".join(" ".join(lines).split()))
    return text[:MAN_TEXT_CHARACTERS]


def man_pages(folder: Path = Path("/usr/share/man")) -> TextSet:
    """English manual pages labelled by section (1 commands, 2 system calls, 3 library
    functions, 5 file formats, 7 overviews, 8 administration), `MAN_PAGES_PER_SECTION` sampled
    per section (seeded). Grouped by the page name's first word ("git-add" -> "git",
    "pam_unix" -> "pam"), so a family of pages never straddles train and test; redirections
    (.so) and copies of a text are skipped."""
    import gzip
    import random

    texts, labels, groups, ids, seen = [], [], [], [], set()
    for section in MAN_SECTIONS:
        files = sorted((folder / f"man{section}").glob("*.gz"))
        if not files:
            raise FileNotFoundError(
                f"no manual pages in {folder}/man{section}; install man-db and manpages-dev, "
                "and allow /usr/share/man in dpkg's path excludes"
            )
        random.Random(f"man{section}").shuffle(files)
        kept = 0
        for path in files:
            source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
            if source.lstrip().startswith(".so ") or kept >= MAN_PAGES_PER_SECTION:
                continue
            text = man_page_text(source)
            normalised = " ".join(text.lower().split())
            if len(text.split()) < 20 or normalised in seen:
                continue
            seen.add(normalised)
            name = path.name.split(".", 1)[0]
            texts.append(text)
            labels.append(f"section{section}")
            groups.append(re.split(r"[-_.:]", name.lower())[0] or name)
            ids.append(f"{name}.{section}"[:200])
            kept += 1
    return TextSet(texts, labels, groups, ids, f"manual pages in {folder}, {len(texts)} pages")


def _build_man(root: Path, quick: bool) -> str:
    return _write_texts(root, man_pages(), quick)


def _build_debian(root: Path, quick: bool) -> str:
    texts = debian_descriptions()
    if quick:  # the first few packages of each section, alphabetically
        keep, seen = [], {}
        for index, label in enumerate(texts.labels):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= QUICK_TEXTS_PER_CLASS:
                keep.append(index)
        for field in ("texts", "labels", "groups", "ids"):
            setattr(texts, field, [getattr(texts, field)[index] for index in keep])
    write_text_folder(root, texts)
    groups = dict(zip(texts.ids, texts.groups, strict=True))
    (root.parent / f"{root.name}-groups.json").write_text(json.dumps(groups) + "\n")
    return texts.source


def _fashion(per_class: int) -> Callable[[Path, bool], str]:
    def build(root: Path, quick: bool) -> str:
        if quick:  # a tenth of the training images, 20 test images per class
            write_fashion_folder(root, max(per_class // 10, 5), test_per_class=20)
        else:
            write_fashion_folder(root, per_class)
        return "Fashion-MNIST IDX files of Debian's dataset-fashion-mnist"

    return build


def _digits(root: Path, quick: bool) -> str:
    import sklearn

    write_digits_folder(root)
    return f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})"


# name -> (recipe module, builder(root, quick) -> a line saying where the data came from)
# In order of cost, so that an interrupted run has its table for the cheap sets.
SETS: dict[str, tuple[str, Callable[[Path, bool], str]]] = {
    "digits": ("image_classifier", _digits),
    "fashion-50": ("image_classifier", _fashion(50)),
    "debian-descriptions": ("text_classifier", _build_debian),
    "man-pages": ("text_classifier", _build_man),
    "debian-desktop": ("text_classifier", _debian(DESKTOP_SECTIONS)),
    "debian-languages": ("text_classifier", _debian(LANGUAGE_SECTIONS)),
    "fashion-200": ("image_classifier", _fashion(200)),
    "fashion-1000": ("image_classifier", _fashion(1000)),
}


def build_set(name: str, quick: bool, rebuild: bool) -> tuple[Path, dict]:
    """Builds (or reuses) the set's folder; returns it and its manifest (digest, counts)."""
    stem = f"{name}-quick" if quick else name
    root = WORK / "data" / stem
    manifest_path = WORK / "data" / f"{stem}.json"
    if not rebuild and root.is_dir() and manifest_path.is_file():
        return root, json.loads(manifest_path.read_text())
    started = time.perf_counter()
    source = SETS[name][1](root, quick)
    counts = count_files(root)
    manifest = {
        "source": source,
        "digest": folder_digest(root),
        "classes": len(counts["train"]),
        "train": sum(counts["train"].values()),
        "test": sum(counts["test"].values()),
        "per_class": counts,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return root, manifest


def svm_baseline(root: Path, quick: bool) -> dict:
    """RBF SVM on the pixels, C and gamma chosen by 3-fold cross-validation on train."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    x_train, y_train, x_test, y_test, _ = read_image_folder(root)
    scale = 1.0 / (x_train.shape[1] * x_train.var())  # scikit-learn's gamma="scale"
    grid = (
        {"C": [10.0], "gamma": [scale]}
        if quick
        else {"C": [1.0, 10.0, 100.0], "gamma": [0.5 * scale, scale, 2.0 * scale]}
    )
    folds = StratifiedKFold(2 if quick else 3, shuffle=True, random_state=0)
    search = GridSearchCV(SVC(kernel="rbf"), grid, cv=folds, n_jobs=1)
    search.fit(x_train, y_train)
    chosen = search.best_params_
    return {
        "accuracy": float(search.score(x_test, y_test)),
        "setting": f"SVC rbf C={chosen['C']:g} gamma={chosen['gamma'] / scale:g}x scale",
    }


def text_groups(root: Path) -> list[str] | None:
    """The group (Debian: source package) of each training text, in read_text_folder's order,
    from ROOT/../<set>-groups.json (written when the set is built), or None without it."""
    path = root.parent / f"{root.name}-groups.json"
    if not path.is_file():
        return None
    group_of = json.loads(path.read_text())
    files, _, _ = _split_files(root, "train")
    return [group_of[file.stem] for file in files]


def tfidf_baseline(root: Path, quick: bool) -> dict:
    """TF-IDF words + bigrams and logistic regression, C chosen by 3-fold cross-validation on
    train only. The folds keep each group (source package) in one fold when the set has groups:
    near-identical sibling texts in both a fold's train and its held-out part would reward
    the weakest regularization."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold
    from sklearn.pipeline import Pipeline

    texts_train, y_train, texts_test, y_test, _ = read_text_folder(root)
    groups = text_groups(root)
    pipeline = Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
            ("classifier", LogisticRegression(max_iter=3000)),
        ]
    )
    grid = {"classifier__C": [10.0] if quick else [3.0, 10.0, 30.0, 100.0, 300.0]}
    splitter = StratifiedKFold if groups is None else StratifiedGroupKFold
    folds = splitter(2 if quick else 3, shuffle=True, random_state=0)
    search = GridSearchCV(pipeline, grid, cv=folds, n_jobs=1)
    search.fit(texts_train, y_train, groups=groups)
    chosen = search.best_params_["classifier__C"]
    return {
        "accuracy": float(search.score(texts_test, y_test)),
        "setting": f"TF-IDF 1-2 grams + logistic regression C={chosen:g}",
        "cross_validation": "grouped by source package" if groups else "stratified",
        "cv_accuracy": {
            f"C={c:g}": round(float(score), 4)
            for c, score in zip(
                grid["classifier__C"], search.cv_results_["mean_test_score"], strict=True
            )
        },
    }


_RECIPE_CALL = (
    "import json, sys\n"
    "import importlib\n"
    "recipe = importlib.import_module('recipes.' + sys.argv[1])\n"
    "recipe.main(recipe.Config(**json.loads(sys.argv[2])))\n"
)


def run_recipe(recipe: str, data: Path, run_dir: Path, quick: bool, **overrides) -> dict:
    """Runs `recipes.<recipe>.main(Config(data=..., run_dir=..., **overrides))` in a fresh
    process; the recipe's output goes to RUN_DIR.log. Returns its metrics.json plus the wall
    time."""
    settings = {"data": str(data), "run_dir": str(run_dir), **overrides}
    if quick:
        settings["epochs"] = 1
    log_path = run_dir.with_suffix(".log")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    with log_path.open("w") as log:
        result = subprocess.run(
            [sys.executable, "-c", _RECIPE_CALL, recipe, json.dumps(settings)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=environment,
            check=False,
        )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"exit code {result.returncode}; see {log_path}: " + " | ".join(tail))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["wall_seconds"] = round(wall, 1)
    return metrics


def _learning_curve(run_dir: Path) -> dict:
    """Last-epoch training accuracy and the best validation epoch, from history.csv."""
    path = run_dir / "history.csv"
    if not path.is_file():
        return {}
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "val_accuracy" not in rows[0]:
        return {}
    validation = [float(row["val_accuracy"]) for row in rows]
    best = max(range(len(validation)), key=validation.__getitem__)
    return {
        "train_accuracy_last": float(rows[-1]["accuracy"]),
        "val_accuracy_last": validation[-1],
        "val_accuracy_best": validation[best],
        "val_best_epoch": best + 1,
    }


def _model_row(model: str, run_dir: Path, metrics: dict, baseline_accuracy: float) -> dict:
    """One text model's numbers: test accuracy, time, parameters, each TFLite file's size and
    batch-1 latency, and whether the file needs select TF ops (Flex delegates)."""
    exports = export_numbers(metrics)
    return {
        "model": model,
        "run_dir": str(run_dir),
        "test_accuracy": metrics["test_accuracy"],
        "difference_pp": round((metrics["test_accuracy"] - baseline_accuracy) * 100, 2),
        "train_seconds": metrics.get("train_seconds"),
        "train_cpu_seconds": metrics.get("train_cpu_seconds"),
        "wall_seconds": metrics["wall_seconds"],
        "epochs": metrics.get("epochs"),
        "parameters": metrics.get("parameters"),
        "exports": exports,
    }


def export_numbers(metrics: dict) -> dict:
    """Each exported TFLite file of a run (its metrics.json) by format: size, gzip size,
    batch-1 latency, test accuracy, whether it needs select TF ops, and MediaPipe's accuracy."""
    from trainer.export.tflite import select_tf_ops

    exports = {}
    for export in metrics.get("exports", []):
        content = Path(export["path"]).read_bytes()
        mediapipe = export.get("mediapipe") or {}
        exports[export["format"]] = {
            "size_bytes": export["size_bytes"],
            "gzip_bytes": export["gzip_bytes"],
            "latency_ms": export["latency_ms"],
            "accuracy": export["accuracy"],
            "select_tf_ops": bool(select_tf_ops(content)),
            # the file in MediaPipe Tasks' TextClassifier on the raw test texts
            "mediapipe_accuracy": mediapipe.get("accuracy"),
            "mediapipe_agreement": mediapipe.get("agreement"),
        }
    return exports


def _text_models(row: dict, models: list[str], root: Path, run_dir: Path, quick: bool) -> int:
    """Trains each of `models` with text_classifier (the default one is the row's own run) and
    stores their numbers in row["models"]; returns the number that failed."""
    import yaml

    default = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    row["default_model"] = default
    row["models"] = []
    failed = 0
    for model in models:
        if model == default:
            metrics = json.loads((run_dir / "metrics.json").read_text())
            metrics["wall_seconds"] = row["recipe_wall_seconds"]
            model_dir = run_dir
        else:
            model_dir = run_dir.with_name(f"{run_dir.name}-{model}")
            print(f"[{time.strftime('%H:%M:%S')}] {row['set']}: --model={model}", flush=True)
            try:
                metrics = run_recipe(row["recipe"], root, model_dir, quick, model=model)
            except RuntimeError as error:
                failed += 1
                row["models"].append({"model": model, "error": str(error)})
                print(f"  --model={model} FAILED: {error}", flush=True)
                continue
        entry = _model_row(model, model_dir, metrics, row["baseline_accuracy"])
        entry["load_average"] = round(os.getloadavg()[0], 2)
        row["models"].append(entry)
        print(
            f"[{time.strftime('%H:%M:%S')}] {row['set']}: --model={model} "
            f"{entry['test_accuracy']:.4f} ({entry['difference_pp']:+.2f} pp), "
            f"train {entry['train_seconds']} s, load {entry['load_average']}",
            flush=True,
        )
    return failed


def _size(exports: dict, format: str) -> str:
    return f"{exports[format]['size_bytes'] / 2**20:.2f} MiB" if format in exports else "-"


def _latency(exports: dict, format: str) -> str:
    return f"{exports[format]['latency_ms']:.3f}" if format in exports else "-"


def models_table(row: dict) -> list[str]:
    """Markdown lines comparing the text models of one set (empty without --models)."""
    if not row.get("models"):
        return []
    lines = [
        "",
        f"Text models on {row['set']} (`--model=`; default `{row['default_model']}`), same "
        f"baseline {row['baseline_accuracy'] * 100:.2f}%:",
        "",
        "| model | test acc. | difference | train time (CPU) | parameters | TFLite float32 | "
        "TFLite dynamic | latency float32 / dynamic | select TF ops |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for entry in row["models"]:
        if "error" in entry:
            lines.append(f"| {entry['model']} | failed | - | - | - | - | - | - | - |")
            continue
        exports = entry["exports"]
        select = "yes" if any(export["select_tf_ops"] for export in exports.values()) else "no"
        lines.append(
            f"| {entry['model']} | {entry['test_accuracy'] * 100:.2f}% | "
            f"{entry['difference_pp']:+.2f} pp | {entry['train_seconds']:.0f} s "
            f"({entry.get('train_cpu_seconds') or 0:.0f} s) | "
            f"{entry['parameters']:,} | {_size(exports, 'float32')} | {_size(exports, 'dynamic')} | "
            f"{_latency(exports, 'float32')} / {_latency(exports, 'dynamic')} ms | {select} |"
        )
    return lines


def _hardware() -> str:
    """The CPU model, its widest vector instructions (timings differ several-fold between
    AVX2 and AVX-512 with bfloat16) and the core count."""
    model, flags = "unknown CPU", set()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("Flags:"):
                flags = set(line.split(":", 1)[1].split())
    except FileNotFoundError:
        pass
    vectors = (
        "AVX-512" + (" with bfloat16" if "avx512_bf16" in flags else "")
        if "avx512f" in flags
        else "AVX2, no AVX-512"
        if "avx2" in flags
        else "no AVX2"
    )
    return f"{model} ({vectors}), {os.cpu_count()} cores"


def _commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=REPO).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--", "recipes", "trainer").strip()
    return head + (" + uncommitted changes in recipes/ or trainer/" if dirty else "")


def _target(row: dict) -> str:
    if "recipe_accuracy" not in row:
        return "failed"
    floor = TEXT_TARGET_PP if row["kind"] == "text" else 0.0
    return "met" if row["difference_pp"] >= floor else "missed"


def write_results(results: dict, stem: str) -> tuple[Path, Path]:
    """Writes RESULTS/<stem>.json and RESULTS/<stem>.md (one table) and returns both paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    markdown_path.write_text(markdown_table(results))
    return json_path, markdown_path


def markdown_table(results: dict) -> str:
    lines = [
        f"Real-data benchmark ({'--quick, not a result' if results['quick'] else 'defaults'}), "
        f"{results['date']}, {results['hardware']}, commit {results['commit']}.",
        "",
        "| data set | classes | train / test | recipe test acc. | baseline test acc. | "
        "difference | target | recipe wall time | baseline |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in results["rows"]:
        recipe = f"{row['recipe_accuracy'] * 100:.2f}%" if "recipe_accuracy" in row else "failed"
        difference = f"{row['difference_pp']:+.2f} pp" if "difference_pp" in row else "-"
        wall = f"{row['recipe_wall_seconds']:.0f} s" if "recipe_wall_seconds" in row else "-"
        lines.append(
            f"| {row['set']} | {row['classes']} | {row['train']:,} / {row['test']:,} | {recipe} | "
            f"{row['baseline_accuracy'] * 100:.2f}% | {difference} | {_target(row)} | {wall} | "
            f"{row['baseline_setting']} ({row['baseline_seconds']:.0f} s) |"
        )
    lines += [
        "",
        "Recipe: `recipes.<recipe>.main(Config(data=..., run_dir=...))`, all other settings "
        "default (10% of train held out for validation). Baseline: scikit-learn on the same "
        "train/test files, settings chosen by 3-fold cross-validation on train. Target: "
        f"difference >= 0 on image sets, >= {TEXT_TARGET_PP} pp on text sets.",
    ]
    for row in results["rows"]:
        lines += models_table(row)
    if any(row.get("models") for row in results["rows"]):
        lines.append(
            "\nTrain time: `model.fit` wall time, or for `linear` the scikit-learn fit's (process "
            "CPU time in brackets: less sensitive to other jobs on a shared machine); latency: "
            "batch-1 TFLite, one thread."
        )
    return "\n".join(lines) + "\n"


TEXT_RECORD_COLUMNS = [
    "set",
    "classes / train / test",
    "TF-IDF + LR baseline",
    "default model",
    "difference",
    "training CPU (wall)",
    "TFLite dynamic: size, test acc.",
    "latency",
    "load (start / end)",
]


def text_record(results: dict, command: str) -> dict:
    """The text rows of a run as a result file the documentation renders (docs/hooks.py's
    `bench_table`, README.md's bench-table block): per set the baseline, the default model's
    test accuracy, its training CPU seconds and wall time, its dynamic-range file's size and
    batch-1 latency, and the 1-minute load average while it ran."""
    rows, loads, models = [], [], set()
    for row in results["rows"]:
        if row["kind"] != "text" or "recipe_accuracy" not in row:
            continue
        exports = row.get("recipe_exports")
        if exports is None:  # results written before rows kept their exports
            metrics = json.loads((Path(row["run_dir"]) / "metrics.json").read_text())
            exports = export_numbers(metrics)
        dynamic = exports.get("dynamic", {})
        models.add(row.get("default_model") or _run_model(Path(row["run_dir"])))
        load = (row["recipe_load_average_start"], row["recipe_load_average"])
        loads += load
        chosen = re.search(r"C=(\S+)", row["baseline_setting"])
        rows.append(
            [
                row["set"],
                f"{row['classes']} / {row['train']:,} / {row['test']:,}",
                f"{row['baseline_accuracy'] * 100:.2f}%" + (f" (C={chosen[1]})" if chosen else ""),
                f"{row['recipe_accuracy'] * 100:.2f}%",
                f"{row['difference_pp']:+.2f} pp",
                f"{row['recipe_train_cpu_seconds']:.0f} s ({row['recipe_train_seconds']:.0f} s)",
                f"{dynamic['size_bytes'] / 2**20:.2f} MiB, {dynamic['accuracy'] * 100:.2f}%"
                if dynamic
                else "-",
                f"{dynamic['latency_ms']:.3f} ms" if dynamic else "-",
                f"{load[0]:.1f} / {load[1]:.1f}",
            ]
        )
    if not rows:
        raise ValueError("no text set ran to the end: nothing to record; run with --sets=<text>")
    model = ", ".join(sorted(models))
    return {
        "title": f"The default text model ({model}) against tuned TF-IDF + logistic regression",
        "what": (
            f"text_classifier with only --data set (model `{model}`) on each text set of "
            "bench/real_data.py against scikit-learn's TF-IDF (1-2 grams, sublinear tf) + "
            "logistic regression, C chosen by grouped 3-fold cross-validation on train. "
            "Training: the fit's process CPU seconds (wall time in brackets); the file is the "
            "dynamic-range TFLite export (its own test accuracy beside its size), latency per "
            "text at batch 1 on one thread."
        ),
        "command": command,
        "date": results["date"],
        "commit": results["commit"],
        "hardware": results["hardware"],
        "load": f"1-minute load average {min(loads):.1f}-{max(loads):.1f} "
        "(start-end of each recipe run in the table)",
        "columns": TEXT_RECORD_COLUMNS,
        "rows": rows,
    }


def _run_model(run_dir: Path) -> str:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["model"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma list of {', '.join(SETS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sets, 1 epoch, 1 setting")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the data folders")
    parser.add_argument(
        "--models",
        default="",
        help="text sets: also train these text_classifier models (comma list, e.g. "
        "bow,cnn,lstm,gru,transformer), each against the same baseline",
    )
    parser.add_argument(
        "--record",
        default="",
        help="also write the text rows as bench/results/NAME.json, the table the docs and "
        "README.md show (bench/readme_tables.py)",
    )
    parser.add_argument(
        "--record_from",
        default="",
        help="with --record: make it from this results file of an earlier run, running nothing",
    )
    args = parser.parse_args()
    if args.record_from:
        if not args.record:
            parser.error("--record_from needs --record=NAME")
        earlier = json.loads(Path(args.record_from).read_text())
        command = earlier.get("command") or f"python bench/real_data.py (see {args.record_from})"
        return _write_record(text_record(earlier, command), args.record)
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [name for name in names if name not in SETS]
    if unknown or not names:
        parser.error(f"--sets={args.sets!r}: unknown {unknown}; choose from {', '.join(SETS)}")
    text_models = [model.strip() for model in args.models.split(",") if model.strip()]
    wrong = [model for model in text_models if model not in TEXT_MODELS]
    if wrong:
        parser.error(f"--models={args.models!r}: unknown {wrong}; choose from {TEXT_MODELS}")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "hardware": _hardware(),
        "commit": _commit(),
        "quick": args.quick,
        "command": "python bench/real_data.py " + " ".join(sys.argv[1:]),
        "load_average_start": round(os.getloadavg()[0], 2),
        "rows": [],
    }
    stem = "real_data-quick" if args.quick else "real_data"
    failed = 0
    for name in names:
        recipe, _ = SETS[name]
        print(f"[{time.strftime('%H:%M:%S')}] {name}: building data", flush=True)
        root, manifest = build_set(name, args.quick, args.rebuild)
        row = {
            "set": name,
            "kind": "text" if recipe == "text_classifier" else "image",
            "recipe": recipe,
            "data": str(root),
            "source": manifest["source"],
            "digest": manifest["digest"],
            "classes": manifest["classes"],
            "train": manifest["train"],
            "test": manifest["test"],
        }
        print(
            f"[{time.strftime('%H:%M:%S')}] {name}: {row['train']} train / {row['test']} test, "
            f"{row['classes']} classes; baseline",
            flush=True,
        )
        started = time.perf_counter()
        baseline = (tfidf_baseline if row["kind"] == "text" else svm_baseline)(root, args.quick)
        row.update(
            baseline_accuracy=baseline["accuracy"],
            baseline_setting=baseline["setting"],
            baseline_cross_validation=baseline.get("cross_validation"),
            baseline_cv_accuracy=baseline.get("cv_accuracy"),
            baseline_seconds=round(time.perf_counter() - started, 1),
        )
        print(
            f"[{time.strftime('%H:%M:%S')}] {name}: baseline {baseline['accuracy']:.4f} "
            f"({baseline['setting']}, {row['baseline_seconds']:.0f} s); recipe {recipe}",
            flush=True,
        )
        run_dir = WORK / "runs" / f"{name}{'-quick' if args.quick else ''}-{stamp}"
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        row["run_dir"] = str(run_dir)
        row["recipe_load_average_start"] = round(os.getloadavg()[0], 2)
        try:
            metrics = run_recipe(recipe, root, run_dir, args.quick)
        except RuntimeError as error:
            failed += 1
            row["error"] = str(error)
            print(f"[{time.strftime('%H:%M:%S')}] {name}: recipe FAILED: {error}", flush=True)
        else:
            row.update(
                recipe_accuracy=metrics["test_accuracy"],
                difference_pp=round((metrics["test_accuracy"] - baseline["accuracy"]) * 100, 2),
                recipe_wall_seconds=metrics["wall_seconds"],
                recipe_train_seconds=metrics.get("train_seconds"),
                recipe_train_cpu_seconds=metrics.get("train_cpu_seconds"),
                recipe_load_average=round(os.getloadavg()[0], 2),
                recipe_epochs=metrics.get("epochs"),
                recipe_best_epoch=metrics.get("best_epoch"),
                recipe_at_chance=metrics.get("at_chance"),
                recipe_parameters=metrics.get("parameters"),
                recipe_exports=export_numbers(metrics),
                **_learning_curve(run_dir),
            )
            if text_models and row["kind"] == "text":
                failed += _text_models(row, text_models, root, run_dir, args.quick)
            print(
                f"[{time.strftime('%H:%M:%S')}] {name}: recipe {row['recipe_accuracy']:.4f} "
                f"vs baseline {row['baseline_accuracy']:.4f} ({row['difference_pp']:+.2f} pp, "
                f"{_target(row)}); {row['recipe_wall_seconds']:.0f} s",
                flush=True,
            )
        results["rows"].append(row)
        results["load_average_end"] = round(os.getloadavg()[0], 2)
        write_results(results, stem)
    json_path, markdown_path = write_results(results, stem)
    print("\n" + markdown_table(results), flush=True)
    print(f"results: {json_path} and {markdown_path}")
    if args.record:
        _write_record(text_record(results, results["command"]), args.record)
    return 1 if failed else 0


def _write_record(record: dict, name: str) -> int:
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"table: {path} (README.md: python bench/readme_tables.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
