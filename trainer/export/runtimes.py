"""Exported files run through the mobile runtimes' own task APIs, as an app would run them.

LiteRT's interpreter (`trainer.export.tflite`) shows that a file computes what the Keras model
did. An app runs it through MediaPipe Tasks instead, which reads the file's metadata, refuses a
file it cannot use, normalizes the image itself and names the classes from the metadata's label
file. `mediapipe_image_check` classifies every test image through `ImageClassifier`, fed raw
uint8 RGB pixels, and compares with LiteRT on the same images: accuracy, top-1 agreement, the
largest score difference and the labels returned. A file the runtime refuses becomes a
`RuntimeCheck` that names the runtime's message; it never stops a run.

It must not convert models or write files.

Example:

    from trainer.export.runtimes import mediapipe_image_check
    check = mediapipe_image_check("runs/demo/model_int8.tflite", pixels, y_test, litert_scores)
    print(check.loaded, check.accuracy, check.agreement, check.labels, check.error)
"""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MEDIAPIPE = "MediaPipe Tasks"


@dataclasses.dataclass
class RuntimeCheck:
    """What one runtime made of one exported file on the test set."""

    runtime: str
    loaded: bool  # False: the runtime refused the file (see `error`) or is not installed
    checked: bool = True  # False: the file was not made for this runtime (`error` says why)
    error: str = ""  # the runtime's own message when it refused the file
    accuracy: float | None = None  # top-1 accuracy of the runtime's first category
    # share of examples whose first category is LiteRT's top-1 class; an exact tie in LiteRT's
    # scores (the runtime's class scores as high as LiteRT's top-1) counts as agreement
    agreement: float | None = None
    ties: int = 0  # disagreements forgiven as exact ties (LiteRT's top two scores equal)
    max_score_diff: float | None = None  # largest |runtime score - LiteRT score|
    examples: int = 0
    labels: list[str] = dataclasses.field(default_factory=list)  # category names, output order
    labels_match: bool | None = None  # whether `labels` are the run's class names, in order


def top1_agreement(runtime_top1: np.ndarray, litert_scores: np.ndarray) -> tuple[float, int]:
    """(share of examples where the runtime's top class is LiteRT's, ties forgiven; the number
    of forgiven ties). A tie: LiteRT scores the runtime's class exactly as high as its own
    top-1, so either answer is right (quantized probabilities tie more often than logits)."""
    litert_scores = np.asarray(litert_scores)
    rows = np.arange(len(litert_scores))
    same = runtime_top1 == np.argmax(litert_scores, axis=-1)
    tied = ~same & (litert_scores[rows, runtime_top1] == litert_scores.max(axis=-1))
    return float(np.mean(same | tied)), int(np.sum(tied))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


def mediapipe_check(
    create: Callable[[], Any],
    classify: Callable[[Any, Any], list],
    inputs: Sequence,
    y: np.ndarray,
    litert_scores: np.ndarray,
) -> RuntimeCheck:
    """Runs a MediaPipe Tasks classifier on every one of `inputs` and compares its answers
    with `litert_scores` (LiteRT's outputs on the same inputs, N x classes): accuracy against
    `y`, top-1 agreement, the largest score difference and the labels it returned.
    `create()` makes the classifier (a file it refuses gives `loaded=False` with the
    runtime's message); `classify(classifier, item)` is one input's categories, by score.
    The image and text checks differ only in these two functions."""
    from trainer.export.tflite import quiet_native_output

    scores = np.zeros(np.shape(litert_scores), np.float32)
    top1 = np.zeros(len(inputs), np.int64)
    names: dict[int, str] = {}
    with quiet_native_output():
        try:
            classifier = create()
        except (RuntimeError, ValueError) as error:
            message = _first_line(error)
            return RuntimeCheck(MEDIAPIPE, loaded=False, error=message, examples=len(inputs))
        with classifier:
            for row, item in enumerate(inputs):
                categories = classify(classifier, item)
                top1[row] = categories[0].index  # sorted by score: the app's answer
                for category in categories:
                    scores[row, category.index] = category.score
                    names.setdefault(category.index, category.category_name)
    agreement, ties = top1_agreement(top1, litert_scores)
    return RuntimeCheck(
        runtime=MEDIAPIPE,
        loaded=True,
        accuracy=float(np.mean(top1 == np.asarray(y))),
        agreement=agreement,
        ties=ties,
        max_score_diff=float(np.max(np.abs(scores - litert_scores))),
        examples=len(inputs),
        labels=[names.get(index, "") for index in range(scores.shape[-1])],
    )


def mediapipe_image_check(
    path: str | Path, pixels: np.ndarray, y: np.ndarray, litert_scores: np.ndarray
) -> RuntimeCheck:
    """Classifies every image of `pixels` (N x H x W x 3 uint8 RGB) with MediaPipe Tasks'
    `ImageClassifier` loaded from the file at `path`, all categories per image, and compares
    with `litert_scores` (LiteRT's outputs on the same images, N x classes)."""
    try:
        import mediapipe as mp
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import ImageClassifier, ImageClassifierOptions
    except ImportError as error:
        message = f"mediapipe is not installed ({error}): pip install mediapipe==1.2.3"
        return RuntimeCheck(MEDIAPIPE, loaded=False, error=message)
    options = ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))

    def classify(classifier, image: np.ndarray) -> list:
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        return classifier.classify(frame).classifications[0].categories

    return mediapipe_check(
        lambda: ImageClassifier.create_from_options(options),
        classify,
        np.asarray(pixels, np.uint8),
        y,
        litert_scores,
    )
