"""`trainer data check`: find what is wrong with a data set and write `data_report.json/.md`.

Loading (`trainer.data.sources`) already lists per-item problems: empty or undecodable files,
images of unexpected size or channels, text that is not UTF-8, missing CSV values, labels out
of range or unknown. This module adds what needs the whole data set: counts per split and
class, class imbalance, exact duplicates within a split, leakage (the same sample in train and
in test or validation), for texts (`trainer.data.text_check`) near-duplicates and near-leaks,
texts without words, huge texts and the length statistics, and, unless in fast mode, likely label errors: cleanlab's
`find_label_issues` (confident learning, Northcutt et al. 2021) on out-of-fold probabilities
of a quick model, ranked (`trainer.data.label_issues`; `label_issues=True` also writes
`label_issues.csv` and `label_issues.png`). `clean_data` drops what was found from the in-memory
data for training; the source files are never modified. Reports go to `./data_report/` by
default and never inside the source.

Example:

    >>> import numpy as np
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> for index in range(40):  # photos/cat/0.png ... photos/dog/39.png, 8x8 grey images
    ...     folder = Path("photos", "cat" if index % 2 else "dog")
    ...     folder.mkdir(parents=True, exist_ok=True)
    ...     pixels = np.full((8, 8), index + 120 * (index % 2), np.uint8)  # cats are brighter
    ...     Image.fromarray(pixels).save(folder / f"{index}.png")
    >>> from trainer.data.check import check_source
    >>> report = check_source("photos", out_dir="data_report")  # the shell: trainer data check
    >>> print(report.summary())
    data check: photos (image, 2 classes)
      train      32 samples  cat=16 dog=16
      test        8 samples  cat=4 dog=4
      no problems found
    >>> sorted(path.name for path in Path("data_report").iterdir())
    ['data_report.json', 'data_report.md']
"""

import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.sources import load_source
from trainer.data.text_check import (
    NEAR_DUPLICATE_SIMILARITY,
    find_near_duplicates,
    markdown_lines,
    model_text,
    model_texts,
    snippet,
    summary_lines,
    text_problems,
    text_statistics,
)
from trainer.data.types import LoadedData, Problem, SourceOptions, class_counts
from trainer.files import atomic_write_json, atomic_write_text
from trainer.outputs import DATA_REPORT_FILES as REPORT_FILES
from trainer.outputs import check_output_folder, data_sources

