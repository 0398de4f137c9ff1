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
# # Text models: the linear default, the other kinds, and what runs in MediaPipe
#
# `text_classifier` trains any of seven text models on the same data, with the same data
# check, the same token ids and the same verification of the exported files. The default,
# `linear`, is logistic regression on TF-IDF features computed *inside* the model from token
# ids: words and hashed word bigrams, sublinear term frequency, idf from the training texts,
# L2 norm, with scikit-learn's L2 penalty (its C is `--inverse_regularization`). It is the
# classic TF-IDF + logistic regression baseline, exported as one small TFLite file that
# MediaPipe Tasks' `TextClassifier` runs on raw strings (`trainer.models.text` has how it is
# built and trained).
#
# This notebook builds a small real data set from the manual pages installed on this machine
# (English pages, labelled by man section), checks it, trains the default and three other
# kinds on it next to scikit-learn's TF-IDF + logistic regression, and compares accuracy,
# training time, file size, latency and what MediaPipe made of each file. `QUICK = True`
# keeps it to a few minutes on a 2-core CPU: 120 pages per section and about 120 test pages,
# so one test page is almost 1 pp and the ranking on this set is noisy. The measured
# comparison on the four real text sets of `bench/real_data.py` (2,125 to 7,451 training
# texts) is in bench/results/text_linear.json and docs/results.md.
#
# Source of truth: this `.py` file (jupytext percent format). Regenerate the notebook with
# `jupytext --to ipynb notebooks/text_models.py`, or run it with
# `.venv/bin/python docs/execute_notebooks.py text_models`.

# %%
QUICK = True

# %%
import gzip
import json
import random
import re
import tempfile
import time
from pathlib import Path

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from recipes import text_classifier
from trainer.data.check import check_source
from trainer.data.text_check import model_text

work = Path(tempfile.mkdtemp(prefix="text-models-"))

# %% [markdown]
# ## 1. A folder of real texts: manual pages by section
# Sections 1 (commands), 2 (system calls), 3 (library functions), 5 (file formats),
# 7 (overviews) and 8 (administration). Each page becomes plain words: roff macros and
# escapes go, and so does every "name(N)" reference, which would name the label. A page
# installed under several names is kept once, and one page family (`git-add`, `git-commit`,
# ...) stays on one side of the train/test split, so the test set does not reward
# remembering a copy or a sibling page. Point `FOLDER` at your own texts
# instead: one subfolder per class, optionally inside `train/` and `test/`.

# %%
SECTIONS = ("1", "2", "3", "5", "7", "8")
PER_SECTION = 120 if QUICK else 400
CHARACTERS = 1500 if QUICK else 3000  # the start of each page: name, synopsis, description
FOLDER = work / "man-pages"
TEXT_MACROS = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SH", "SS", "TP", "IP"}


def page_text(source: str) -> str:
    """A roff page as plain words, without the header and the "(N)" section references."""
    lines = []
    for line in source.splitlines():
        if line.startswith((".", "'")):
            macro, _, line = line[1:].strip().partition(" ")
            if macro not in TEXT_MACROS:
                continue
        line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line).replace("\\-", "-")
        lines.append(re.sub(r"\\(\(..|\[[^\]]*\]|\*.|[&|^:%]|.)", " ", line).replace('"', " "))
    return re.sub(r"\(\d[a-z]*\)", "", " ".join(" ".join(lines).split()))[:CHARACTERS]


pages, seen = {}, set()  # page family -> [(section, name, text)]; texts already kept
for section in SECTIONS:
    files = sorted(Path(f"/usr/share/man/man{section}").glob("*.gz"))
    if not files:
        raise FileNotFoundError(
            f"no manual pages in /usr/share/man/man{section} (container images often leave "
            "them out): install man-db and manpages-dev, or point FOLDER at your own texts"
        )
    random.Random(section).shuffle(files)
    kept = 0
    for path in files:
        source = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        text = "" if source.lstrip().startswith(".so ") else page_text(source)
        # One copy of each text: pages documenting several functions are installed under
        # each name (getuid and geteuid), and a copy on each side of the split is a leak.
        if len(text.split()) >= 40 and model_text(text) not in seen:
            seen.add(model_text(text))
            name = path.name.split(".")[0]
            family = re.split(r"[-_.:]", name.lower())[0] or name
            pages.setdefault(family, []).append((section, name, text))
            kept += 1
        if kept == PER_SECTION:
            break
