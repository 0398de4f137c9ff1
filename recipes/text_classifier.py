"""Your own texts: TF-IDF logistic regression, bag of n-grams, CNN, LSTM/GRU, Transformer or BERT.

Data: `--data=` a folder with one subfolder of `.txt` files per class (or train/ and test/
folders of them, e.g. aclImdb: train/pos, train/neg, test/..., `unsup` ignored), a `.csv`
with a text column (`--text_column`, default `text`) and a label column, an `.npz` of strings,
or `tfds:NAME` (e.g. tfds:imdb_reviews once prepared). The data check runs first (fast mode);
duplicates and train/test leaks are dropped in memory. Texts become token ids in the pipeline
(vocabulary from train only, saved as vocabulary.txt; WordPiece over the BERT folder's
vocab.txt for bert); words are split at every character that is not a letter or digit, as
MediaPipe's regex tokenizer splits them. The exported files take int32 token ids, return
probabilities and carry the tokenizer and labels in their metadata, so MediaPipe Tasks'
TextClassifier classifies raw strings with them (every model kind; see docs/mobile_text.md).
Model (`--model=`; builders in `trainer.models.text` and `text_ngrams`, defaults in
`text_choice`): `linear` (default) logistic regression on TF-IDF of words, word bigrams
(per hash bucket the training bigram in most texts, others dropped) and the first words,
computed inside the graph (sublinear counts), fitted by scikit-learn with C, the inverse
strength of its L2 penalty, chosen by validation loss, then fitted again on train +
validation (`trainer.logistic_regression`; `--inverse_regularization` fixes C instead); `bow` TF-IDF of
words and bigrams into a linear layer, `cnn` word-embedding CNN, `lstm` / `gru`
bidirectional and masking padding, `transformer` a small encoder from scratch, `bert` a
pretrained BERT from `--bert_dir` (the original checkpoint folder; never downloaded). These
train with AdamW, warmup, then cosine decay (linear decay for bert); the best epoch by
validation accuracy is kept.

Expected: depends on your data. On the four real text sets of bench/real_data.py (Debian
package descriptions by three labellings, manual pages by section) the default `linear`
scores 0.8-1.7 pp above scikit-learn's tuned TF-IDF + logistic regression with under a minute
of training, a file under 1 MiB (dynamic) at about 0.06 ms per text
(bench/results/real_data_text.json). On the Debian descriptions the `transformer` came
within 0.1 pp of the baseline at minutes of training and 1.4 MiB, `cnn` and `bow` about 2 pp
lower (bench/results/text_models_debian.json). The larger models are for larger data.

Run:  trainer train text_classifier --data=path/to/aclImdb
      trainer train text_classifier --data=path/to/aclImdb --model=transformer --epochs=5
      trainer train text_classifier --data=texts/ --model=bert --bert_dir=models/bert/small
"""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401  (selects the Keras 2 API before TensorFlow loads)
from trainer.cli import run_recipe
from trainer.config import at_least, choice, choices, count, fraction, in_range, limit, option
from trainer.data.prepare import Cleaning, prepare_data
from trainer.data.sources import SourceOptions
from trainer.data.split import BALANCE_MODES, balance, check_balance_mode
from trainer.data.text import STANDARDIZE_MODES, WORD_DELIMITER, Vectorizer, token_dataset
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.export import parse_formats
from trainer.export.mobile import OUTPUT_KINDS
from trainer.export.text import regex_vocabulary
from trainer.logistic_regression import fit_logistic_regression
from trainer.losses import build_loss
from trainer.models.text_choice import TEXT_MODEL_DEFAULTS, text_model, with_text_model_defaults
from trainer.optimizers import OPTIMIZER_NAMES, scheduled_optimizer
from trainer.reproducibility import set_seed
from trainer.schedules import SCHEDULE_NAMES
from trainer.sizing import auto_batch_size

TEXT_MODELS = tuple(TEXT_MODEL_DEFAULTS)


def check_epochs(epochs: int) -> None:
    """--epochs: a count of passes, or -1 for the model's own (the linear model needs more)."""
    if epochs != -1 and epochs < 1:
        raise ValueError(f"epochs must be >= 1, received {epochs} (or -1: the model's default)")