# What to do about each kind of problem, printed under it; every check any loader reports has
# an entry (tests/test_data_check.py reads the loaders' sources to keep it so).
ADVICE = {
    "undecodable": "the file is corrupt or not the format its name says; re-export or delete it",
    "empty_file": "zero-byte or blank files carry no sample; delete them or re-copy them",
    "unsupported_file": "files of another type in a class folder are ignored; move them out",
    "empty_class": "a class folder without files is left out; add samples or remove the folder",
    "duplicate": "identical samples in one split weigh double; training drops extra copies "
    "(--drop_duplicates=true, the default); texts count as identical when the models read "
    "the same words (case and punctuation aside)",
    "leak": "the same sample is in train and in test/val, which inflates the test score; "
    "training drops the training copies (--drop_leaks=true, the default)",
    "near_duplicate": "texts that differ in a few words (a name, a version) weigh their "
    "content several times; keep real variants, delete mere copies, and look at any pair "
    "labelled differently (training keeps them all)",
    "near_leak": "a val/test text nearly the same as a training text: the test score partly "
    "measures recall of the training set. Split by origin (source package, author, "
    "document) so near-copies stay on one side, or delete the test copy (training keeps it)",
    "near_duplicate_search": "comparing every pair would take too long on texts this alike, so "
    "the search stopped (the test texts were compared first); texts sharing most of their "
    "words look generated from a few templates: check that the classes differ in more than "
    "a word or two",
    "no_words": "a text without a letter or digit gives the model only padding; fill it in or "
    "delete it",
    "huge_text": "the models read the first --sequence_length words (linear 400, others 200) "
    "and ignore the rest; a text this long is likely several texts or the wrong file: split "
    "or trim it",
    "likely_label_error": "ranked by cleanlab; check them by eye (--label_issues=true writes "
    "label_issues.csv and a picture of the top suspects); training can drop them with "
    "--drop_label_errors=true",
    "class_imbalance": "use --balance=class_weights or --balance=oversample when training",
    "missing_class": "a class with no training sample cannot be learned; add training samples "
    "or remove the class",
    "image_size": "images were resized to one size; check they are the pictures you meant",
    "image_channels": "grayscale/RGBA images were converted to the common channel count",
    "encoding": "save text as UTF-8; these files were read as Latin-1",
    "not_data": "folders trainer made (runs, tuning and report folders) are not samples and "
    "were skipped; move them out of the data folder",
    "symlink_loop": "a symbolic link that leads back into the data (to a folder it is in, or "
    "to another of its folders) would read the same files again, or forever; it was skipped: "
    "remove the link",
    "missing_values": "empty cells were filled with the training median",
    "non_finite_pixels": "NaN or infinite pixel values were set to 0; fix them in the source",
    "missing_label": "rows without a label (empty, nan, null, None, NA, N/A) are skipped; "
    "label them or delete them",
    "empty_text": "rows whose text is empty are skipped; fill in the text or delete the rows",
    "label_out_of_range": "fix the label or --num_classes; these rows were skipped",
    "unknown_label": "a class that only appears outside train cannot be learned; rows skipped",
    "unknown_split": "the split column must say train, val or test; these rows were skipped",
}


@dataclasses.dataclass
class DataReport:
    """What `check_data` found: counts per split and class, and every problem."""

    source: str
    kind: str
    class_names: list[str]
    counts: dict[str, dict[str, int]]
    problems: list[Problem]
    fast: bool = False
    seconds: float = 0.0
    # trainer.data.label_issues.LabelReview of the label-error search (None in fast mode)
    label_review: Any = None
    # text data: trainer.data.text_check.text_statistics (lengths, longest, majority class)
    texts: dict | None = None

    def problem_counts(self) -> dict[str, int]:
        return dict(Counter(problem.check for problem in self.problems))

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "kind": self.kind,
            "class_names": self.class_names,
            "counts": self.counts,
            "problem_counts": self.problem_counts(),
            "fast": self.fast,
            "seconds": round(self.seconds, 2),
            "label_review": None
            if self.label_review is None
            else {
                "model": self.label_review.model,
                "samples": self.label_review.samples,
                "issues": len(self.label_review.issues),
            },
            "texts": self.texts,
            "problems": [p.to_dict() for p in self.problems],
        }

    def warnings(self) -> list[str]:
        """One line per kind of problem, for a training log."""
        return [
            f"data check: {count} {check.replace('_', ' ')} problem(s), e.g. "
            f"{next(p for p in self.problems if p.check == check).item}"
            for check, count in sorted(self.problem_counts().items())
        ]

    def summary(self, max_rows: int = 10) -> str:
        """The text `trainer data check` prints: counts, then each kind of problem with its
        advice and up to `max_rows` of its items by path (all of them are in the report)."""
        lines = [f"data check: {self.source} ({self.kind}, {len(self.class_names)} classes)"]
        for split, counts in self.counts.items():
            per_class = " ".join(f"{name}={count}" for name, count in list(counts.items())[:12])
            more = " ..." if len(counts) > 12 else ""
            lines.append(f"  {split:<5} {sum(counts.values()):>7} samples  {per_class}{more}")
        if self.texts:
            lines += summary_lines(self.texts)
        if not self.problems:
            lines.append("  no problems found")
        else:
            lines.append(f"  {len(self.problems)} problem(s):")
        for check, count in sorted(self.problem_counts().items()):
            lines.append(f"  {check} ({count}): {ADVICE.get(check, '')}")
            found = [problem for problem in self.problems if problem.check == check]
            for problem in found[:max_rows]:
                where = f" [{problem.split}]" if problem.split else ""
                lines.append(f"    {problem.item}{where}: {problem.detail} ({problem.action})")
            if len(found) > max_rows:
                lines.append(f"    ... and {len(found) - max_rows} more in data_report.md")
        if self.fast:
            lines.append("  (fast mode: likely label errors were not searched)")
        return "\n".join(lines)

    def to_markdown(self, max_items: int = 50) -> str:
        splits = list(self.counts)
        lines = [
            f"# Data report: {self.source}",
            "",
            f"Kind: {self.kind}. Classes: {len(self.class_names)}. Checked in "
            f"{self.seconds:.1f}s{' (fast mode, no label-error search)' if self.fast else ''}.",
            "",
            *_review_lines(self.label_review),
            "## Samples per class",
            "",
            "The class id is the model's output index; the name is the label in the source.",
            "",
            "| id | class | " + " | ".join(splits) + " |",
            "|---|---|" + "---|" * len(splits),
        ]
        for index, name in enumerate(self.class_names):
            lines.append(
                f"| {index} | {name} | "
                + " | ".join(str(self.counts[s][name]) for s in splits)
                + " |"
            )
        lines.append(
            "| | **total** | "
            + " | ".join(str(sum(self.counts[s].values())) for s in splits)
            + " |"
        )
        if self.texts:
            lines += ["", *markdown_lines(self.texts)]
        lines += ["", f"## Problems ({len(self.problems)})", ""]
        if not self.problems:
            lines.append("None found.")
        for check, count in sorted(self.problem_counts().items()):
            lines += [f"### {check} ({count})", "", ADVICE.get(check, ""), ""]
            found = [p for p in self.problems if p.check == check]
            for problem in found[:max_items]:
                where = f" [{problem.split}]" if problem.split else ""
                lines.append(f"- `{problem.item}`{where}: {problem.detail} ({problem.action})")
            if len(found) > max_items:
                lines.append(f"- ... and {len(found) - max_items} more in data_report.json")
            lines.append("")
        return "\n".join(lines) + "\n"