families = sorted(pages)
random.Random(0).shuffle(families)
test_families = set(families[: len(families) // 5])
for family, entries in pages.items():
    split = "test" if family in test_families else "train"
    for section, name, text in entries:
        folder = FOLDER / split / f"section{section}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
for split in ("train", "test"):
    counts = {p.name: len(list(p.iterdir())) for p in sorted((FOLDER / split).iterdir())}
    print(split, sum(counts.values()), counts)

# %% [markdown]
# ## 2. The data check
# Every training run checks its data first (this is the same check, `trainer data check`).
# For texts it compares the words the models read: exact duplicates and train/test leaks
# after lower-casing, near-duplicates and near-leaks (TF-IDF cosine >= 0.9), texts without a
# word, huge texts, the lengths against what the models read, and the class balance. Manual
# pages generated from one template (OpenSSL's `EVP_*` pages, the `gcloud` commands) show up
# as near-duplicates.

# %%
report = check_source(str(FOLDER), work / "data_report", label_errors=False)
print(report.summary(max_rows=3))

# %% [markdown]
# ## 3. The classic baseline: scikit-learn's TF-IDF + logistic regression
# The same features the default model computes (words and word bigrams, sublinear tf), C
# chosen by 3-fold cross-validation on the training texts only.

# %%
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline


def read(split):
    files = sorted((FOLDER / split).glob("*/*.txt"))
    return [f.read_text(encoding="utf-8") for f in files], [f.parent.name for f in files]


(train_texts, train_labels), (test_texts, test_labels) = read("train"), read("test")
started = time.perf_counter()
pipeline = make_pipeline(
    TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
    LogisticRegression(max_iter=3000),
)
search = GridSearchCV(pipeline, {"logisticregression__C": [3.0, 10.0, 30.0, 100.0]}, cv=3)
search.fit(train_texts, train_labels)
baseline = search.score(test_texts, test_labels)
print(
    f"TF-IDF + logistic regression: {baseline:.2%} on {len(test_texts)} test pages "
    f"(C={search.best_params_['logisticregression__C']:g}, "
    f"{time.perf_counter() - started:.1f} s including the search)"
)

# %% [markdown]
# ## 4. The same recipe, four models
# Each run is what `trainer train text_classifier --data=FOLDER --model=...` does: data
# check, vocabulary from the training texts, training, then every exported file verified on
# the whole test set by LiteRT and by MediaPipe Tasks' `TextClassifier` (on the raw test
# texts, tokenized by MediaPipe from the file's own metadata). Only the model changes;
# `linear` runs with all its defaults. `cnn` is a word-embedding convolution, `transformer`
# a small encoder trained from scratch, `bow` TF-IDF into a dense layer trained with Adam.
# `lstm`/`gru` work the same way and are slower on a CPU; `bert` needs a pretrained
# checkpoint folder (section 7).

# %%
results = {}
for model in ("linear", "bow", "cnn", "transformer"):
    config = text_classifier.Config(
        data=str(FOLDER),
        run_dir=str(work / f"run_{model}"),
        model=model,
        export="float32" if QUICK else "float32,dynamic",
        backup_every=0,
    )
    results[model] = text_classifier.main(config)

# %% [markdown]
# ## 5. Accuracy, time, size, latency and MediaPipe, side by side
# All measured by the runs above on this machine: Keras test accuracy, the TFLite file's
# accuracy (LiteRT, whole test set), MediaPipe's accuracy on the raw strings and its top-1
# agreement with LiteRT, the training time, the file's size and its batch-1 latency.

# %%
print(f"scikit-learn TF-IDF + logistic regression: {baseline:.2%}\n")
print(
    f"{'model':12} {'Keras':>7} {'TFLite':>7} {'MediaPipe':>10} {'agree':>7} {'train s':>8} "
    f"{'params':>9} {'file KiB':>9} {'ms/text':>8}"
)
for model, metrics in results.items():
    export = metrics["exports"][0]
    mediapipe = export["mediapipe"]
    loaded = f"{mediapipe['accuracy']:.2%}" if mediapipe["loaded"] else "refused"
    agreement = f"{mediapipe['agreement']:.1%}" if mediapipe["loaded"] else "-"
    print(
        f"{model:12} {metrics['test_accuracy']:7.2%} {export['accuracy']:7.2%} {loaded:>10} "
        f"{agreement:>7} {metrics['train_seconds']:8.1f} {metrics['parameters']:9,} "
        f"{export['size_bytes'] / 1024:9.0f} {export['latency_ms']:8.3f}"
    )

# %% [markdown]
# A few hundred pages are few for any of them, and fewest for the models that learn word
# vectors from scratch (`cnn`, `transformer`): the linear models start from counts. On the
# real benchmark sets, thousands of texts each, the default is measured against the same
# baseline in bench/results/text_linear.json (its file under 1 MiB as a dynamic-range file,
# a few hundredths of a millisecond per text), and the `transformer` came within 0.1 pp of
# the baseline on Debian's descriptions after minutes of training with a 2.2 MiB file
# (bench/results/text_models_debian.json). Larger models pay off with more data than these
# sets hold.

# %% [markdown]
# ## 6. The file in MediaPipe, as an app runs it
# The exported file carries the tokenizer (a regex tokenizer splitting where training
# splits, and every spelling of each vocabulary word, since the tokenizer cannot lower-case)
# and the class names, so MediaPipe Tasks classifies a plain string. Every model kind above
# loads; so do `lstm`/`gru` (unrolled) and uncased BERTs (docs/mobile_text.md lists the
# exceptions).

# %%
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.text import TextClassifier, TextClassifierOptions

path = work / "run_linear" / "model_float32.tflite"
options = TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
# The start of one test page of each section, as an app would pass it: a plain string.
samples = {label: text for text, label in zip(test_texts, test_labels, strict=True)}
with TextClassifier.create_from_options(options) as classifier:
    for label, text in sorted(samples.items()):
        top = classifier.classify(text[:300]).classifications[0].categories[0]
        print(f"true {label:9} MediaPipe {top.category_name:9} {top.score:.2f}  {text[:60]}...")
sidecar = json.loads(path.with_suffix(".json").read_text())
print(
    "tokenizer:",
    sidecar["text"]["tokenizer"],
    "| ids per text:",
    sidecar["text"]["sequence_length"],
)

# %% [markdown]
# ## 7. BERT
# `--model=bert --bert_dir=FOLDER` fine-tunes a pretrained BERT read from the folder Google
# publishes (bert_config.json, vocab.txt, bert_model.ckpt.*), with WordPiece tokens and warmup
# + linear decay. Weights are never downloaded: without the folder the recipe stops at once and
# says where to put it.

# %%
try:
    text_classifier.build(text_classifier.Config(data=str(FOLDER), model="bert"))
except FileNotFoundError as error:
    print(error)
