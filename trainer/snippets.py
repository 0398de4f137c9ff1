"""How to run an exported file in an app: the "use this file" section of a run's report.

It picks the file an app should take (the smallest one MediaPipe Tasks loaded within its
accuracy budget) and shows it, by its exact name, in MediaPipe Tasks' `ImageClassifier` or
`TextClassifier` from Python and from Android (Kotlin, the Tasks API). The Python snippets are
run by tests; the Kotlin ones are written against the Tasks API and not compiled here. Numbers
come from `metrics.json`'s exports; this module must not run models.

Example:

    from trainer.snippets import usage_snippet
    print(usage_snippet(metrics["exports"]))
"""

import json
from pathlib import Path

USE_HEADING = "Use the exported file"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def read_sidecar(export: dict) -> dict:
    """The sidecar JSON beside an exported file ({} when it is missing)."""
    path = Path(export.get("sidecar_path") or "")
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _chosen_file(exports: list[dict]) -> dict | None:
    """The file an app should take: the smallest that MediaPipe loaded within its budget."""
    usable = [
        export
        for export in exports
        if export.get("within_budget", True) and (export.get("mediapipe") or {}).get("loaded")
    ]
    return min(usable, key=lambda export: export["size_bytes"]) if usable else None


PYTHON_IMAGE = """```python
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions, vision

options = vision.ImageClassifierOptions(
    base_options=BaseOptions(model_asset_path="{file}"), max_results=3
)
with vision.ImageClassifier.create_from_options(options) as classifier:
    result = classifier.classify(mp.Image.create_from_file("photo.jpg"))
for category in result.classifications[0].categories:
    print(category.category_name, round(category.score, 3))
```"""

PYTHON_TEXT = """```python
from mediapipe.tasks.python import BaseOptions, text

options = text.TextClassifierOptions(
    base_options=BaseOptions(model_asset_path="{file}"), max_results=3
)
with text.TextClassifier.create_from_options(options) as classifier:
    result = classifier.classify("{example}")
for category in result.classifications[0].categories:
    print(category.category_name, round(category.score, 3))
```"""

KOTLIN_IMAGE = """```kotlin
// app/build.gradle: implementation("com.google.mediapipe:tasks-vision:0.10.+")
// {file} goes in app/src/main/assets/
import com.google.mediapipe.framework.image.BitmapImageBuilder
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.vision.imageclassifier.ImageClassifier

val options = ImageClassifier.ImageClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("{file}").build())
    .setMaxResults(3)
    .build()
val classifier = ImageClassifier.createFromOptions(context, options)
val result = classifier.classify(BitmapImageBuilder(bitmap).build())
for (category in result.classificationResult().classifications()[0].categories()) {{
    Log.i("classifier", "${{category.categoryName()}} ${{category.score()}}")
}}
```"""

KOTLIN_TEXT = """```kotlin
// app/build.gradle: implementation("com.google.mediapipe:tasks-text:0.10.+")
// {file} goes in app/src/main/assets/
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.text.textclassifier.TextClassifier

val options = TextClassifier.TextClassifierOptions.builder()
    .setBaseOptions(BaseOptions.builder().setModelAssetPath("{file}").build())
    .setMaxResults(3)
    .build()
val classifier = TextClassifier.createFromOptions(context, options)
val result = classifier.classify("{example}")
for (category in result.classificationResult().classifications()[0].categories()) {{
    Log.i("classifier", "${{category.categoryName()}} ${{category.score()}}")
}}
```"""


def usage_snippet(exports: list[dict]) -> str:
    """The report's "use this file" section: MediaPipe Tasks from Python and from Android
    (Kotlin) on the file an app should take, or why no file is ready for MediaPipe."""
    chosen = _chosen_file(exports)
    if chosen is None:
        reasons = [
            f"{export['format']}: {(export.get('mediapipe') or {}).get('error') or 'not checked'}"
            for export in exports
        ]
        return (
            "No exported file both loaded in MediaPipe Tasks and stayed within its accuracy "
            f"budget ({'; '.join(reasons)}). Run the files with LiteRT "
            "(`ai_edge_litert.interpreter.Interpreter`), feeding the input described in each "
            "file's sidecar JSON, or use `trainer predict`."
        )
    file = Path(chosen["path"]).name
    sidecar = read_sidecar(chosen)
    is_text = bool(sidecar.get("text"))
    python, kotlin = (PYTHON_TEXT, KOTLIN_TEXT) if is_text else (PYTHON_IMAGE, KOTLIN_IMAGE)
    example = "a wonderful film"
    if is_text:
        what, takes = "a text", "takes the text itself: its tokenizer is packed in the file"
    else:
        image = sidecar.get("image") or {}
        what = "an image"
        takes = f"takes an RGB image, {image.get('dtype', chosen.get('io', 'float32'))}"
    return "\n\n".join(
        [
            f"`{file}` ({chosen['format']}; {takes}; returns "
            f"{chosen.get('outputs', 'probabilities')}; {percent(chosen['accuracy'])} on the test "
            f"set, MediaPipe Tasks agreeing with LiteRT on "
            f"{percent((chosen.get('mediapipe') or {}).get('agreement'))}) classifies {what} "
            "with the class names as labels. Python (`pip install mediapipe`), from the run "
            "folder:",
            python.format(file=file, example=example),
            "Android (Kotlin, MediaPipe Tasks; written for the Tasks API, not compiled here):",
            kotlin.format(file=file, example=example),
            "Or from the command line: `trainer predict RUN_DIR INPUT...`.",
        ]
    )
