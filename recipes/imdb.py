"""IMDb movie reviews (Maas et al. 2011): binary sentiment with any text model of text_classifier.

Data: `--data=` the `aclImdb/` folder of aclImdb_v1.tar.gz (https://ai.stanford.edu/~amaas/data/
sentiment/; train/pos, train/neg, test/pos, test/neg, `unsup` ignored) or `tfds:imdb_reviews`
once prepared (`--tfds_dir`). 25,000 train reviews (10% held out for validation) and 25,000
test reviews. Model (`--model=`): bow (TF-IDF of words and bigrams, linear), linear (the same
features, logistic regression fitted by scikit-learn, C chosen on validation), cnn, lstm, gru,
transformer or bert (`--bert_dir`, the original checkpoint folder). Everything else, including
the checks and the TFLite verification, is `recipes/text_classifier.py` with IMDb defaults
(longer texts, binary labels); this file only sets them. The exported files load in MediaPipe
Tasks' TextClassifier as they are (docs/mobile_text.md).

Published (test accuracy): bag of words + logistic regression 88-89% (Maas et al. 2011:
88.3-88.9%), NBSVM with bigrams 91.2% (Wang & Manning 2012), BERT-base fine-tuned about 94%
(Sun et al. 2019: 94.6%). Not measured here: IMDb is not on this machine. On a 2-core CPU expect
bow to take minutes per epoch and the recurrent models and BERT hours (not measured here).

Run:  trainer train imdb --data=path/to/aclImdb --model=bow --epochs=5
      trainer train imdb --data=tfds:imdb_reviews --model=bert --bert_dir=models/bert/small
"""

import dataclasses
from dataclasses import dataclass

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from recipes import text_classifier
from trainer.cli import run_recipe
from trainer.config import choice, choices, count, in_range, limit
from trainer.data.text import STANDARDIZE_MODES
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.export.mobile import OUTPUT_KINDS
from trainer.logistic_regression import fit_logistic_regression


@dataclass
class Config:
    data: str = "tfds:imdb_reviews"  # the aclImdb/ folder or tfds:imdb_reviews
    run_dir: str = ""  # output folder; default runs/imdb-<timestamp>
    model: str = choice("bow", *text_classifier.TEXT_MODELS)  # bow, cnn, lstm, gru, ...
    bert_dir: str = ""  # --model=bert: folder with bert_config.json, vocab.txt, bert_model.ckpt.*
    sequence_length: int = count(400)  # tokens per review (median review: about 175 words)
    vocab_size: int = count(30000)  # most frequent training words kept (bow: at most 46340)
    # words split at punctuation (what MediaPipe's tokenizer repeats) or Keras's stripping
    standardize: str = choice("lower_and_split_punctuation", *STANDARDIZE_MODES)
    embedding_dim: int = count(64)  # width of the word embeddings (not bow, bert)
    width: int = count(64)  # convolution filters, units per LSTM/GRU direction
    # dropout before the logits; -1 = the model's default
    dropout: float = in_range(-1.0, -1, 0.99)
    epochs: int = count(5)  # passes over the training set
    batch_size: int = count(32)  # examples per step
    learning_rate: float = limit(0.0)  # peak learning rate; 0 = the model's default
    val_fraction: float = in_range(0.1, 0, 0.5)  # share of train held out for validation
    # TFLite formats: float32, float16, dynamic
    export: str = choices("float32,dynamic", "float32", "float16", "dynamic", resumable=True)
    outputs: str = choice("probabilities", *OUTPUT_KINDS)  # the files return these (or logits)
    tfds_dir: str = ""  # TFDS data directory for tfds:imdb_reviews ("" = TFDS default)
    seed: int = limit(0)  # seeds the split, shuffling and weights
    backup_every: int = limit(
        500, resumable=True
    )  # steps between backups for `trainer train --resume=RUN_DIR`


def build(config: Config) -> Experiment:
    """text_classifier's build with these settings; writes nothing."""
    settings = dataclasses.asdict(config)
    experiment = text_classifier.build(text_classifier.Config(**settings))
    experiment.title = f"IMDb sentiment ({config.model})"
    return experiment


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("imdb", config, config.run_dir)
    if config.model == "linear":  # convex: scikit-learn fits it, C chosen on validation
        result = fit_logistic_regression(experiment, run_dir)
    else:
        result = fit(experiment, run_dir, backup_every=config.backup_every)
    return finish(experiment, run_dir, result)


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/imdb.py"))
