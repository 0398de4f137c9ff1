"""Which text model `text_classifier --model=` builds, and with what: each kind's own
defaults (optimizer, sizes, epochs) where the recipe's options say "the model's own", and the
builder that turns the recipe's options into the model. Kept apart from trainer.models.text
(the layers and builders) because `bert` imports those layers, and this chooser imports bert.

Example:

    from recipes.text_classifier import Config
    from trainer.models.text_choice import text_model, with_text_model_defaults
    config = with_text_model_defaults(Config(model="cnn"))
    model = text_model(config, vocab_size=5000, num_classes=2, train_ids=x_train)
"""

import dataclasses

import numpy as np
import tf_keras as keras

from trainer.models.text import text_classifier, text_rnn, text_transformer
from trainer.models.text_ngrams import bag_of_ngrams, ngram_idf, tfidf_linear


@dataclasses.dataclass(frozen=True)
class TextModelDefaults:
    """A text model kind's settings where text_classifier's options say "the model's own"
    (0, -1 or ""): the optimizer's, the data's and the model's sizes."""

    learning_rate: float
    dropout: float
    epochs: int
    sequence_length: int = 200
    vocab_size: int = 20000
    buckets: int = 0  # hashed bigram slots (linear, bow)
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    batch_size: int = 0  # 0: from the data size (trainer.sizing.auto_batch_size)


# BERT fine-tunes gently; the bag of n-grams needs large steps. `linear` is fitted by
# scikit-learn (trainer.logistic_regression); its optimizer settings serve only Keras training
# of the same model (tune, compress): SGD without weight decay (Adam's rescaled steps overfit
# rare n-grams: 83.0% against 84.4% on the Debian set) over many cheap epochs. Its long texts
# and a vocabulary and table small enough keep the dynamic file under 1 MiB with 8 classes
# (0.97 MiB with the bigram keys: bench/results/real_data_text.json).
TEXT_MODEL_DEFAULTS = {
    "linear": TextModelDefaults(
        10.0, 0.0, 30, 400, 10000, 2**15, "sgd", weight_decay=0.0, batch_size=256
    ),
    "bow": TextModelDefaults(2e-2, 0.0, 5, buckets=2**18),
    "cnn": TextModelDefaults(2e-3, 0.3, 5),
    "lstm": TextModelDefaults(2e-3, 0.3, 5),
    "gru": TextModelDefaults(2e-3, 0.3, 5),
    "transformer": TextModelDefaults(1e-3, 0.1, 5),
    "bert": TextModelDefaults(5e-5, 0.1, 5, schedule="polynomial"),
}


def with_text_model_defaults(config):
    """`config` (text_classifier's `Config`, or a dataclass with its fields) with each option
    that means "the model's own" replaced by the value of `TEXT_MODEL_DEFAULTS[config.model]`;
    `batch_size` stays 0 where the data size decides it.

    Example:

        from recipes.text_classifier import Config
        config = with_text_model_defaults(Config(model="cnn"))   # epochs 5, vocab_size 20000
    """
    defaults = TEXT_MODEL_DEFAULTS[config.model]
    return dataclasses.replace(
        config,
        epochs=defaults.epochs if config.epochs == -1 else config.epochs,
        sequence_length=config.sequence_length or defaults.sequence_length,
        vocab_size=config.vocab_size or defaults.vocab_size,
        buckets=config.buckets or defaults.buckets,
        learning_rate=config.learning_rate or defaults.learning_rate,
        dropout=defaults.dropout if config.dropout < 0 else config.dropout,
        optimizer=config.optimizer or defaults.optimizer,
        weight_decay=defaults.weight_decay if config.weight_decay < 0 else config.weight_decay,
        schedule=config.schedule or defaults.schedule,
        batch_size=config.batch_size or defaults.batch_size,
    )


def text_model(config, vocab_size: int, num_classes: int, train_ids: np.ndarray) -> keras.Model:
    """The model `config.model` names, built from text_classifier's options (`config` after
    `with_text_model_defaults`) for a vocabulary of `vocab_size` ids; the linear and bag
    models take their idf from `train_ids`.

    Example:

        config = with_text_model_defaults(Config(model="cnn"))
        model = text_model(config, vocab_size=5000, num_classes=2, train_ids=x_train)
    """
    length, dropout = config.sequence_length, config.dropout
    if config.model == "linear":
        # scikit-learn's C sum(losses) + |w|^2 / 2, divided by C n: the penalty on the mean
        # loss, for Keras training of this model (the recipe fits it with scikit-learn).
        l2 = 1.0 / (2.0 * (config.inverse_regularization or 100.0) * len(train_ids))
        model = tfidf_linear(
            length, vocab_size, num_classes, config.buckets, l2, None, config.leading_tokens, True
        )
        model.get_layer("logits").adapt(train_ids)
        return model
    if config.model == "bow":
        idf = ngram_idf(train_ids, vocab_size, config.buckets)
        return bag_of_ngrams(
            length, vocab_size, num_classes, config.buckets, config.hidden_units, dropout, idf
        )
    if config.model == "cnn":
        return text_classifier(
            length, vocab_size, num_classes, config.embedding_dim, config.width, dropout
        )
    if config.model in ("lstm", "gru"):
        return text_rnn(
            length,
            vocab_size,
            num_classes,
            config.embedding_dim,
            config.width,
            dropout,
            config.model,
        )
    if config.model == "transformer":
        return text_transformer(
            length,
            vocab_size,
            num_classes,
            config.embedding_dim,
            config.heads,
            config.blocks,
            dropout,
        )
    if config.model == "bert":
        from trainer.models.bert import bert_classifier

        return bert_classifier(config.bert_dir, length, num_classes, dropout)
    raise ValueError(
        f"model must be one of {', '.join(TEXT_MODEL_DEFAULTS)}, received {config.model!r}"
    )
