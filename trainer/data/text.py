"""Text to token ids, outside the model, and batched datasets of them.

Tokenizing in the pipeline keeps string ops out of the exported TFLite model (they need the
Flex delegate on phones). The default standardization, `lower_and_split_punctuation`, is one a
mobile runtime can repeat: lower-case ASCII letters, and treat every character that is not a
letter, digit or combining mark as a word boundary (the RE2 pattern `WORD_DELIMITER`); id =
line number in `vocabulary.txt` (0 = padding, 1 = unknown word). MediaPipe Tasks' regex
tokenizer splits on the same pattern but cannot lower-case, so `Vectorizer.spellings` lists
every spelling that maps to each id (the word, Capitalized, UPPER and the spellings seen in
training) for the exported file's vocabulary (`trainer.export.text`). Keras's
`lower_and_strip_punctuation` ("don't" -> "dont", "GNU/Linux" -> "gnulinux") stays available
for runs made with it; no regex tokenizer can merge words that way. This module must not
define models or read data sources.

Example:

    >>> from trainer.data.text import Vectorizer
    >>> vectorizer = Vectorizer(vocab_size=5000, sequence_length=100).adapt(["a good film", "bad"])
    >>> ids = vectorizer(["a good film"])
    >>> ids.shape, ids.dtype
    ((1, 100), dtype('float32'))
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from trainer.data.pipeline import finish
from trainer.files import atomic_write_text

# A word is a run of letters, digits and combining marks (RE2 syntax, as TensorFlow's and
# MediaPipe's regex ops read it); every other character separates words.
WORD_DELIMITER = r"[^\p{L}\p{N}\p{M}]+"
STANDARDIZE_MODES = ("lower_and_split_punctuation", "lower_and_strip_punctuation")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def lower_and_split_punctuation(texts: tf.Tensor) -> tf.Tensor:
    """ASCII lower-case, then one space for every run of `WORD_DELIMITER` characters."""
    return tf.strings.regex_replace(tf.strings.lower(texts), WORD_DELIMITER, " ")


def _spellings(texts: list[str]) -> dict[str, str]:
    """Each distinct word of `texts` as a regex tokenizer splits them (spelling kept) -> the
    word as `lower_and_split_punctuation` makes it."""
    spaced = tf.strings.regex_replace(tf.constant(texts), WORD_DELIMITER, " ")
    words = np.unique(tf.strings.split(spaced).flat_values.numpy())
    lowered = tf.strings.lower(words).numpy() if len(words) else []
    return {
        word.decode("utf-8"): lower.decode("utf-8")
        for word, lower in zip(words, lowered, strict=True)
        if word != lower
    }


class Vectorizer:
    """Learns a vocabulary from training texts and turns texts into fixed-length id rows.

    Args:
        vocab_size: most frequent training words kept, padding and "[UNK]" included.
        sequence_length: ids per text; longer texts are cut, shorter ones padded with 0.
        standardize: `lower_and_split_punctuation` (what a mobile regex tokenizer repeats;
            see the module docstring) or Keras's `lower_and_strip_punctuation`.

    Example:

        >>> from trainer.data.text import Vectorizer
        >>> vectorizer = Vectorizer(vocab_size=100, sequence_length=4).adapt(["good film", "bad"])
        >>> vectorizer(["good bad film"])
        array([[2., 4., 3., 0.]], dtype=float32)
    """

    def __init__(
        self,
        vocab_size: int = 20000,
        sequence_length: int = 200,
        standardize: str = "lower_and_split_punctuation",
    ):
        if vocab_size < 3 or sequence_length < 1:
            raise ValueError(
                "vocab_size must be at least 3 and sequence_length positive, received "
                f"{vocab_size} and {sequence_length}"
            )
        if standardize not in STANDARDIZE_MODES:
            raise ValueError(
                f"standardize must be one of {', '.join(STANDARDIZE_MODES)}, received "
                f"{standardize!r}"
            )
        import tf_keras as keras

        self.vocab_size = vocab_size
        self.sequence_length = sequence_length
        self.standardize = standardize
        self.layer = keras.layers.TextVectorization(
            max_tokens=vocab_size,
            output_sequence_length=sequence_length,
            standardize=(
                lower_and_split_punctuation
                if standardize == "lower_and_split_punctuation"
                else standardize
            ),
        )
        self._seen_spellings: dict[str, str] = {}

    def adapt(self, texts) -> "Vectorizer":
        """Builds the vocabulary from `texts` (the training split only, never the test set)."""
        texts = [str(text) for text in texts]
        self.layer.adapt(tf.constant(texts))
        if self.standardize == "lower_and_split_punctuation":
            self._seen_spellings = _spellings(texts)
        return self

    def spellings(self) -> dict[str, int]:
        """Every spelling this vectorizer maps to a vocabulary id, id 2 and up: each word,
        Capitalized and UPPER (ASCII letters), and the spellings seen by `adapt` (e.g.
        "OpenGL" for "opengl"). A tokenizer that cannot lower-case looks words up here.

        Only for `lower_and_split_punctuation`, whose words a regex tokenizer finds.
        """
        if self.standardize != "lower_and_split_punctuation":
            raise ValueError(
                f"spellings exist for standardize='lower_and_split_punctuation', not "
                f"{self.standardize!r}: stripped punctuation cannot be put back"
            )
        ids = {word: index for index, word in enumerate(self.vocabulary) if index >= 2}
        found = {}
        for word, index in ids.items():
            upper = word.translate(_ASCII_UPPER)
            for spelling in (word, upper[:1] + word[1:], upper):
                found.setdefault(spelling, index)
        for spelling, word in self._seen_spellings.items():
            if word in ids:
                found.setdefault(spelling, ids[word])
        return found

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
        return {
            "vocab_size": self.vocab_size,
            "sequence_length": self.sequence_length,
            "standardize": self.standardize,
        }


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