def fingerprints(x: np.ndarray | list[str], *, model_texts: bool = False) -> list[str]:
    """An exact-content hash per sample: image bytes with shape, a feature row, or a text's
    words as the text models read them (`text_check.model_text`: "Great film!" and "great
    film" are the same text to them; `model_texts=True`: `x` holds those already)."""
    hashes = []
    for sample in x:
        if isinstance(sample, str):
            words = sample if model_texts else model_text(sample)
            data = words.encode("utf-8", "surrogatepass")
        else:
            sample = np.ascontiguousarray(sample)
            data = str(sample.shape).encode() + sample.tobytes()
        hashes.append(hashlib.blake2b(data, digest_size=16).hexdigest())
    return hashes


def split_fingerprints(data: LoadedData) -> dict[str, list[str]]:
    """`fingerprints` of every split, by split name."""
    return {split: fingerprints(data.arrays(split)[0]) for split in data.split_names()}


def find_duplicates(data: LoadedData, keys: dict[str, list[str]] | None = None) -> list[Problem]:
    """Every copy after the first of a sample that occurs twice in the same split (`keys`:
    `split_fingerprints(data)`, when already computed)."""
    keys = keys or split_fingerprints(data)
    problems = []
    for split in data.split_names():
        x, y = data.arrays(split)
        ids, first = data.split_ids(split), {}
        for index, key in enumerate(keys[split]):
            if key not in first:
                first[key] = index
                continue
            kept = first[key]
            conflict = (
                ""
                if y[kept] == y[index]
                else (
                    f", but labelled {data.class_names[y[index]]!r} instead of {data.class_names[y[kept]]!r}"
                )
            )
            text = f": {snippet(x[index])}" if isinstance(x[index], str) else ""
            problems.append(
                Problem(
                    "duplicate", ids[index], f"same content as {ids[kept]}{conflict}{text}", split
                )
            )
    return problems


