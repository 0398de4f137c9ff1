"""Label review: the samples whose given label looks wrong, ranked by cleanlab.

A quick model scores every sample it did not train on: a logistic regression (scikit-learn)
on 16x16 grey pixels and gradient-orientation histograms (plus a 4x4 colour thumbnail for
colour images), on TF-IDF word weights for texts, or on standardized columns for tables,
fitted in k folds so that each sample's class probabilities are out-of-fold. A trained run's model can give the probabilities instead
(`trainer data check SOURCE --label_issues=true --model=RUN_DIR`; the command computes them).
cleanlab's `find_label_issues` (confident learning: the per-class thresholds and the noise
rates it estimates from the probabilities) picks the likely label errors, ranked by
self-confidence, the probability of the given label; the suggested label is the most likely
other class. `write_label_issues` writes `label_issues.csv` (every issue, ranked) and, for
images, `label_issues.png` (the top suspects, titled "given -> suggested").

cleanlab is a dependency of trainer, imported only when a review runs. This module reads data
and writes the review's two files; it must not change the source.

Example:

    >>> import numpy as np
    >>> from trainer.data.types import LoadedData
    >>> from trainer.data.label_issues import review_labels
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(200) % 2
    >>> x = np.stack([y + rng.normal(0, 0.3, 200), rng.normal(0, 1, 200)], axis=1)
    >>> y[[3, 8]] = 1 - y[[3, 8]]  # two flipped labels
    >>> data = LoadedData("tabular", ["a", "b"], x[:160], y[:160], x[160:], y[160:])
    >>> review = review_labels(data)
    >>> sorted((issue.item, issue.given, issue.suggested) for issue in review.issues)
    [('train[3]', 0, 1), ('train[8]', 1, 0)]
"""

import csv
import dataclasses
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from trainer.data.types import LoadedData
from trainer.files import atomic_write_text

LABEL_ISSUES_CSV = "label_issues.csv"
LABEL_ISSUES_PNG = "label_issues.png"
CLEANLAB_HINT = (
    "the label review needs cleanlab, a dependency of trainer that is missing here: "
    "pip install cleanlab==2.9.0 (or reinstall trainer: make setup)"
)


@dataclasses.dataclass
class LabelIssue:
    """One likely label error: where it is, its given and suggested class ids, and cleanlab's
    label quality score (the out-of-fold probability of the given label; low = suspect)."""

    rank: int  # 1 = the most likely error
    item: str  # the sample's path or id, as the data report names it
    split: str
    row: int  # index in its split
    given: int
    suggested: int
    score: float
    suggested_probability: float


@dataclasses.dataclass
class LabelReview:
    """What `review_labels` found over `samples` samples, with how the probabilities were made."""

    issues: list[LabelIssue]
    class_names: list[str]
    samples: int
    model: str

    def top_items(self, count: int) -> list[str]:
        return [issue.item for issue in self.issues[:count]]


def cleanlab_filter():
    """cleanlab's `filter` module, or a ValueError that says how to install it."""
    try:
        from cleanlab import filter as cleanlab_filter_module
    except ImportError:
        raise ValueError(CLEANLAB_HINT) from None
    return cleanlab_filter_module