@dataclass
class Config:
    data: str = ""  # text folder (aclImdb layout too), .csv, .npz of strings, or tfds:NAME
    run_dir: str = ""  # output folder; default runs/text_classifier-<timestamp>
    text_column: str = ""  # CSV column with the text ("" = a column named text)
    label_column: str = "label"  # CSV column with the label
    # linear, bow, cnn, lstm, gru, transformer or bert
    model: str = choice("linear", *TEXT_MODELS)
    bert_dir: str = ""  # --model=bert: folder with bert_config.json, vocab.txt, bert_model.ckpt.*
    # tokens per text: longer texts are cut, shorter padded; 0 = the model's (linear 400, else 200)
    sequence_length: int = limit(0)
    # most frequent training words kept, others map to "unknown"; 0 = the model's (linear 10000,
    # else 20000)
    vocab_size: int = limit(0)
    # words: lower_and_split_punctuation (what MediaPipe's tokenizer repeats) or Keras's
    # lower_and_strip_punctuation ("don't" -> "dont"; files MediaPipe cannot tokenize)
    standardize: str = choice("lower_and_split_punctuation", *STANDARDIZE_MODES)
    embedding_dim: int = count(64)  # model size: width of the word embeddings (not bow, bert)
    width: int = count(64)  # model size: convolution filters, units per LSTM/GRU direction
    heads: int = count(4)  # transformer: attention heads (embedding_dim must be a multiple)
    blocks: int = count(2)  # transformer: encoder blocks
    # linear, bow: hashed word-bigram slots (fewer collisions, larger table); 0 = the model's
    # (linear 32768, bow 262144)
    buckets: int = limit(0)
    # linear: the first N words are also features of their own (a title, a first line)
    leading_tokens: int = limit(8)
    # linear: scikit-learn's C, the inverse strength of the L2 penalty (larger = weaker);
    # 0 = the best on validation of 3, 10, 30, 100, 300, 1000
    inverse_regularization: float = limit(0.0)
    hidden_units: int = limit(0)  # bow: a ReLU layer of this size before the logits (0 = linear)
    # dropout before the logits layer; -1 = the model's default
    dropout: float = in_range(-1.0, -1, 0.99)
    # passes over the training set; -1 = the model's (5; linear 30 when Keras trains it)
    epochs: int = option(-1, check=check_epochs)
    # examples per step; 0 = the data size's (16-64, >= 50 steps/epoch; linear in Keras 256)
    batch_size: int = limit(0)
    learning_rate: float = limit(0.0)  # peak learning rate after warmup; 0 = the model's default
    warmup_epochs: float = limit(0.5)  # linear warmup length, then the schedule below
    # after warmup: cosine, cosine_restarts, step, exponential, polynomial (linear decay),
    # constant, one_cycle; "" = the model's default (polynomial for bert, else cosine)
    schedule: str = choice("", "", *SCHEDULE_NAMES)
    # adamw, adam, sgd (momentum 0.9) or rmsprop; "" = the model's (sgd for linear, else adamw)
    optimizer: str = choice("", "", *OPTIMIZER_NAMES)
    # decoupled weight decay (adamw, sgd, rmsprop); -1 = the model's (linear 0, else 1e-4)
    weight_decay: float = at_least(-1.0, -1.0)
    label_smoothing: float = fraction(0.0, below_one=True)  # soft targets
    # share of train held out for validation if the source has none (at most half)
    val_fraction: float = in_range(0.1, 0, 0.5)
    # share held out as test if the source has no test split (at most half)
    test_fraction: float = in_range(0.2, 0, 0.5)
    # imbalanced classes: none, class_weights or oversample
    balance: str = choice("none", *BALANCE_MODES)
    drop_duplicates: bool = True  # drop extra copies of a text within a split
    drop_leaks: bool = True  # drop training copies of texts that are also in val/test
    drop_label_errors: bool = False  # search for and drop likely label errors (slower check)
    # TFLite formats: float32, float16, dynamic. Not int8: quantizing token ids breaks them.
    export: str = choices("float32,dynamic", "float32", "float16", "dynamic", resumable=True)
    # what the exported files return: probabilities (softmax) or logits
    outputs: str = choice("probabilities", *OUTPUT_KINDS, resumable=True)
    tfds_dir: str = ""  # TFDS data directory for tfds:NAME ("" = TFDS default)
    download: bool = False  # allow TFDS to download a dataset that is not prepared
    seed: int = limit(0)  # seeds the splits, shuffling and weights
    # steps between backups for `trainer train --resume=RUN_DIR`; 0 = off
    backup_every: int = limit(200, resumable=True)


# What `trainer tune text_classifier` varies unless --search says otherwise (trainer.tuning).
SEARCH_SPACE = (
    "learning_rate=log:3e-4:1e-2; schedule=cosine,one_cycle,constant; optimizer=adamw,sgd; "
    "weight_decay=log:1e-5:1e-3; dropout=0.0:0.5; batch_size=16,32,64; width=32,64,128; "
    "embedding_dim=32,64,128"
)


