# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own data: folder -> check -> train -> report -> compress -> export -> run the file
#
# This notebook takes an image folder the way a user has one (one subfolder per class), checks
# it, trains the generic `image_classifier` recipe on it, reads the report, compresses the run
# within an accuracy budget, exports it to TFLite and runs the exported file with LiteRT the way
# an app would. The folder here is scikit-learn's bundled handwritten digits written out as PNG
# files (real scans, no download); point `FOLDER` at your own photos instead.
# `QUICK = True` keeps the whole notebook to about two minutes on a 2-core CPU.
#
# Source of truth: this `.py` file (jupytext percent format). Regenerate the notebook with
# `jupytext --to ipynb notebooks/your_own_data.py`.

# %%
QUICK = True

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from recipes import image_classifier
from trainer.cli import main as trainer_command
from trainer.export import predict_tflite

work = Path(tempfile.mkdtemp(prefix="your-own-data-"))

# %% [markdown]
# ## 1. A folder of images, one subfolder per class
# Any folder laid out like this works (png, jpg, bmp, gif; or `train/` and `test/` folders of
# them). Without a `test/` folder, 20% of each class is held out as the test set.

# %%
FOLDER = work / "digits"
digits = load_digits()
for index, (image, label) in enumerate(zip(digits.images, digits.target, strict=True)):
    if QUICK and index % 2:
        continue  # half the images keep the quick run to seconds
    folder = FOLDER / f"digit_{label}"
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{index:04d}.png")
print(sorted(path.name for path in FOLDER.iterdir()))

# %% [markdown]
# ## 2. Check the data
# `trainer data check` looks for unreadable or empty files, duplicates, train/test leaks,
# imbalance and label problems, and writes a report; it never changes the folder.

# %%
assert trainer_command(["data", "check", str(FOLDER), f"--out={work / 'data_report'}"]) == 0
print((work / "data_report" / "data_report.md").read_text()[:1500])

# %% [markdown]
# ## 3. Train
# `image_classifier.main(config)` is exactly what `trainer train image_classifier --data=...`
# runs. Batch size and batch-norm momentum adapt to the data size; the best epoch on a held-out
# validation share is kept; the test set only scores.

# %%
run_dir = work / "run"
config = image_classifier.Config(
    data=str(FOLDER),
    run_dir=str(run_dir),
    image_size=16,
    augment="crop:2",  # no flips: a mirrored digit is another symbol
    epochs=4 if QUICK else 20,
    width=16 if QUICK else 32,
)
metrics = image_classifier.main(config)
print(json.dumps({key: metrics[key] for key in ("test_accuracy", "best_epoch", "at_chance")}))

# %% [markdown]
# ## 4. The report
# `report.md` has the verification table of every TFLite file, the data check, the fit
# diagnosis and the plots.

# %%
print((run_dir / "report.md").read_text()[:2500])
figure, axes = plt.subplots(1, 2, figsize=(14, 4))
for axis, name in zip(axes, ("learning_curves.png", "confusion_matrix.png"), strict=True):
    axis.imshow(plt.imread(run_dir / name))
    axis.axis("off")

# %% [markdown]
# ## 5. Compress within an accuracy budget
# `trainer compress RUN_DIR` rebuilds the run's data through the recipe that made it and tries
# techniques cheapest first, keeping the smallest model within the budget on the validation
# share. Here only post-training quantization, to stay quick.

# %%
method = "ptq" if QUICK else "auto"
assert trainer_command(["compress", str(run_dir), f"--method={method}"]) == 0
print((run_dir / "compression" / "report.md").read_text()[:2000])

# %% [markdown]
# ## 6. Export and verify
# `trainer export` converts a run (or any saved Keras model) to TFLite and verifies every file
# on the test set with the LiteRT interpreter; a JSON sidecar beside each file names the labels
# and the input the file expects.

# %%
assert trainer_command(["export", str(run_dir), "--format=float32,int8"]) == 0
exported = sorted((run_dir / "export").glob("*.tflite"))
print([path.name for path in exported])

# %% [markdown]
# ## 7. Run the int8 file like an app would
# Read the sidecar for the labels and the input spec, prepare the images the same way, run.

# %%
sidecar = json.loads((run_dir / "export" / "model_int8.json").read_text())
print(sidecar["input"])
paths = sorted(FOLDER.glob("*/*.png"))[::40][:8]
size = sidecar["input"]["shape"][0]
images = (
    np.stack([np.asarray(Image.open(path).convert("L").resize((size, size))) for path in paths])[
        ..., None
    ].astype(np.float32)
    / 255.0
)
scores = predict_tflite((run_dir / "export" / "model_int8.tflite").read_bytes(), images)
predicted = [sidecar["class_names"][guess] for guess in scores.argmax(axis=1)]
for path, name in zip(paths, predicted, strict=True):
    print(f"{path.parent.name:>8} -> {name}")
correct = sum(path.parent.name == name for path, name in zip(paths, predicted, strict=True))
assert correct >= 5, f"only {correct} of {len(paths)} right"