def pooled_samples(
    data: LoadedData, max_samples: int = 10000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """Every split's samples in one pool (at most `max_samples`, drawn at random), with
    (split, row) for each."""
    positions = [
        (split, row) for split in data.split_names() for row in range(len(data.arrays(split)[1]))
    ]
    if len(positions) > max_samples:
        chosen = np.sort(np.random.default_rng(seed).choice(len(positions), max_samples, False))
        positions = [positions[index] for index in chosen]
    x = np.concatenate(
        [
            data.arrays(split)[0][[row for name, row in positions if name == split]]
            for split in data.split_names()
        ]
    )
    y = np.array([data.arrays(split)[1][row] for split, row in positions], np.int64)
    return x, y, positions


def quick_features(kind: str, x: np.ndarray):
    """What the quick model sees: for images 16x16 grey pixels, gradient-orientation
    histograms (9 orientations in each of 8x8 cells of a 32x32 grey copy: shapes and edges)
    and, for colour images, a 4x4 colour thumbnail; TF-IDF for texts; standardized columns for
    tables."""
    if kind == "image":
        from PIL import Image

        pictures = [
            Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
            for image in np.asarray(x, np.uint8)
        ]
        small = _grey(pictures, 16).reshape(len(pictures), -1)
        parts = [small, orientation_histograms(_grey(pictures, 32))]
        if np.asarray(x).shape[-1] == 3:
            colour = [np.asarray(picture.resize((4, 4), Image.BOX)) for picture in pictures]
            parts.append(np.stack(colour).reshape(len(pictures), -1) / 255.0)
        return np.hstack(parts).astype(np.float32)
    if kind == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(sublinear_tf=True, max_features=50000).fit_transform(list(x))
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(np.asarray(x, np.float64))


def _grey(pictures: list, size: int) -> np.ndarray:
    from PIL import Image

    resized = [picture.convert("L").resize((size, size), Image.BOX) for picture in pictures]
    return np.stack([np.asarray(picture, np.float32) for picture in resized]) / 255.0


def orientation_histograms(grey: np.ndarray, cells: int = 8, bins: int = 9) -> np.ndarray:
    """Per image, the gradient magnitude summed by orientation (`bins` over 0-180 degrees) in
    each of `cells` x `cells` cells, normalized to unit length (a plain HOG descriptor).

    Example:
        >>> stripes = np.tile([0.0, 1.0], (1, 16, 8))  # one 16x16 image, vertical stripes
        >>> orientation_histograms(stripes, cells=2, bins=4).reshape(4, 4).argmax(axis=1)
        array([0, 0, 0, 0])
    """
    gradient_y, gradient_x = np.gradient(grey, axis=(1, 2))
    magnitude = np.hypot(gradient_x, gradient_y)
    angle = np.mod(np.arctan2(gradient_y, gradient_x), np.pi)
    bin_of = np.minimum((angle / np.pi * bins).astype(np.int64), bins - 1)
    count, height, width = grey.shape
    cell_y, cell_x = height // cells, width // cells
    cell_of = (np.arange(height) // cell_y).clip(max=cells - 1)[:, None] * cells + (
        np.arange(width) // cell_x
    ).clip(max=cells - 1)[None, :]
    index = cell_of[None] * bins + bin_of  # (count, height, width) -> cell * bins + bin
    histograms = np.zeros((count, cells * cells * bins), np.float64)
    rows = np.repeat(np.arange(count), height * width)
    np.add.at(histograms, (rows, index.ravel()), magnitude.ravel())
    return histograms / (np.linalg.norm(histograms, axis=1, keepdims=True) + 1e-6)


def quick_model(kind: str):
    """The quick model: a logistic regression, after scaling for image features (whose
    pixels and histograms differ in range), more regularized there (many correlated inputs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "image":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    return LogisticRegression(max_iter=300)


def out_of_fold_probabilities(
    kind: str, features, labels: np.ndarray, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Class probabilities of each sample from the quick model fitted on the other folds
    (stratified k-fold; columns are the sorted classes present in `labels`)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # One BLAS thread: on a busy machine more threads only spin (measured: 38 s of CPU
    # instead of 1.8 s for 1,000 images).
    with warnings.catch_warnings(), threadpool_limits(1):
        # Ranking needs good probabilities, not a converged optimum: keep the terminal quiet.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_val_predict(
            quick_model(kind), features, labels, cv=splitter, method="predict_proba"
        )


def review_labels(
    data: LoadedData,
    *,
    probabilities_of: Callable[[np.ndarray, list[str]], np.ndarray] | None = None,
    model: str = "",
    max_samples: int = 10000,
    seed: int = 0,
    folds: int = 5,
) -> LabelReview:
    """Finds and ranks the likely label errors of `data` with cleanlab.

    Args:
        data: the loaded source; every split is reviewed together.
        probabilities_of: a function of (samples as `data` holds them, class names) that returns
            their probabilities, one column per class name, e.g. from a trained run's model;
            None = out-of-fold probabilities of the quick model.
        model: what `probabilities_of` computes with, for the report.
        max_samples: at most this many samples, drawn at random, are reviewed.
        seed: seeds the draw and the folds.
        folds: k of the k-fold quick model (fewer when a class has fewer samples).
    """
    find = cleanlab_filter()
    x, y, positions = pooled_samples(data, max_samples, seed)
    classes, counts = np.unique(y, return_counts=True)
    # A class needs two samples to be held out once and trained on once.
    usable = np.isin(y, classes[counts >= 2])
    present = np.unique(y[usable])
    if len(present) < 2:
        return LabelReview([], list(data.class_names), int(usable.sum()), "none: too few samples")
    labels = np.searchsorted(present, y[usable])  # 0..K-1, as cleanlab wants
    if probabilities_of is None:
        folds = int(min(folds, counts[counts >= 2].min()))
        features = quick_features(data.kind, x)[usable]
        probabilities = out_of_fold_probabilities(data.kind, features, labels, folds, seed)
        what = quick_model_name(data.kind, folds)
    else:
        probabilities = np.asarray(probabilities_of(x[usable], list(data.class_names)), float)
        probabilities = probabilities[:, present]
        probabilities /= np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)
        what = model or "the given model's probabilities"
    ranked = find.find_label_issues(
        labels, probabilities, return_indices_ranked_by="self_confidence"
    )
    kept = [positions[index] for index in np.flatnonzero(usable)]
    ids = {split: data.split_ids(split) for split in data.split_names()}
    issues = []
    for rank, index in enumerate(ranked, start=1):
        others = probabilities[index].copy()
        others[labels[index]] = -1.0
        split, row = kept[index]
        issues.append(
            LabelIssue(
                rank,
                ids[split][row],
                split,
                row,
                int(present[labels[index]]),
                int(present[others.argmax()]),
                float(probabilities[index, labels[index]]),
                float(others.max()),
            )
        )
    return LabelReview(issues, list(data.class_names), len(kept), what)


def quick_model_name(kind: str, folds: int) -> str:
    inputs = {"image": "grey pixels and gradient histograms", "text": "TF-IDF words"}.get(
        kind, "scaled columns"
    )
    return f"logistic regression on {inputs}, {folds}-fold out-of-fold probabilities"


def label_issues_csv(review: LabelReview) -> str:
    """`label_issues.csv`: one row per likely error, most likely first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "rank",
            "path",
            "split",
            "given_label",
            "suggested_label",
            "score",
            "suggested_probability",
        ]
    )
    names = review.class_names
    for issue in review.issues:
        writer.writerow(
            [
                issue.rank,
                issue.item,
                issue.split,
                names[issue.given],
                names[issue.suggested],
                f"{issue.score:.4f}",
                f"{issue.suggested_probability:.4f}",
            ]
        )
    return buffer.getvalue()


