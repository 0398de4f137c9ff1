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
# # Text models: bag of n-grams, CNN, LSTM/GRU, Transformer and BERT side by side
#
# `text_classifier --model=` trains any of six text models on the same data with the same
# checks, schedule and TFLite verification. This notebook writes a small folder of labelled
# reviews (generated here: one subfolder per class, as `aclImdb` has), trains three models on
# it, and compares accuracy, size and latency of the exported files. On real text, choose with
# the table measured on 9,108 Debian package descriptions (the documentation's Results page).
# `QUICK = True` keeps every run short on a 2-core CPU; the numbers below are then a smoke
# check, not a benchmark.
#
# Source of truth: this `.py` file (jupytext percent format). Regenerate the notebook with
# `jupytext --to ipynb notebooks/text_models.py`.

# %%
QUICK = True

# %%
import tempfile
from pathlib import Path

import numpy as np

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from recipes import text_classifier

work = Path(tempfile.mkdtemp(prefix="text-models-"))

# %% [markdown]
# ## 1. A folder of texts, one subfolder per class
# Each review mixes neutral words with a few that carry its sentiment; a bag of words can solve
# it, so every model should beat chance (50%) clearly.

# %%
rng = np.random.default_rng(0)
neutral = "the a film movie story plot actor scene it was is and of to in this that".split()
sentiment = {
    "pos": "great wonderful superb moving brilliant".split(),
    "neg": "awful dull boring terrible weak".split(),
}
for split, count in (("train", 60 if QUICK else 400), ("test", 20 if QUICK else 200)):
    for label, words in sentiment.items():
        folder = work / "reviews" / split / label
        folder.mkdir(parents=True)
        for index in range(count):
            tokens = list(rng.choice(neutral, 12)) + list(rng.choice(words, 2))
            rng.shuffle(tokens)
            (folder / f"{index}.txt").write_text(" ".join(tokens))
print(sorted(path.name for path in (work / "reviews" / "train").iterdir()))

# %% [markdown]
# ## 2. The same recipe, three models
# `bow` is TF-IDF of words and word bigrams into a linear layer (computed inside the model from
# token ids, so the TFLite file needs no string ops); `cnn` a word-embedding convolution;
# `transformer` a small self-attention encoder trained from scratch. `lstm` and `gru` work the
# same way (slower on a CPU).

# %%
results = {}
for model in ("bow", "cnn", "transformer"):
    config = text_classifier.Config(
        data=str(work / "reviews"),
        run_dir=str(work / f"run_{model}"),
        model=model,
        sequence_length=24,
        epochs=3 if QUICK else 10,
        batch_size=16,
        learning_rate=0.05 if model == "bow" else 0.003,
        heads=2,
        export="float32",
        backup_every=0,
    )
    results[model] = text_classifier.main(config)

# %% [markdown]
# ## 3. Accuracy, size and latency of the exported files
# Every number below was measured by the runs above on this machine: the test accuracy of the
# Keras model and of the TFLite file (LiteRT, whole test set), the file size and the batch-1
# latency.

# %%
print(f"{'model':12} {'Keras':>7} {'TFLite':>7} {'params':>9} {'file KiB':>9} {'ms/text':>8}")
for model, metrics in results.items():
    (export,) = metrics["exports"]
    print(
        f"{model:12} {metrics['test_accuracy']:7.2%} {export['accuracy']:7.2%} "
        f"{metrics['parameters']:9,} {export['size_bytes'] / 1024:9.0f} "
        f"{export['latency_ms']:8.3f}"
    )

# %% [markdown]
# ## 4. BERT
# `--model=bert --bert_dir=FOLDER` fine-tunes a pretrained BERT read from the folder Google
# publishes (bert_config.json, vocab.txt, bert_model.ckpt.*), with WordPiece tokens and warmup
# + linear decay. Weights are never downloaded: without the folder the recipe stops at once and
# says where to put it.

# %%
try:
    text_classifier.build(text_classifier.Config(data=str(work / "reviews"), model="bert"))
except FileNotFoundError as error:
    print(error)
