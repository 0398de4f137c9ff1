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
# # Fashion-MNIST: from IDX files to a verified int8 TFLite model
#
# This notebook runs the `fashion_mnist` recipe from Python, looks at the data, the learning
# curves and the verification table, and then uses the exported int8 file with LiteRT the way
# a mobile app would. `QUICK = True` trains one short epoch on a subset (the whole notebook
# takes about a minute on 2 CPU cores); set it to `False` for the full recipe (its measured
# accuracy and training time are on the documentation's Results page).
#
# Source of truth: this `.py` file (jupytext percent format). Regenerate the notebook with
# `jupytext --to ipynb notebooks/fashion_mnist_quickstart.py`.

# %%
QUICK = True

# %%
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from recipes import fashion_mnist
from trainer.data.idx import FASHION_MNIST_CLASSES, load_fashion_mnist
from trainer.export import predict_tflite

# %% [markdown]
# ## The data
# Debian's `dataset-fashion-mnist` package puts the IDX files in
# `/usr/share/datasets/fashion-mnist`; the loader checks magic numbers, counts, image size
# and label range.

# %%
(x_train, y_train), (x_test, y_test) = load_fashion_mnist()
print(x_train.shape, x_test.shape, np.bincount(y_train))
figure, axes = plt.subplots(2, 8, figsize=(12, 3.5))
for axis, index in zip(axes.flat, range(16), strict=True):
    axis.imshow(x_train[index], cmap="gray")
    axis.set_title(FASHION_MNIST_CLASSES[y_train[index]], fontsize=8)
    axis.axis("off")

# %% [markdown]
# ## Train, export, verify
# `main(config)` is exactly what `trainer train fashion_mnist` runs.

# %%
run_dir = Path(tempfile.mkdtemp(prefix="fashion_mnist-"))
overrides = {"epochs": 1, "train_limit": 3000, "test_limit": 1000} if QUICK else {}
config = fashion_mnist.Config(run_dir=str(run_dir), **overrides)
metrics = fashion_mnist.main(config)
print(json.dumps({key: metrics[key] for key in ("test_accuracy", "train_seconds")}, indent=1))

# %% [markdown]
# ## The report
# `report.md` holds the verification table; the learning curves are a PNG beside it.

# %%
print((run_dir / "report.md").read_text())
plt.figure(figsize=(10, 4))
plt.imshow(plt.imread(run_dir / "learning_curves.png"))
plt.axis("off")

# %% [markdown]
# ## Use the int8 file like an app would
# The exported model takes float32 images in [0, 1], shape (N, 28, 28, 1), and returns logits.

# %%
content = (run_dir / "model_int8.tflite").read_bytes()
images = x_test[:8, ..., None].astype(np.float32) / 255.0
predicted = predict_tflite(content, images).argmax(axis=1)
for truth, guess in zip(y_test[:8], predicted, strict=True):
    print(f"{FASHION_MNIST_CLASSES[truth]:>12} -> {FASHION_MNIST_CLASSES[guess]}")
int8_accuracy = {e["format"]: e["accuracy"] for e in metrics["exports"]}["int8"]
assert abs(int8_accuracy - metrics["test_accuracy"]) < 0.02