def find_leaks(data: LoadedData, keys: dict[str, list[str]] | None = None) -> list[Problem]:
    """Validation or test samples identical to a training (or, for test, validation) sample
    (`keys`: `split_fingerprints(data)`, when already computed)."""
    keys = keys or split_fingerprints(data)
    seen: dict[str, str] = {}
    problems = []
    for split in data.split_names():
        x, _ = data.arrays(split)
        ids = data.split_ids(split)
        if split != "train":
            for index, key in enumerate(keys[split]):
                if key in seen:
                    text = f": {snippet(x[index])}" if isinstance(x[index], str) else ""
                    problems.append(
                        Problem("leak", ids[index], f"identical to {seen[key]}{text}", split)
                    )
        for index, key in enumerate(keys[split]):
            seen.setdefault(key, ids[index])
    return problems


def find_imbalance(data: LoadedData, ratio: float = 3.0) -> list[Problem]:
    """A problem for a training split whose largest class is over `ratio` times the smallest,
    and one naming classes with no training sample at all."""
    counts = class_counts(data.y_train, data.class_names)
    problems = []
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        shown = ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else "")
        problems.append(
            Problem(
                "missing_class",
                "train",
                f"{len(empty)} class(es) without a training sample: {shown}",
                "train",
            )
        )
    present = {name: count for name, count in counts.items() if count}
    largest, smallest = max(present, key=present.get), min(present, key=present.get)
    if present[largest] > ratio * present[smallest]:
        problems.append(
            Problem(
                "class_imbalance",
                "train",
                f"largest class {largest!r} has "
                f"{present[largest]} samples, smallest {smallest!r} has "
                f"{present[smallest]} (ratio {present[largest] / present[smallest]:.1f})",
                "train",
            )
        )
    return problems


def _review_lines(review: Any) -> list[str]:
    if review is None:
        return []
    return [
        f"Label review: {len(review.issues)} likely label errors among {review.samples} "
        f"samples (cleanlab find_label_issues; {review.model}).",
        "",
    ]


def find_label_errors(
    data: LoadedData,
    *,
    seed: int = 0,
    max_samples: int = 10000,
    probabilities_of: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
    model: str = "",
) -> tuple[list[Problem], Any]:
    """The likely label errors cleanlab finds (`trainer.data.label_issues.review_labels`),
    most likely first, as problems, and the review itself."""
    from trainer.data.label_issues import review_labels

    review = review_labels(
        data, probabilities_of=probabilities_of, model=model, max_samples=max_samples, seed=seed
    )
    names = data.class_names
    problems = [
        Problem(
            "likely_label_error",
            issue.item,
            f"labelled {names[issue.given]!r} (p={issue.score:.2f}) but looks like "
            f"{names[issue.suggested]!r} (p={issue.suggested_probability:.2f}); rank {issue.rank}",
            issue.split,
        )
        for issue in review.issues
    ]
    return problems, review


def check_data(
    data: LoadedData,
    *,
    label_errors: bool = True,
    imbalance_ratio: float = 3.0,
    seed: int = 0,
    probabilities_of: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
    model: str = "",
    near_duplicate_similarity: float = NEAR_DUPLICATE_SIMILARITY,
) -> DataReport:
    """Checks loaded data; `label_errors=False` is the fast mode used before training.

    `probabilities_of` (with `model`, its name) gives the label review a trained model's
    class probabilities instead of the quick k-fold model's
    (`trainer.data.label_issues.review_labels`). Text data also gets the near-duplicate
    search (TF-IDF cosine at least `near_duplicate_similarity`), the empty and huge text
    checks and the length statistics (`trainer.data.text_check`), in fast mode too."""
    started = time.perf_counter()
    texts, words = None, None
    if data.kind == "text":  # each text's words as the models read them, made once
        words = model_texts(data)
        keys = {split: fingerprints(found, model_texts=True) for split, found in words.items()}
    else:
        keys = split_fingerprints(data)
    problems = list(data.problems) + find_duplicates(data, keys) + find_leaks(data, keys)
    if words is not None:
        problems += find_near_duplicates(data, near_duplicate_similarity, words)
        problems += text_problems(data, words)
        texts = text_statistics(data, near_duplicate_similarity, words)
    problems += find_imbalance(data, imbalance_ratio)
    review = None
    if label_errors:
        found, review = find_label_errors(
            data, seed=seed, probabilities_of=probabilities_of, model=model
        )
        problems += found
    counts = {
        split: class_counts(data.arrays(split)[1], data.class_names) for split in data.split_names()
    }
    return DataReport(
        data.source,
        data.kind,
        data.class_names,
        counts,
        problems,
        fast=not label_errors,
        seconds=time.perf_counter() - started,
        label_review=review,
        texts=texts,
    )


