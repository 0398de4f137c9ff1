"""The TF-IDF text models over token ids: n-gram features computed inside the graph (word ids,
hashed or exact bigrams, leading words), their idf, and the two models on them:
`tfidf_linear` (logistic regression, text_classifier's default `linear`, fitted by scikit-learn
in trainer.logistic_regression) and `bag_of_ngrams` (a hidden layer on the same features,
`bow`). Kept apart from trainer.models.text (the sequence models: CNN, RNN, Transformer), whose
input and size checks these builders share.

Example:

    from trainer.models.text_ngrams import tfidf_linear
    model = tfidf_linear(sequence_length=400, vocab_size=10000, num_classes=8, buckets=2**15)
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.config import check_number
from trainer.models.text import check_sizes, token_input

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="trainer")
# Bigram ids are a * vocab_size + b in int32 (TFLite builtins have no int64 multiply here).
LARGEST_BAG_VOCABULARY = 46340


def ngram_ids(ids, vocab_size: int, buckets: int, leading_tokens: int = 0, bigram_keys=None):
    """Unigram ids, then hashed bigram ids, then (with `leading_tokens`) the leading words'
    ids, shape (batch, 2 * length - 1 + leading_tokens), 0 = none.

    A bigram (a, b) of two real tokens has the key `a * vocab_size + b` and gets
    `vocab_size + key mod buckets`; bigrams touching padding get 0. With `bigram_keys` (one
    key per bucket, `bigram_owners`), a bigram gets its bucket only if it is the bucket's
    owner, else 0: a vocabulary of bigrams instead of collisions. A word among the first
    `leading_tokens` tokens also gets `vocab_size + buckets + id`, a feature of its own: a
    title or first line often names the class (Debian's short descriptions, a manual page's
    NAME line), and there the same word can weigh more than in the body. Works on tensors and
    on NumPy arrays (returns a tensor).
    """
    ids = tf.cast(ids, tf.int32)
    first, second = ids[:, :-1], ids[:, 1:]
    keys = first * vocab_size + second
    bucket = tf.math.floormod(keys, buckets)
    real = (first > 0) & (second > 0)
    if bigram_keys is not None:
        real = real & tf.equal(tf.gather(tf.cast(bigram_keys, tf.int32), bucket), keys)
    bigrams = tf.where(real, vocab_size + bucket, tf.zeros_like(bucket))
    if not leading_tokens:
        return tf.concat([ids, bigrams], axis=1)
    leading = ids[:, :leading_tokens]
    leading = tf.where(leading > 1, vocab_size + buckets + leading, tf.zeros_like(leading))
    return tf.concat([ids, bigrams, leading], axis=1)


def bigram_owners(ids: np.ndarray, vocab_size: int, buckets: int) -> np.ndarray:
    """Each bucket's owner among the bigrams of `ids` (the training split): the key
    (`a * vocab_size + b`) of the bigram in most texts among those hashed to it (the smaller
    key on a tie), or -1 for a bucket no bigram reaches. int32, shape (buckets,).

    With these keys `ngram_ids` gives every other bigram no feature, as a bigram outside
    TfidfVectorizer's vocabulary: the rare bigrams that shared a bucket with a frequent one
    no longer blur its weight (on the text sets of bench/real_data.py, the validation loss of
    the fitted linear model drops on every set).

    Example:

        keys = bigram_owners(train_ids, vocab_size=5000, buckets=2**14)
    """
    ids = np.asarray(ids).astype(np.int64)
    first, second = ids[:, :-1], ids[:, 1:]
    keys = np.where((first > 0) & (second > 0), first * vocab_size + second, -1)
    keys = np.sort(keys, axis=1)
    # Each text's distinct keys: a key equal to its left neighbour in the sorted row repeats.
    distinct = np.ones_like(keys, bool)
    distinct[:, 1:] = keys[:, 1:] != keys[:, :-1]
    keys, document_frequency = np.unique(keys[distinct & (keys >= 0)], return_counts=True)
    owners = np.full(buckets, -1, np.int32)
    # Sorted by bucket, then most texts first, then the smaller key: the first of each bucket.
    order = np.lexsort((keys, -document_frequency, keys % buckets))
    bucket = keys[order] % buckets
    first_of_bucket = np.ones(len(order), bool)
    first_of_bucket[1:] = bucket[1:] != bucket[:-1]
    owners[bucket[first_of_bucket]] = keys[order][first_of_bucket]
    return owners


def ngram_idf(
    ids: np.ndarray,
    vocab_size: int,
    buckets: int,
    batch_size: int = 512,
    min_document_frequency: int = 0,
    leading_tokens: int = 0,
    bigram_keys: np.ndarray | None = None,
) -> np.ndarray:
    """Smoothed inverse document frequency of every n-gram id of `ngram_ids` in `ids` (the
    training split only): log((1 + n) / (1 + df)) + 1, as scikit-learn's TfidfVectorizer,
    and 0 for an n-gram in fewer than `min_document_frequency` texts: the n-gram is no
    feature, as one outside TfidfVectorizer's vocabulary (1: n-grams never seen in training;
    2: also those of a single text, its `min_df=2`). `bigram_keys`: as in `ngram_ids`.

    Example:

        idf = ngram_idf(vectorizer(train_texts), vocab_size=len(vectorizer.vocabulary),
                        buckets=2**16)
    """
    size = vocab_size + buckets + (vocab_size if leading_tokens else 0)
    document_frequency = np.zeros(size, np.int64)
    for start in range(0, len(ids), batch_size):
        batch = np.asarray(ids[start : start + batch_size])
        grams = ngram_ids(batch, vocab_size, buckets, leading_tokens, bigram_keys)
        for row in grams.numpy():
            document_frequency[np.unique(row[row > 0])] += 1
    idf = np.log((1.0 + len(ids)) / (1.0 + document_frequency)) + 1.0
    idf[document_frequency < min_document_frequency] = 0.0
    return idf.astype(np.float32)


def tf_idf_weights(grams, idf, first_feature: int, table_size: int | None = None):
    """Each position's weight in its text's TF-IDF vector, shape of `grams`: sublinear term
    frequency (1 + log count) x idf, L2-normalized over the text's distinct n-grams, and
    divided by the count, so that the weights of a repeated n-gram's positions add up to its
    TF-IDF value. `sum(weights[:, :, None] * table[grams], axis=1)` is then exactly a dense
    layer on scikit-learn's TfidfVectorizer(sublinear_tf=True) features, without building the
    vocabulary-wide vector.

    Ids below `first_feature` (padding 0, and the unknown word 1 when it is 2) weigh 0.
    Counts come from a (batch, `table_size`) scatter of the ids, linear in the text's length
    (`table_size`: the number of n-gram ids), or without it from comparing every position
    with every other, quadratic in the length but without a table per text. Builtin TFLite
    ops only.
    """
    valid = tf.cast(grams >= first_feature, tf.float32)
    if table_size is None:
        same = tf.cast(tf.equal(grams[:, :, None], grams[:, None, :]), tf.float32)
        counts = tf.reduce_sum(same * valid[:, None, :], axis=2)
    else:
        rows = tf.broadcast_to(tf.range(tf.shape(grams)[0])[:, None], tf.shape(grams))
        positions = tf.stack([rows, grams], axis=-1)
        shape = tf.stack([tf.shape(grams)[0], table_size])
        counts = tf.gather_nd(tf.scatter_nd(positions, valid, shape), positions)
    counts = tf.maximum(counts, 1.0)
    tf_idf = (1.0 + tf.math.log(counts)) * tf.gather(idf, grams) * valid
    # A distinct n-gram appears `count` times: its square counts once in the norm.
    squared_norm = tf.reduce_sum(tf_idf * tf_idf / counts, axis=1, keepdims=True)
    return tf_idf / counts / tf.sqrt(squared_norm + 1e-12)


class NgramTable(layers.Layer):
    """What the TF-IDF layers share: a trainable (n-gram ids, units) table, a fixed idf
    vector, and the output, each text's weighted sum of its n-grams' rows.

    A subclass says which n-grams a text has and what each weighs (`features`) and adds what
    else it holds (a bias, the bigrams' owners). Not registered for serialization: a saved
    model holds the subclasses, under their own names.
    """

    def __init__(self, vocab_size: int, buckets: int, units: int, idf=None, **kwargs):
        super().__init__(**kwargs)
        if vocab_size > LARGEST_BAG_VOCABULARY or min(buckets, units) < 1:
            raise ValueError(
                f"{type(self).__name__} needs vocab_size <= {LARGEST_BAG_VOCABULARY}, buckets "
                f">= 1 and units >= 1, received {vocab_size}, {buckets} and {units}; lower "
                "--vocab_size"
            )
        self.vocab_size, self.buckets, self.units = vocab_size, buckets, units
        self._initial_idf = None if idf is None else np.asarray(idf, np.float32)

    @property
    def size(self) -> int:
        """The number of n-gram ids (rows of the table): words, then bigram buckets."""
        return self.vocab_size + self.buckets

    def _add_table(self, initializer, regularizer=None) -> None:
        if self._initial_idf is not None and self._initial_idf.shape != (self.size,):
            raise ValueError(
                f"idf must have one value per n-gram id ({self.size}), received "
                f"{self._initial_idf.shape}; make it with ngram_idf and the layer's vocab_size, "
                "buckets and leading_tokens"
            )
        self.table = self.add_weight(
            "table", (self.size, self.units), initializer=initializer, regularizer=regularizer
        )

    def _add_idf(self) -> None:
        """The fixed idf vector (ones until `ngram_idf`'s values are set). A saved model's
        weights are in creation order, so each subclass keeps its own order of calls."""
        initial = self._initial_idf
        initializer = keras.initializers.Constant(initial) if initial is not None else "ones"
        self.idf = self.add_weight("idf", (self.size,), initializer=initializer, trainable=False)

    def features(self, ids):
        """(n-gram ids, their weights), each (batch, positions): the text's TF-IDF vector is
        the sum of one-hot n-gram ids times weights."""
        raise NotImplementedError(f"{type(self).__name__} must define features(ids)")

    def call(self, ids):
        grams, weights = self.features(ids)
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
        }


@serializable
class NgramTfIdf(NgramTable):
    """TF-IDF features of the unigrams and hashed bigrams of token ids, times a weight table.

    For each text the layer computes sublinear term frequency (1 + log count) x idf for every
    distinct n-gram (the unknown-word id 1 included), L2-normalizes the vector and multiplies
    it by a trainable (vocabulary, units) table: a dense layer on TfidfVectorizer(ngram_range=
    (1, 2), sublinear_tf=True) features (`tf_idf_weights`). Counts come from comparing the
    n-grams of one text with each other, which needs no table per text in training batches
    over a large vocabulary. Builtin TFLite ops only.
    """

    def __init__(
        self, vocab_size: int, buckets: int, units: int, idf=None, initializer="zeros", **kwargs
    ):
        super().__init__(vocab_size, buckets, units, idf, **kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self._add_table(self.initializer)
        self._add_idf()
        super().build(input_shape)

    def features(self, ids):
        grams = ngram_ids(ids, self.vocab_size, self.buckets)
        return grams, tf_idf_weights(grams, self.idf, first_feature=1)

    def get_config(self):
        initializer = keras.initializers.serialize(self.initializer)
        return {**super().get_config(), "initializer": initializer}


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
    check_sizes(
        sequence_length, vocab_size, dropout, buckets=buckets, num_classes=num_classes, units=units
    )
    inputs = token_input(sequence_length)
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
class TfIdfLinear(NgramTable):
    """Logits of a linear model on the TF-IDF of a text's words, hashed word bigrams and
    leading words.

    The features are scikit-learn's TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    computed from token ids (`tf_idf_weights`, counts by a scatter, so the cost grows with the
    text's length, not its square), plus the first `leading_tokens` words as features of their
    own (`ngram_ids`); the output is the weighted sum of the n-grams' rows of a (n-gram ids,
    units) table plus a bias. With `exact_bigrams` each bucket keeps the key of the training
    bigram it belongs to (`bigram_owners`, set by `adapt`), and a bigram that does not own
    its bucket is no feature: a vocabulary of bigrams rather than collisions, for 4 bytes per
    bucket. The unknown-word id (1) and padding carry no
    feature, nor does an n-gram whose idf is 0 (`ngram_idf`'s `min_document_frequency`).
    `features` gives the weights themselves, so that a solver outside Keras can fit the table
    (trainer.logistic_regression). Builtin TFLite ops only.
    """

    def __init__(
        self,
        vocab_size: int,
        buckets: int,
        units: int,
        idf=None,
        l2: float = 0.0,
        leading_tokens: int = 0,
        exact_bigrams: bool = False,
        **kwargs,
    ):
        super().__init__(vocab_size, buckets, units, idf, **kwargs)
        if min(l2, leading_tokens) < 0:
            raise ValueError(
                f"TfIdfLinear needs l2 >= 0 and leading_tokens >= 0, received {l2} and "
                f"{leading_tokens}"
            )
        self.l2, self.leading_tokens, self.exact_bigrams = l2, leading_tokens, exact_bigrams

    @property
    def size(self) -> int:
        """The number of n-gram ids: words, bigram buckets, then leading words."""
        return super().size + (self.vocab_size if self.leading_tokens else 0)

    def build(self, input_shape):
        # Zeros, as logistic regression starts; the penalty is scikit-learn's L2 on the table.
        self._add_table("zeros", keras.regularizers.L2(self.l2) if self.l2 else None)
        self.bias = self.add_weight("bias", (self.units,), initializer="zeros")
        self._add_idf()
        # -1: no bigram owns the bucket (until `adapt`).
        self.bigram_keys = (
            self.add_weight(
                "bigram_keys",
                (self.buckets,),
                dtype="int32",
                initializer=keras.initializers.Constant(-1),
                trainable=False,
            )
            if self.exact_bigrams
            else None
        )
        super().build(input_shape)

    def adapt(self, ids: np.ndarray) -> None:
        """Sets the idf (and with `exact_bigrams` each bucket's bigram) from `ids`, training
        texts only, with `ngram_idf` (and `bigram_owners`); an n-gram no training text holds
        is no feature, as in TfidfVectorizer, instead of weighing most in a text's norm."""
        if not self.built:
            self.build((None, np.shape(ids)[1]))
        keys = None
        if self.exact_bigrams:
            keys = bigram_owners(ids, self.vocab_size, self.buckets)
            self.bigram_keys.assign(keys)
        self.idf.assign(
            ngram_idf(ids, self.vocab_size, self.buckets, 512, 1, self.leading_tokens, keys)
        )

    def features(self, ids):
        grams = ngram_ids(ids, self.vocab_size, self.buckets, self.leading_tokens, self.bigram_keys)
        return grams, tf_idf_weights(grams, self.idf, first_feature=2, table_size=self.size)

    def call(self, ids):
        return super().call(ids) + self.bias

    def get_config(self):
        return {
            **super().get_config(),
            "l2": self.l2,
            "leading_tokens": self.leading_tokens,
            "exact_bigrams": self.exact_bigrams,
        }


def tfidf_linear(
    sequence_length: int = 400,
    vocab_size: int = 10000,
    num_classes: int = 2,
    buckets: int = 2**15,
    l2: float = 0.0,
    idf: np.ndarray | None = None,
    leading_tokens: int = 0,
    exact_bigrams: bool = False,
) -> keras.Model:
    """Logistic regression on TF-IDF of words, hashed word bigrams and the first
    `leading_tokens` words, over token ids (`--model=linear`, text_classifier's default):
    scikit-learn's TfidfVectorizer + LogisticRegression computed inside the graph, so the
    exported file takes the ids MediaPipe feeds. `l2` is the penalty on the mean loss for Keras
    training; scikit-learn's C on n texts is l2 = 1 / (2 C n). `idf` comes from `ngram_idf` on
    the training ids, with the same `leading_tokens`; `exact_bigrams` keeps one bigram per
    bucket (`TfIdfLinear`), set with the idf by the layer's `adapt`.

    Example:

        idf = ngram_idf(train_ids, vocab_size=5000, buckets=2**14, leading_tokens=8)
        model = tfidf_linear(100, 5000, num_classes=2, buckets=2**14, l2=1e-6, idf=idf,
                             leading_tokens=8)
    """
    check_sizes(
        sequence_length,
        vocab_size,
        0.0,
        buckets=buckets,
        num_classes=num_classes,
        units=num_classes,
    )
    inputs = token_input(sequence_length)
    outputs = TfIdfLinear(
        vocab_size, buckets, num_classes, idf, l2, leading_tokens, exact_bigrams, name="logits"
    )(inputs)
    return keras.Model(inputs, outputs, name="tfidf_linear")
