"""Plots: every PNG the framework writes (learning curves, confusion matrix, per-class accuracy,
accuracy vs size, LR finder), drawn with matplotlib's file-only Agg backend.

This module draws numbers that other modules measured; it must not train, convert or evaluate.
Each function writes its PNG atomically and returns the path.

Example:

    from trainer.plots import plot_learning_curves
    history = model.fit(x, y, validation_split=0.1, epochs=5)
    plot_learning_curves(history.history, "curves.png")
"""

import io
from collections.abc import Sequence
from pathlib import Path

from trainer.files import atomic_write_bytes


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as pyplot

    return pyplot


def save_figure(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_learning_curves(history: dict[str, Sequence[float]], path: str | Path) -> Path:
    """Plots loss and every metric, train vs validation, with the learning rate on a second axis.

    Args:
        history: `History.history` (or `history.csv` columns): `loss`, `val_loss`, metrics,
            and optionally `learning_rate`.
        path: PNG file to write.
    """
    # A logistic regression's history (trainer.logistic_regression) has a row per C instead.
    by_c = "inverse_regularization" in history
    skipped = ("learning_rate", "inverse_regularization")
    names = [key for key in history if not key.startswith("val_") and key not in skipped]
    names.sort(key=lambda name: name != "loss")
    if not names:
        raise ValueError(f"history has no metrics to plot; keys: {sorted(history)}")
    plt = pyplot()
    figure, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        epochs = history["inverse_regularization"] if by_c else range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], "o-", label=f"train {name}", markersize=3)
        if f"val_{name}" in history:
            axis.plot(
                epochs, history[f"val_{name}"], "s-", label=f"validation {name}", markersize=3
            )
        axis.set_xlabel("C (inverse L2 strength)" if by_c else "epoch")
        if by_c:
            axis.set_xscale("log")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        lines, labels = axis.get_legend_handles_labels()
        if "learning_rate" in history:
            rate_axis = axis.twinx()
            rate_axis.plot(epochs, history["learning_rate"], color="gray", ls=":", label="lr")
            rate_axis.set_ylabel("learning rate", color="gray")
            more_lines, more_labels = rate_axis.get_legend_handles_labels()
            lines, labels = lines + more_lines, labels + more_labels
        axis.legend(lines, labels, fontsize=8, loc="best")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_accuracy_vs_size(
    points: Sequence[tuple[str, int, float, bool]],
    reference_accuracy: float,
    budget_pp: float,
    path: str | Path,
    size_label: str = "size",
) -> Path:
    """Plots accuracy against file size for compressed candidates, with the budget line.

    Args:
        points: `(label, size_bytes, accuracy, within_budget)` per candidate; accuracy in [0, 1].
        reference_accuracy: the uncompressed model's accuracy on the same data.
        budget_pp: allowed drop in percentage points; drawn as a dashed line below the reference.
        path: PNG file to write.
        size_label: what the sizes are, for the x axis ("size", "gzip size").
    """
    if not points:
        raise ValueError("plot_accuracy_vs_size needs at least one candidate, received none")
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    for label, size, accuracy, within in points:
        axis.scatter(size / 1024, accuracy * 100, color="tab:green" if within else "tab:red", s=30)
        axis.annotate(
            label,
            (size / 1024, accuracy * 100),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    axis.axhline(reference_accuracy * 100, color="gray", lw=1, label="uncompressed")
    axis.axhline(
        (reference_accuracy * 100) - budget_pp,
        color="gray",
        ls="--",
        lw=1,
        label=f"budget (-{budget_pp:g} pp)",
    )
    axis.set_xscale("log")
    axis.set_xlabel(f"{size_label} (KiB, log scale)")
    axis.set_ylabel("accuracy (%)")
    axis.set_title("accuracy vs size (green: within budget, red: over)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return save_figure(figure, path)


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_classes: int):
    """Counts: row = true class, column = predicted class (a NumPy int array)."""
    import numpy as np

    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions differ in length: {labels.shape[0]} vs {predictions.shape[0]}"
        )
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes}), received values from "
                f"{values.min()} to {values.max()}"
            )
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def plot_confusion_matrix(
    labels: Sequence[int], predictions: Sequence[int], class_names: Sequence[str], path: str | Path
) -> Path:
    """Writes the confusion matrix as a PNG: each row normalized to the true class's share,
    with the counts printed in the cells."""
    import numpy as np

    matrix = confusion_matrix(labels, predictions, len(class_names))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    plt = pyplot()
    size = max(4.0, 0.55 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the true class")
    ticks = range(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(ticks, class_names, fontsize=8)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    if len(class_names) <= 20:
        for row in ticks:
            for column in ticks:
                color = "white" if shares[row, column] > 0.5 else "black"
                axis.text(
                    column,
                    row,
                    str(matrix[row, column]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=color,
                )
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    axis.set_title(f"confusion matrix (accuracy {accuracy:.2%})")
    figure.tight_layout()
    return save_figure(figure, path)


def per_class_accuracy(labels: Sequence[int], predictions: Sequence[int], num_classes: int):
    """Recall per class (correct / examples of that class); NaN for a class with no examples."""
    import numpy as np

    matrix = confusion_matrix(labels, predictions, num_classes)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def plot_per_class_accuracy(
    labels: Sequence[int], predictions: Sequence[int], class_names: Sequence[str], path: str | Path
) -> Path:
    """Writes a horizontal bar chart of each class's accuracy, worst class at the top."""
    import numpy as np

    accuracy = per_class_accuracy(labels, predictions, len(class_names))
    order = np.argsort(np.nan_to_num(accuracy, nan=-1.0))[::-1]
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, max(2.5, 0.32 * len(class_names) + 1)))
    values = np.nan_to_num(accuracy[order], nan=0.0)
    axis.barh([class_names[index] for index in order], values, color="tab:blue")
    overall = float(np.mean(np.asarray(labels) == np.asarray(predictions)))
    axis.axvline(overall, color="gray", ls="--")
    for position, value in enumerate(values):
        axis.text(min(value + 0.01, 0.9), position, f"{value:.1%}", va="center", fontsize=7)
    axis.set_xlim(0, 1)
    axis.set_xlabel("accuracy on the class")
    axis.set_title(f"per-class accuracy (dashed: overall {overall:.2%})")
    figure.tight_layout()
    return save_figure(figure, path)


def plot_image_grid(
    images: Sequence,
    titles: Sequence[str],
    path: str | Path,
    title: str = "",
    columns: int = 8,
) -> Path:
    """Writes images in a grid, each under its title (e.g. "given -> suggested").

    Args:
        images: HxW, HxWx1 or HxWx3 arrays; uint8 shown as is, other types stretched from
            their own minimum to maximum (preprocessed model inputs).
        titles: one per image; may hold a line break.
        path: PNG file to write.
        title: the figure's title.
        columns: images per row at most.
    """
    import numpy as np

    if not len(images) or len(images) != len(titles):
        raise ValueError(
            f"plot_image_grid needs as many titles as images (at least one), received "
            f"{len(images)} images and {len(titles)} titles"
        )
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    plt = pyplot()
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.7 * columns, 1.95 * rows + 0.4), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, image, caption in zip(axes.ravel(), images, titles, strict=False):
        image = np.asarray(image)
        top = 255
        if image.dtype != np.uint8:
            low, high = float(image.min()), float(image.max())
            image, top = (image.astype(np.float32) - low) / max(high - low, 1e-12), 1
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=top)
        axis.set_title(caption, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_confident_errors(
    images: Sequence,
    labels: Sequence[int],
    predictions: Sequence[int],
    confidences: Sequence[float],
    class_names: Sequence[str],
    path: str | Path,
) -> Path:
    """Writes a grid of test errors, each titled with its true class, the predicted class and
    the probability the model gave it (the caller orders them, surest first)."""
    titles = [
        f"true {class_names[label]}\npredicted {class_names[predicted]} ({confidence:.0%})"
        for label, predicted, confidence in zip(labels, predictions, confidences, strict=True)
    ]
    title = "the test errors the model was surest of"
    return plot_image_grid(images, titles, path, title=title)