def write_label_issues(
    review: LabelReview, data: LoadedData, out_dir: str | Path, count: int = 24
) -> list[Path]:
    """Writes `label_issues.csv` and, for images, `label_issues.png` (the `count` top
    suspects) into `out_dir`; returns the paths written."""
    out_dir = Path(out_dir)
    written = [atomic_write_text(out_dir / LABEL_ISSUES_CSV, label_issues_csv(review))]
    if data.kind != "image" or not review.issues:
        return written
    from trainer.plots import plot_image_grid

    shown = review.issues[:count]
    images = [data.arrays(issue.split)[0][issue.row] for issue in shown]
    titles = [suspect_title(issue, review.class_names) for issue in shown]
    written.append(
        plot_image_grid(
            images,
            titles,
            out_dir / LABEL_ISSUES_PNG,
            title=f"top {len(shown)} of {len(review.issues)} likely label errors "
            "(given -> suggested, probability of the given label)",
        )
    )
    return written


def suspect_title(issue: LabelIssue, class_names: Sequence[str]) -> str:
    """A suspect's title: rank, given -> suggested, and the given label's probability to two
    significant digits (the top suspects' are all near 0), e.g. "#1 Shirt -> Coat", "p=0.0031"."""
    given, suggested = class_names[issue.given], class_names[issue.suggested]
    return f"#{issue.rank} {given} -> {suggested}\np={issue.score:.2g}"