def clean_data(
    data: LoadedData,
    report: DataReport | None = None,
    *,
    drop_duplicates: bool = True,
    drop_leaks: bool = True,
    drop_label_errors: bool = False,
) -> LoadedData:
    """A copy of `data` without extra copies of duplicates, without the training copies of
    leaked samples (so the test set stays the one the source defines), and, if asked, without
    the likely label errors in `report`. The source files are not touched."""
    if drop_duplicates:
        for problem in find_duplicates(data):
            ids = data.split_ids(problem.split)
            data = data.without(problem.split, [ids.index(problem.item)])
    if drop_leaks:
        held_out = {
            key
            for split in data.split_names()
            if split != "train"
            for key in fingerprints(data.arrays(split)[0])
        }
        leaked = [i for i, key in enumerate(fingerprints(data.x_train)) if key in held_out]
        data = data.without("train", leaked)
    if drop_label_errors and report is not None:
        for problem in report.problems:
            if problem.check == "likely_label_error":
                ids = data.split_ids(problem.split)
                if problem.item in ids:
                    data = data.without(problem.split, [ids.index(problem.item)])
    return data


def write_data_report(report: DataReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Writes `data_report.json` and `data_report.md` into `out_dir`, atomically."""
    out_dir = Path(out_dir)
    json_path = atomic_write_json(out_dir / REPORT_FILES[0], report.to_dict())
    return json_path, atomic_write_text(out_dir / REPORT_FILES[1], report.to_markdown())


def check_report_folder(
    spec: str, out_dir: str | Path, options: SourceOptions | None = None
) -> None:
    """Refuses a report folder the shared output guard refuses (`trainer.outputs`): inside the
    source, a run's or tuning folder, a device, or a folder of files trainer did not make."""
    sources = data_sources(options or SourceOptions(), ("SOURCE", str(spec)))
    check_output_folder(out_dir, "--out", sources, REPORT_FILES)


def check_source(
    spec: str,
    out_dir: str | Path = "data_report",
    options: SourceOptions | None = None,
    *,
    label_errors: bool = True,
    imbalance_ratio: float = 3.0,
    label_issues: bool = False,
    probabilities_of: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
    model: str = "",
) -> DataReport:
    """Loads `spec`, checks it and writes the two report files into `out_dir`.

    `label_errors=False` skips the likely-label-error search (the fast mode training uses);
    `label_issues=True` also writes `label_issues.csv` and `label_issues.png` (every likely
    label error ranked, the top suspects' picture). `probabilities_of` and `model`: see
    `check_data`.
    """
    check_report_folder(str(spec), out_dir, options)
    started = time.perf_counter()
    data = load_source(spec, options)
    seed = (options or SourceOptions()).seed
    report = check_data(
        data,
        label_errors=label_errors or label_issues,
        imbalance_ratio=imbalance_ratio,
        seed=seed,
        probabilities_of=probabilities_of,
        model=model,
    )
    report.seconds = time.perf_counter() - started
    write_data_report(report, out_dir)
    if label_issues:
        from trainer.data.label_issues import write_label_issues

        write_label_issues(report.label_review, data, out_dir)
    return report
