"""Text to token ids, outside the model, and batched datasets of them.

Tokenizing in the pipeline keeps string ops out of the exported TFLite model (they need the
Flex delegate on phones); the app applies the saved vocabulary the same way: lower-case,
strip punctuation, split on whitespace, id = line number in `vocabulary.txt` (0 = padding,
1 = unknown word). This module must not define models or read data sources.

Example:

    from trainer.data.text import Vectorizer
    vectorizer = Vectorizer(vocab_size=5000, sequence_length=100).adapt(["a good film", "bad"])
    ids = vectorizer(["a good film"])   # float32 (1, 100)
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from trainer.data.pipeline import finish
from trainer.files import atomic_write_text


class Vectorizer:
    """Learns a vocabulary from training texts and turns texts into fixed-length id rows.

    Args:
        vocab_size: most frequent training words kept, padding and "[UNK]" included.
        sequence_length: ids per text; longer texts are cut, shorter ones padded with 0.

    Example:

        vectorizer = Vectorizer(vocab_size=100, sequence_length=4).adapt(["good film", "bad"])
        vectorizer(["good bad film"])  # array([[2., 4., 3., 0.]], dtype=float32)
    """

    def __init__(self, vocab_size: int = 20000, sequence_length: int = 200):
        if vocab_size < 3 or sequence_length < 1:
            raise ValueError(
                "vocab_size must be at least 3 and sequence_length positive, received "
                f"{vocab_size} and {sequence_length}"
            )
        import tf_keras as keras

        self.vocab_size = vocab_size
        self.sequence_length = sequence_length
        self.layer = keras.layers.TextVectorization(
            max_tokens=vocab_size, output_sequence_length=sequence_length
        )

    def adapt(self, texts) -> "Vectorizer":
        """Builds the vocabulary from `texts` (the training split only, never the test set)."""
        self.layer.adapt(tf.constant([str(text) for text in texts]))
        return self

    def __call__(self, texts, batch_size: int = 1024) -> np.ndarray:
        """float32 token ids, shape (len(texts), sequence_length), zero-padded."""
        texts = [str(text) for text in texts]
        rows = [
            self.layer(tf.constant(texts[i : i + batch_size])).numpy()
            for i in range(0, len(texts), batch_size)
        ]
        if not rows:
            return np.zeros((0, self.sequence_length), np.float32)
        return np.concatenate(rows).astype(np.float32)

    @property
    def vocabulary(self) -> list[str]:
        return [str(token) for token in self.layer.get_vocabulary()]

    def save_vocabulary(self, path: str | Path) -> Path:
        """One token per line; the line number (from 0) is the token's id."""
        return atomic_write_text(path, "\n".join(self.vocabulary) + "\n")

    def get_config(self) -> dict:
        return {"vocab_size": self.vocab_size, "sequence_length": self.sequence_length}


def token_dataset(
    ids: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    batch_size: int,
    training: bool,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 token ids, one-hot labels); shuffled each epoch when training."""
    if len(ids) != len(labels):
        raise ValueError(f"{len(ids)} rows of ids but {len(labels)} labels; they must match")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, received {batch_size}")
    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(ids, np.float32), np.asarray(labels)))
    if training:
        dataset = dataset.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(lambda x, y: (x, tf.one_hot(y, num_classes)))
    return finish(dataset)