def build(config: Config) -> Experiment:
    """Data, vocabulary, model and optimizer for one run; writes nothing (see
    trainer.experiment)."""
    check_balance_mode(config.balance)
    config = with_text_model_defaults(config)
    formats = parse_formats(config.export)
    if "int8" in formats:
        raise ValueError(
            f"export={config.export!r}: int8 would quantize the token-id input; "
            "use float32, float16 or dynamic for text models"
        )
    set_seed(config.seed)

    # Data: load, check, clean in memory, carve a stratified validation share from train.
    options = SourceOptions(
        test_fraction=config.test_fraction,
        seed=config.seed,
        label_column=config.label_column,
        text_column=config.text_column,
        download=config.download,
        tfds_dir=config.tfds_dir,
    )
    cleaning = Cleaning(config.drop_duplicates, config.drop_leaks, config.drop_label_errors)
    data, data_report = prepare_data(config.data, options, None, cleaning, config.val_fraction)
    if data.kind != "text":
        raise ValueError(
            f"{config.data} holds {data.kind} data; text_classifier needs text "
            "(use recipes/image_classifier.py for images)"
        )
    # Tokens: WordPiece over the BERT vocabulary, or a word vocabulary from train only.
    if config.model == "bert":
        from trainer.models.bert import WordPieceTokenizer, check_bert_folder

        bert_dir = check_bert_folder(config.bert_dir)
        tokenizer = WordPieceTokenizer(bert_dir / "vocab.txt")
        vocabulary = (bert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()

        def vectorize(texts):
            return tokenizer(texts, config.sequence_length)
    else:
        vectorizer = Vectorizer(config.vocab_size, config.sequence_length, config.standardize)
        vectorize = vectorizer.adapt(data.x_train)
        vocabulary = vectorizer.vocabulary
    x_train, y_train = vectorize(data.x_train), data.y_train
    x_val = None if data.x_val is None else vectorize(data.x_val)
    x_test = vectorize(data.x_test)
    x_train, y_train, weights = balance(
        x_train, y_train, config.balance, data.num_classes, config.seed
    )
    batch_size = config.batch_size or auto_batch_size(len(x_train))
    train = token_dataset(
        x_train,
        y_train,
        num_classes=data.num_classes,
        batch_size=batch_size,
        training=True,
        seed=config.seed,
    )
    print(
        f"data: {len(x_train)} train / {0 if x_val is None else len(x_val)} val / "
        f"{len(x_test)} test texts, {len(vocabulary)} tokens, {data.num_classes} classes from "
        f"{config.data}; batch size {batch_size}; model {config.model}"
    )

    model = text_model(config, len(vocabulary), data.num_classes, x_train)
    optimizer = scheduled_optimizer(
        config.optimizer,
        config.learning_rate,
        steps_per_epoch=len(train),
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        schedule=config.schedule,
        weight_decay=config.weight_decay,
    )
    loss = build_loss("categorical_crossentropy", label_smoothing=config.label_smoothing)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    rng = np.random.default_rng(config.seed)
    representative = x_train[rng.choice(len(x_train), min(300, len(x_train)), replace=False)]
    input_spec, artifacts = _tokenizer(config, vocabulary, vectorize)
    return Experiment(
        model=model,
        train=train,
        x_test=x_test,
        y_test=data.y_test,
        class_names=data.class_names,
        representative=representative,
        x_val=x_val,
        y_val=data.y_val,
        epochs=config.epochs,
        batch_size=batch_size,
        learning_rate=config.learning_rate,
        class_weight=weights,
        export_formats=tuple(formats),
        title=f"Text classifier ({config.model}) on {config.data}",
        data_report=data_report,
        input_spec=input_spec,
        artifacts=artifacts,
        report_sections={"Tokens": input_spec["preprocessing"]},
        export_outputs=config.outputs,
        test_texts=[str(text) for text in data.x_test],
    )


def _tokenizer(config: Config, vocabulary: list[str], vectorize) -> tuple[dict, dict]:
    """The input spec (the tokenizer's numbers, for the sidecar and the exported file's
    metadata) and the files it names: vocabulary.txt (line = id) and, for words, the regex
    tokenizer's vocabulary with every spelling of each word (trainer.export.text)."""
    length = config.sequence_length
    artifacts = {"vocabulary.txt": "\n".join(vocabulary) + "\n"}
    spec = {"shape": [length], "dtype": "int32", "vocabulary": "vocabulary.txt"}
    if config.model == "bert":
        spec.update(tokenizer="wordpiece", lowercase=True)
        prose = (
            "BERT's WordPiece over vocabulary.txt (uncased: lower-case, strip accents, split on "
            "spaces and punctuation, longest-match pieces), [CLS] pieces [SEP], 0 padding"
        )
    else:
        spec.update(tokenizer="regex", standardize=config.standardize, delimiter=WORD_DELIMITER)
        if config.standardize == "lower_and_split_punctuation":
            spec["tokenizer_vocabulary"] = "tokenizer_vocabulary.txt"
            artifacts["tokenizer_vocabulary.txt"] = regex_vocabulary(vectorize.spellings())
            prose = "lower-case, split at every character that is not a letter or digit"
        else:
            prose = "lower-case, strip punctuation, split on spaces"
        prose += ", id = line of vocabulary.txt (0 padding, 1 unknown)"
    spec["preprocessing"] = f"The files take int32 token ids: {prose}, {length} ids per text."
    return spec, artifacts


def main(config: Config) -> dict:
    experiment = build(config)
    run_dir = start_run("text_classifier", config, config.run_dir)
    if config.model == "linear":  # convex: scikit-learn fits it, C chosen on validation
        grid = [config.inverse_regularization] if config.inverse_regularization else None
        result = fit_logistic_regression(experiment, run_dir, *([grid] if grid else []))
    else:
        result = fit(experiment, run_dir, backup_every=config.backup_every)
    return finish(experiment, run_dir, result)


if __name__ == "__main__":
    raise SystemExit(run_recipe(Config, main, None, "recipes/text_classifier.py"))
