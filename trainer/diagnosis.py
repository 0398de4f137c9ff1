"""Reads train and validation curves and says what went wrong, with remedies.

`diagnose(history)` looks at per-epoch `loss`, `val_loss` and an accuracy metric if present,
and returns findings: divergence, a learning rate too high or too low, overfitting and
underfitting, or a good fit. Each finding states what was seen, with the numbers, and the
remedies that usually help. The rules are heuristics with named thresholds (`Thresholds`),
written so that a person can check them against the plot. `FitDiagnosis` in
`trainer.callbacks` runs this during and after `model.fit`. This module must not train.

Example:

    >>> from trainer.diagnosis import diagnose, format_findings
    >>> history = {"loss": [1.0, 0.6, 0.4, 0.3, 0.2, 0.1],
    ...            "val_loss": [1.0, 0.7, 0.6, 0.7, 0.8, 1.0]}
    >>> findings = diagnose(history)
    >>> findings[0].kind
    'overfitting'
    >>> print(format_findings(findings))
    - **overfitting** (epoch 6): validation loss was lowest at epoch 3 (0.6) and rose to 1 ...
      - more data or stronger augmentation
      ...
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

REMEDIES = {
    "divergence": [
        "lower the learning rate (3-10x)",
        "clip gradients (clipnorm=1.0)",
        "add or lengthen learning-rate warmup",
        "check the inputs for NaN/inf and their scale",
    ],
    "learning_rate_too_high": [
        "lower the learning rate (3-10x) or use the LR finder (`trainer lr-find`)",
        "add learning-rate warmup and a decaying schedule",
        "clip gradients (clipnorm=1.0)",
    ],
    "learning_rate_too_low": [
        "raise the learning rate (3-10x) or use the LR finder (`trainer lr-find`)",
        "train longer",
    ],
    "overfitting": [
        "more data or stronger augmentation",
        "stronger regularization: higher dropout, weight decay or L2, label smoothing",
        "early stopping with restore_best_weights (keep the best validation epoch)",
        "a smaller model",
    ],
    "underfitting": [
        "a bigger model (more width or depth)",
        "train longer, with a higher or better-scheduled learning rate",
        "lower regularization: less dropout, weight decay, L2 or augmentation",
    ],
    "evaluation_at_chance": [
        "if training accuracy is high: batch-norm moving statistics lag the weights on short "
        "runs; keep `batch_norm_momentum=0` (derived from the step count) or lower it to 0.9",
        "train more epochs or use a smaller batch size (more steps)",
        "check that the test data is preprocessed like the training data (size, channels, scale)",
        "check the labels with `trainer data check`",
    ],
    "good_fit": [],
}

# A model scoring within this many points of the majority-class share has learned nothing usable.
CHANCE_MARGIN = 0.02


@dataclass
class Thresholds:
    """The numbers behind each verdict; change them to make the diagnosis stricter or looser."""

    min_epochs: int = 3  # fewer epochs than this: no verdict on trends
    explode_factor: float = 10.0  # train loss this many times its minimum: diverged
    rise_factor: float = 1.2  # train loss this far above its minimum: LR too high
    val_rise: float = 0.05  # validation loss 5% above its minimum...
    val_patience: int = 2  # ...at least this many epochs after it: overfitting
    slow_total_drop: float = 0.10  # train loss fell under 10% while still falling: LR too low
    steady_ratio: float = 0.5  # last epoch's drop at least half the first one's: still falling
    plateau_window: int = 3  # epochs over which a plateau is measured
    plateau_drop: float = 0.02  # train loss fell under 2% over the window: plateau
    high_accuracy: float = 0.90  # train accuracy under this counts as "high loss"


@dataclass
class Finding:
    """One verdict: its kind, what was seen (with numbers), the epoch, and what to try."""

    kind: str
    message: str
    epoch: int
    remedies: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"[{self.kind}] epoch {self.epoch}: {self.message}"
        if self.remedies:
            text += " Try: " + "; ".join(self.remedies) + "."
        return text


def _accuracy_key(history: Mapping[str, Sequence[float]]) -> str | None:
    for key in history:
        if not key.startswith("val_") and ("accuracy" in key or key == "acc"):
            return key
    return None


def _finding(kind: str, message: str, epoch: int) -> Finding:
    return Finding(kind, message, epoch, list(REMEDIES[kind]))


def diagnose(
    history: Mapping[str, Sequence[float]], thresholds: Thresholds | None = None
) -> list[Finding]:
    """Findings for a training history (`History.history` or the columns of history.csv).

    Args:
        history: per-epoch values; needs `loss`, uses `val_loss` and `*accuracy` if present.
        thresholds: the heuristics' numbers; defaults to `Thresholds()`.

    Returns:
        Findings, most serious first; a single `good_fit` finding when nothing is wrong.

    Raises:
        ValueError: `history` has no `loss` column.
    """
    limits = thresholds or Thresholds()
    if "loss" not in history:
        raise ValueError(f"history needs a 'loss' column, received keys {sorted(history)}")
    loss = [float(value) for value in history["loss"]]
    val_loss = [float(value) for value in history.get("val_loss", [])]
    if not loss:
        return []
    epochs = len(loss)
    for index, value in enumerate(loss):
        if not math.isfinite(value):
            return [_finding("divergence", f"train loss became {value} (not finite).", index + 1)]
    best = min(loss)
    if epochs >= 2 and loss[-1] > limits.explode_factor * best and loss[-1] > loss[0]:
        message = f"train loss exploded to {loss[-1]:.4g}, {loss[-1] / best:.0f}x its minimum."
        return [_finding("divergence", message, epochs)]
    if epochs < limits.min_epochs:
        return []

    findings = []
    best_epoch = loss.index(best)
    if loss[-1] > limits.rise_factor * best:
        findings.append(
            _finding(
                "learning_rate_too_high",
                f"train loss rose from {best:.4g} (epoch {best_epoch + 1}) to {loss[-1]:.4g}: "
                "the optimizer is overshooting.",
                epochs,
            )
        )
    total_drop = 1.0 - loss[-1] / loss[0] if loss[0] > 0 else 0.0
    always_falling = all(after < before for before, after in zip(loss, loss[1:], strict=False))
    # Too small a step falls at a steady pace; a model at its limit falls ever less (plateau).
    steady = always_falling and loss[-2] - loss[-1] >= limits.steady_ratio * (loss[0] - loss[1])
    if steady and total_drop < limits.slow_total_drop:
        findings.append(
            _finding(
                "learning_rate_too_low",
                f"train loss fell at a steady pace every epoch but only {total_drop:.1%} in "
                f"{epochs} epochs ({loss[0]:.4g} -> {loss[-1]:.4g}).",
                epochs,
            )
        )
        return findings

    if len(val_loss) == epochs:
        overfit = _overfitting(loss, val_loss, limits)
        if overfit:
            findings.append(overfit)
    if not findings:
        underfit = _underfitting(history, loss, val_loss, limits)
        if underfit:
            findings.append(underfit)
    if not findings:
        val_text = f", validation loss {val_loss[-1]:.4g}" if val_loss else ""
        findings.append(
            _finding("good_fit", f"train loss {loss[-1]:.4g}{val_text}; no problem seen.", epochs)
        )
    return findings


def _overfitting(loss: list[float], val_loss: list[float], limits: Thresholds) -> Finding | None:
    best_val = min(val_loss)
    best_epoch = val_loss.index(best_val)
    epochs_since = len(val_loss) - 1 - best_epoch
    rose = val_loss[-1] > best_val * (1.0 + limits.val_rise)
    train_kept_falling = loss[-1] < loss[best_epoch]
    if not (epochs_since >= limits.val_patience and rose and train_kept_falling):
        return None
    gap_then = val_loss[best_epoch] - loss[best_epoch]
    gap_now = val_loss[-1] - loss[-1]
    finding = _finding(
        "overfitting",
        f"validation loss was lowest at epoch {best_epoch + 1} ({best_val:.4g}) and rose to "
        f"{val_loss[-1]:.4g} while train loss kept falling to {loss[-1]:.4g}; the "
        f"validation-train gap widened from {gap_then:.4g} to {gap_now:.4g}.",
        len(loss),
    )
    if best_epoch == 0:
        # Validation never improved at all: as often a pipeline or batch-norm problem as overfitting.
        finding.remedies.append(
            "validation never improved: check that validation data is preprocessed like the "
            "training data, and that batch-norm statistics settle (batch-norm momentum 0.9 "
            "for runs of a few hundred steps)"
        )
    return finding


def _underfitting(
    history: Mapping[str, Sequence[float]],
    loss: list[float],
    val_loss: list[float],
    limits: Thresholds,
) -> Finding | None:
    window = limits.plateau_window
    if len(loss) <= window:
        return None
    plateau_start = None
    for end in range(window, len(loss)):
        start_value = loss[end - window]
        if start_value > 0 and 1.0 - loss[end] / start_value < limits.plateau_drop:
            plateau_start = end - window
            break
    if plateau_start is None or plateau_start > len(loss) // 2:
        return None  # still improving, or it levelled off late (converged)
    accuracy_key = _accuracy_key(history)
    if accuracy_key:
        accuracy = float(history[accuracy_key][-1])
        if accuracy >= limits.high_accuracy:
            return None
        level = f"train {accuracy_key} {accuracy:.3f}"
    else:
        level = f"train loss {loss[-1]:.4g}"
    val_text = f" and validation loss {val_loss[-1]:.4g} is close to it" if val_loss else ""
    if val_loss and val_loss[-1] > loss[-1] * 1.5:
        return None  # a large gap is not underfitting
    return _finding(
        "underfitting",
        f"train loss plateaued from epoch {plateau_start + 1} at {loss[-1]:.4g} ({level})"
        f"{val_text}: the model is not fitting even the training data.",
        len(loss),
    )


def majority_share(labels: Sequence[int]) -> float:
    """The accuracy of always predicting the most frequent class: the chance level."""
    counts: dict[int, int] = {}
    for label in labels:
        counts[int(label)] = counts.get(int(label), 0) + 1
    return max(counts.values()) / len(labels) if counts else 0.0


def at_chance(accuracy: float, labels: Sequence[int], margin: float = CHANCE_MARGIN) -> bool:
    """True when `accuracy` on `labels` is no better than the majority class plus `margin`."""
    return accuracy <= majority_share(labels) + margin


def chance_finding(
    test_accuracy: float,
    test_labels: Sequence[int],
    train_accuracy: float | None = None,
    epoch: int = 0,
) -> Finding | None:
    """A loud finding when the test accuracy is at chance level, else None.

    Training accuracy well above chance at the same time means evaluation collapsed (on short
    runs, usually batch-norm statistics that never caught up with the weights).
    """
    if not at_chance(test_accuracy, test_labels):
        return None
    chance = majority_share(test_labels)
    seen = f"test accuracy {test_accuracy:.1%} is at chance level (majority class {chance:.1%})"
    if train_accuracy is not None and train_accuracy > chance + 0.2:
        seen += (
            f" while training accuracy reached {train_accuracy:.1%}: the model does not "
            "generalize at all, so do not ship, compress or export it."
        )
    else:
        seen += ": the model learned nothing usable."
    return _finding("evaluation_at_chance", seen, epoch)


def format_findings(findings: Sequence[Finding]) -> str:
    """Markdown for report.md: one bullet per finding with its remedies."""
    if not findings:
        return "Too few epochs to judge the curves."
    lines = []
    for finding in findings:
        lines.append(
            f"- **{finding.kind.replace('_', ' ')}** (epoch {finding.epoch}): {finding.message}"
        )
        lines += [f"  - {remedy}" for remedy in finding.remedies]
    return "\n".join(lines)
