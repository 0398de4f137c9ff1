"""Text model builders over token ids: TF-IDF logistic regression, bag of n-grams, CNN,
bidirectional LSTM/GRU, Transformer.

Every builder takes float32 token ids of shape (sequence_length,) as made by
`trainer.data.text.Vectorizer` (0 = padding, 1 = unknown word; ids below 2**24 are exact in
float32), so string processing stays in the pipeline. The exported file takes int32 ids and
casts them inside its graph, with the tokenizer in its metadata, so MediaPipe Tasks'
TextClassifier runs every model here from raw text (`trainer.export.text`). Outputs are
logits. Padding is masked everywhere: the linear model and the bag
ignore it, the recurrent models skip it (`mask_zero`), the Transformer's attention and pooling
never look at it. The custom layers here are registered with Keras, so saved models reload. This
module must not compile, train or export.

Which to pick (measured against scikit-learn's TF-IDF + logistic regression tuned by
cross-validation: bench/results/text_linear.json and text_models_debian.json): `tfidf_linear`
(text_classifier's default) is that baseline computed from token ids, matching it in well under
a minute of training with a file under 1 MiB; the Transformer came within 0.1 pp of the
baseline at minutes of training, for larger data; the CNN gives a small and fast file; the
bidirectional LSTM and GRU are the slowest per text. Their
files are unrolled (one step of ops per token) and converted at batch size 1
(trainer.export), so they need no select TF ops and run in one subgraph, which MediaPipe
requires; none of these models needs select TF ops.

Example:

    from trainer.models import bag_of_ngrams, text_rnn, text_transformer
    model = text_rnn(sequence_length=100, vocab_size=5000, num_classes=2, cell="gru")
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.config import check_number
from trainer.resources import TRAINING_BYTES_PER_WEIGHT, check_memory

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="trainer")
# Bigram ids are a * vocab_size + b in int32 (TFLite builtins have no int64 multiply here).
LARGEST_BAG_VOCABULARY = 46340


def _check_sizes(sequence_length: int, vocab_size: int, dropout: float, **sizes: int) -> None:
    """Checks the builders' numbers (the recipes' options of the same names) and refuses a
    word table that cannot fit in memory, before Keras allocates it."""
    check_number("sequence_length", sequence_length, minimum=1, integer=True)
    check_number("vocab_size", vocab_size, minimum=2, integer=True)
    for name, value in sizes.items():
        check_number(name, value, minimum=1, integer=True)
    check_number("dropout", dropout, minimum=0, maximum=1, exclusive_maximum=True)
    if "embedding_dim" in sizes:
        rows, row_width, options = (
            vocab_size,
            sizes["embedding_dim"],
            "--vocab_size or --embedding_dim",
        )
    else:  # bag of n-grams: a row per word and per bigram bucket, a column per output
        rows, row_width, options = vocab_size + sizes["buckets"], sizes["units"], "--buckets"
    check_memory(
        TRAINING_BYTES_PER_WEIGHT * rows * row_width,
        f"a word table of {rows:,} x {row_width:,} weights (with gradients and optimizer state)",
        f"lower {options}",
    )


def _token_input(sequence_length: int):
    return keras.Input(shape=(sequence_length,), dtype="float32", name="token_ids")


def text_classifier(
    sequence_length: int = 200,
    vocab_size: int = 20000,
    num_classes: int = 2,
    embedding_dim: int = 64,
    width: int = 64,
    dropout: float = 0.3,
) -> keras.Model:
    """A word-embedding, 1-D convolution, global-max-pool text classifier (`--model=cnn`).

    Example:

        model = text_classifier(sequence_length=100, vocab_size=5000, num_classes=2)
    """
    _check_sizes(
        sequence_length,
        vocab_size,
        dropout,
        embedding_dim=embedding_dim,
        width=width,
        num_classes=num_classes,
    )
    inputs = _token_input(sequence_length)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = layers.Conv1D(width, 5, padding="same", activation="relu", name="conv")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="text_classifier")


def ngram_ids(ids, vocab_size: int, buckets: int):
    """Unigram ids followed by hashed bigram ids, shape (batch, 2 * length - 1), 0 = none.

    A bigram (a, b) of two real tokens gets `vocab_size + (a * vocab_size + b) mod buckets`;
    bigrams touching padding get 0. Works on tensors and on NumPy arrays (returns a tensor).
    """
    ids = tf.cast(ids, tf.int32)
    first, second = ids[:, :-1], ids[:, 1:]
    hashed = vocab_size + tf.math.floormod(first * vocab_size + second, buckets)
    bigrams = tf.where((first > 0) & (second > 0), hashed, tf.zeros_like(hashed))
    return tf.concat([ids, bigrams], axis=1)


def ngram_idf(ids: np.ndarray, vocab_size: int, buckets: int, batch_size: int = 512) -> np.ndarray:
    """Smoothed inverse document frequency of every unigram and hashed bigram in `ids`
    (the training split only): log((1 + n) / (1 + df)) + 1, as scikit-learn's TfidfVectorizer.

    Example:

        idf = ngram_idf(vectorizer(train_texts), vocab_size=len(vectorizer.vocabulary),
                        buckets=2**16)
    """
    size = vocab_size + buckets
    document_frequency = np.zeros(size, np.int64)
    for start in range(0, len(ids), batch_size):
        grams = ngram_ids(np.asarray(ids[start : start + batch_size]), vocab_size, buckets)
        for row in grams.numpy():
            document_frequency[np.unique(row[row > 0])] += 1
    return (np.log((1.0 + len(ids)) / (1.0 + document_frequency)) + 1.0).astype(np.float32)


@serializable
class NgramTfIdf(layers.Layer):
    """TF-IDF features of the unigrams and hashed bigrams of token ids, times a weight table.

    For each text the layer computes sublinear term frequency (1 + log count) x idf for every
    distinct n-gram, L2-normalizes the vector and multiplies it by a trainable (vocabulary,
    units) table, exactly a dense layer on TfidfVectorizer(ngram_range=(1, 2),
    sublinear_tf=True) features, but without ever building the vocabulary-wide vector: counts
    come from comparing the n-grams of one text with each other. Builtin TFLite ops only.
    """

    def __init__(
        self, vocab_size: int, buckets: int, units: int, idf=None, initializer="zeros", **kwargs
    ):
        super().__init__(**kwargs)
        if vocab_size > LARGEST_BAG_VOCABULARY or buckets < 1:
            raise ValueError(
                f"the bag of n-grams needs vocab_size <= {LARGEST_BAG_VOCABULARY} and buckets >= "
                f"1, received {vocab_size} and {buckets}; lower --vocab_size"
            )
        self.vocab_size, self.buckets, self.units = vocab_size, buckets, units
        self.initializer = keras.initializers.get(initializer)
        self._initial_idf = None if idf is None else np.asarray(idf, np.float32)

    def build(self, input_shape):
        size = self.vocab_size + self.buckets
        if self._initial_idf is not None and self._initial_idf.shape != (size,):
            raise ValueError(
                f"idf must have vocab_size + buckets = {size} values, received "
                f"{self._initial_idf.shape}"
            )
        self.table = self.add_weight("table", (size, self.units), initializer=self.initializer)
        initial = self._initial_idf
        self.idf = self.add_weight(
            "idf",
            (size,),
            initializer=keras.initializers.Constant(initial) if initial is not None else "ones",
            trainable=False,
        )
        super().build(input_shape)

    def call(self, ids):
        grams = ngram_ids(ids, self.vocab_size, self.buckets)
        valid = tf.cast(grams > 0, tf.float32)
        same = tf.cast(tf.equal(grams[:, :, None], grams[:, None, :]), tf.float32)
        counts = tf.maximum(tf.reduce_sum(same * valid[:, None, :], axis=2), 1.0)
        tf_idf = (1.0 + tf.math.log(counts)) * tf.gather(self.idf, grams) * valid
        # Each distinct n-gram appears `count` times; spread its weight over its positions.
        squared_norm = tf.reduce_sum(tf_idf * tf_idf / counts, axis=1, keepdims=True)
        weights = tf_idf / counts / tf.sqrt(squared_norm + 1e-12)
        return tf.reduce_sum(weights[:, :, None] * tf.gather(self.table, grams), axis=1)

    def get_prunable_weights(self):
        """The n-gram table, all but a few weights of the model: TF-MOT's magnitude pruning
        zeroes its smallest entries (a custom layer must name the weights it may prune)."""
        return [self.table]

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "buckets": self.buckets,
            "units": self.units,
            "initializer": keras.initializers.serialize(self.initializer),
        }


def bag_of_ngrams(
    sequence_length: int = 200,
    vocab_size: int = 20000,
    num_classes: int = 2,
    buckets: int = 2**16,
    hidden_units: int = 0,
    dropout: float = 0.0,
    idf: np.ndarray | None = None,
) -> keras.Model:
    """TF-IDF of words and word bigrams into a linear layer (`--model=bow`), or into a small
    ReLU layer of `hidden_units` then the logits.

    `idf` comes from `ngram_idf` on the training ids (without it every n-gram weighs 1).
    Bigrams are hashed into `buckets` slots, so the model's size does not grow with the data.

    Example:

        idf = ngram_idf(train_ids, vocab_size=5000, buckets=2**14)
        model = bag_of_ngrams(100, 5000, num_classes=2, buckets=2**14, idf=idf)
    """
    check_number("hidden_units", hidden_units, minimum=0, integer=True)
    # With hidden units the table is the hidden layer (its bias-free weights).
    units = hidden_units or num_classes
    _check_sizes(
        sequence_length, vocab_size, dropout, buckets=buckets, num_classes=num_classes, units=units
    )
    inputs = _token_input(sequence_length)
    # A linear model starts at zero like logistic regression; a hidden layer needs random
    # weights, or every unit stays at zero.
    initializer = "glorot_uniform" if hidden_units else "zeros"
    x = NgramTfIdf(vocab_size, buckets, units, idf, initializer, name="tf_idf")(inputs)
    if hidden_units:
        x = layers.ReLU(name="hidden")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        outputs = layers.Dense(num_classes, name="logits")(x)
    else:
        outputs = layers.Dense(num_classes, name="logits")(layers.Dropout(dropout)(x))
    return keras.Model(inputs, outputs, name="bag_of_ngrams")


@serializable
class TfIdfLinear(layers.Layer):
    """Logits of a linear model on the TF-IDF of a text's words and hashed word bigrams.

    Each position's n-gram weighs its idf; the weights are divided by their L2 norm over the
    text's positions, and the output is the weighted sum of the n-grams' rows of a (vocabulary,
    units) table plus a bias. A word seen twice counts twice (raw term frequency), so no
    n-gram is compared with another: the cost grows with the text's length, not its square,
    in training and in the exported file. The unknown-word id (1) and padding carry no
    feature. Builtin TFLite ops only.
    """

    def __init__(
        self, vocab_size: int, buckets: int, units: int, idf=None, l2: float = 0.0, **kwargs
    ):
        super().__init__(**kwargs)
        if vocab_size > LARGEST_BAG_VOCABULARY or buckets < 1 or units < 1 or l2 < 0:
            raise ValueError(
                f"TfIdfLinear needs vocab_size <= {LARGEST_BAG_VOCABULARY}, buckets >= 1, "
                f"units >= 1 and l2 >= 0, received {vocab_size}, {buckets}, {units} and {l2}; "
                "lower --vocab_size"
            )
        self.vocab_size, self.buckets, self.units, self.l2 = vocab_size, buckets, units, l2
        self._initial_idf = None if idf is None else np.asarray(idf, np.float32)

    def build(self, input_shape):
        size = self.vocab_size + self.buckets
        if self._initial_idf is not None and self._initial_idf.shape != (size,):
            raise ValueError(
                f"idf must have vocab_size + buckets = {size} values, received "
                f"{self._initial_idf.shape}"
            )
        # Zeros, as logistic regression starts; the penalty is scikit-learn's L2 on the table.
        regularizer = keras.regularizers.L2(self.l2) if self.l2 else None
        self.table = self.add_weight(
            "table", (size, self.units), initializer="zeros", regularizer=regularizer
        )
        self.bias = self.add_weight("bias", (self.units,), initializer="zeros")
        initial = self._initial_idf
        self.idf = self.add_weight(
            "idf",
            (size,),
            initializer=keras.initializers.Constant(initial) if initial is not None else "ones",
            trainable=False,
        )
        super().build(input_shape)

    def call(self, ids):
        grams = ngram_ids(ids, self.vocab_size, self.buckets)
        # Ids above 1 are words and bigrams (bigrams start at vocab_size); 1 is the unknown word.
        weights = tf.gather(self.idf, grams) * tf.cast(grams > 1, tf.float32)
        norm = tf.sqrt(tf.reduce_sum(weights * weights, axis=1, keepdims=True) + 1e-12)
        return (
            tf.reduce_sum((weights / norm)[:, :, None] * tf.gather(self.table, grams), axis=1)
            + self.bias
        )

    def get_prunable_weights(self):
        """The n-gram table, all but a few weights of the model (TF-MOT's magnitude pruning
        zeroes its smallest entries; a custom layer must name the weights it may prune)."""
        return [self.table]

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "buckets": self.buckets,
            "units": self.units,
            "l2": self.l2,
        }


def tfidf_linear(
    sequence_length: int = 400,
    vocab_size: int = 10000,
    num_classes: int = 2,
    buckets: int = 2**15,
    l2: float = 0.0,
    idf: np.ndarray | None = None,
) -> keras.Model:
    """Logistic regression on TF-IDF of words and hashed word bigrams, over token ids
    (`--model=linear`, text_classifier's default): scikit-learn's TfidfVectorizer +
    LogisticRegression computed inside the graph, so the exported file takes the ids MediaPipe
    feeds. `l2` is the penalty on the mean loss; scikit-learn's C on n texts is
    l2 = 1 / (2 C n). `idf` comes from `ngram_idf` on the training ids.

    Example:

        idf = ngram_idf(train_ids, vocab_size=5000, buckets=2**14)
        model = tfidf_linear(100, 5000, num_classes=2, buckets=2**14, l2=1e-6, idf=idf)
    """
    _check_sizes(
        sequence_length,
        vocab_size,
        0.0,
        buckets=buckets,
        num_classes=num_classes,
        units=num_classes,
    )
    inputs = _token_input(sequence_length)
    outputs = TfIdfLinear(vocab_size, buckets, num_classes, idf, l2, name="logits")(inputs)
    return keras.Model(inputs, outputs, name="tfidf_linear")


def text_rnn(
    sequence_length: int = 200,
    vocab_size: int = 20000,
    num_classes: int = 2,
    embedding_dim: int = 64,
    width: int = 64,
    dropout: float = 0.3,
    cell: str = "lstm",
) -> keras.Model:
    """Embedding, a bidirectional LSTM or GRU of `width` units per direction that skips
    padding (`mask_zero`), and the logits (`--model=lstm` / `--model=gru`).

    Example:

        model = text_rnn(sequence_length=100, vocab_size=5000, num_classes=2, cell="gru")
    """
    _check_sizes(
        sequence_length,
        vocab_size,
        dropout,
        embedding_dim=embedding_dim,
        width=width,
        num_classes=num_classes,
    )
    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell must be 'lstm' or 'gru', received {cell!r}")
    recurrent = layers.LSTM if cell == "lstm" else layers.GRU
    inputs = _token_input(sequence_length)
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(inputs)
    x = layers.Bidirectional(recurrent(width), name=f"bidirectional_{cell}")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"text_{cell}")


@serializable
class PaddingMask(layers.Layer):
    """1.0 where the token id is a real token, 0.0 where it is padding (id 0)."""

    def call(self, ids):
        return tf.cast(tf.not_equal(ids, 0.0), tf.float32)


@serializable
class PositionEmbedding(layers.Layer):
    """Adds a learned vector per position to a (batch, length, dim) sequence."""

    def __init__(self, sequence_length: int, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            "embeddings", (self.sequence_length, input_shape[-1]), initializer=self.initializer
        )
        super().build(input_shape)

    def call(self, x):
        return x + self.embeddings[None, : tf.shape(x)[1], :]

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }


@serializable
class MaskedMeanPooling(layers.Layer):
    """Mean over the positions whose mask is 1: inputs [sequence, mask]."""

    def call(self, inputs):
        sequence, mask = inputs
        total = tf.reduce_sum(sequence * mask[:, :, None], axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)


@serializable
class AttentionMask(layers.Layer):
    """A (batch, 1, length) attention mask from a (batch, length) padding mask."""

    def call(self, mask):
        return mask[:, None, :]


def encoder_block(x, attention_mask, heads: int, feed_forward: int, dropout: float, name: str):
    """One post-norm Transformer encoder block: self-attention, then a ReLU feed-forward layer,
    each with dropout, a residual connection and layer normalization."""
    dim = x.shape[-1]
    attended = layers.MultiHeadAttention(heads, dim // heads, dropout=dropout, name=f"{name}_mha")(
        x, x, attention_mask=attention_mask
    )
    x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(
        layers.Add(name=f"{name}_add1")([x, layers.Dropout(dropout)(attended)])
    )
    y = layers.Dense(feed_forward, activation="relu", name=f"{name}_ff1")(x)
    y = layers.Dropout(dropout)(layers.Dense(dim, name=f"{name}_ff2")(y))
    return layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(
        layers.Add(name=f"{name}_add2")([x, y])
    )


def text_transformer(
    sequence_length: int = 200,
    vocab_size: int = 20000,
    num_classes: int = 2,
    embedding_dim: int = 64,
    heads: int = 4,
    blocks: int = 2,
    dropout: float = 0.1,
) -> keras.Model:
    """A small Transformer encoder trained from scratch (`--model=transformer`): token and
    learned position embeddings, `blocks` self-attention blocks that never attend to padding,
    mean pooling over the real tokens, logits. Feed-forward width is 2 x embedding_dim.

    Example:

        model = text_transformer(sequence_length=128, vocab_size=5000, num_classes=2)
    """
    _check_sizes(
        sequence_length,
        vocab_size,
        dropout,
        embedding_dim=embedding_dim,
        heads=heads,
        blocks=blocks,
        num_classes=num_classes,
    )
    if embedding_dim % heads:
        raise ValueError(
            f"embedding_dim must be a multiple of heads, received {embedding_dim} and {heads}"
        )
    # Each block keeps a float32 score per head and token pair for the backward pass: a lower
    # bound at a batch of one.
    check_memory(
        4 * blocks * heads * sequence_length**2,
        f"attention over sequence_length={sequence_length:,} tokens ({blocks} blocks of {heads} "
        "heads, one text)",
        "lower --sequence_length",
    )
    inputs = _token_input(sequence_length)
    mask = PaddingMask(name="padding_mask")(inputs)
    attention_mask = AttentionMask(name="attention_mask")(mask)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = PositionEmbedding(sequence_length, name="position_embedding")(x)
    x = layers.Dropout(dropout)(x)
    for block in range(blocks):
        x = encoder_block(x, attention_mask, heads, 2 * embedding_dim, dropout, f"block{block + 1}")
    x = MaskedMeanPooling(name="pool")([x, mask])
    x = layers.Dropout(dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="text_transformer")
