"""Text model builders over token ids: CNN, bidirectional LSTM/GRU, Transformer; the TF-IDF
models (logistic regression, bag of n-grams) are in trainer.models.text_ngrams and share this
module's input and size checks.

Every builder takes float32 token ids of shape (sequence_length,) as made by
`trainer.data.text.Vectorizer` (0 = padding, 1 = unknown word; ids below 2**24 are exact in
float32), so string processing stays in the pipeline. The exported file takes int32 ids and
casts them inside its graph, with the tokenizer in its metadata, so MediaPipe Tasks'
TextClassifier runs every model here from raw text (`trainer.export.text`). Outputs are
logits. Padding is masked everywhere: the TF-IDF models ignore it, the recurrent models skip it (`mask_zero`), the Transformer's attention and pooling
never look at it. The custom layers here are registered with Keras, so saved models reload. This
module must not compile, train or export.

Which to pick (measured against scikit-learn's TF-IDF + logistic regression tuned by
cross-validation: bench/results/real_data_text.json and text_models_debian.json):
`tfidf_linear` (text_classifier's default) is that baseline computed from token ids, above it
on every text set of bench/real_data.py in under a minute of training with a file under 1 MiB;
the Transformer came within 0.1 pp of the
baseline at minutes of training, for larger data; the CNN gives a small and fast file; the
bidirectional LSTM and GRU are the slowest per text. Their
files are unrolled (one step of ops per token) and converted at batch size 1
(trainer.export), so they need no select TF ops and run in one subgraph, which MediaPipe
requires; none of these models needs select TF ops.

Example:

    from trainer.models import bag_of_ngrams, text_rnn, text_transformer
    model = text_rnn(sequence_length=100, vocab_size=5000, num_classes=2, cell="gru")
"""

import tensorflow as tf
import tf_keras as keras

from trainer.config import check_number
from trainer.resources import TRAINING_BYTES_PER_WEIGHT, check_memory

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="trainer")


def check_sizes(sequence_length: int, vocab_size: int, dropout: float, **sizes: int) -> None:
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


def token_input(sequence_length: int):
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
    check_sizes(
        sequence_length,
        vocab_size,
        dropout,
        embedding_dim=embedding_dim,
        width=width,
        num_classes=num_classes,
    )
    inputs = token_input(sequence_length)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(inputs)
    x = layers.Conv1D(width, 5, padding="same", activation="relu", name="conv")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="text_classifier")


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
    check_sizes(
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
    inputs = token_input(sequence_length)
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
    check_sizes(
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
    inputs = token_input(sequence_length)
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
