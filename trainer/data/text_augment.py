"""Text augmentation at the data level: extra training copies with words dropped or swapped.

`augment_texts` returns the training texts followed by `copies` altered copies of each, with
their labels: every word of a copy is dropped with probability `word_dropout` (at least one
word is kept), then `word_swap` times its length pairs of words trade places (the random
deletion and random swap of EDA, Wei and Zou 2019). Copies are written as the words the text
models read (`trainer.data.text_check.model_words`), so they tokenize exactly as the
originals do. Apply it to the training split only, after the validation split is carved, so
no copy of a validation text trains the model. This module must not import TensorFlow or
touch files.

Measured with `text_classifier`'s default model on the four text sets of
`bench/real_data.py`: see bench/results/text_augment.json before turning it on.

Example:

    >>> import numpy as np
    >>> from trainer.data.text_augment import augment_texts
    >>> texts = np.array(["a quiet calm lake at dawn", "Loud, fast & angry!"], dtype=object)
    >>> new_texts, new_labels = augment_texts(texts, np.array([0, 1]), copies=1,
    ...                                       word_dropout=0.2, word_swap=0.0, seed=1)
    >>> len(new_texts), new_labels.tolist()
    (4, [0, 1, 0, 1])
    >>> new_texts[:2].tolist() == texts.tolist()  # the originals come first, unchanged
    True
"""

import numpy as np

from trainer.data.text_check import model_words


def _check(copies: int, word_dropout: float, word_swap: float) -> None:
    if not isinstance(copies, int | np.integer) or copies < 0:
        raise ValueError(f"copies must be a whole number >= 0, received {copies!r}")
    if not 0 <= word_dropout < 1:
        raise ValueError(
            f"word_dropout must be in [0, 1) (the chance each word is dropped), received "
            f"{word_dropout!r}; 0.1 is usual"
        )
    if not 0 <= word_swap <= 1:
        raise ValueError(
            f"word_swap must be in [0, 1] (swaps per word of the text), received "
            f"{word_swap!r}; 0.1 is usual"
        )


def augment_words(
    words: list[str], rng: np.random.Generator, word_dropout: float, word_swap: float
) -> list[str]:
    """One altered copy of `words`: each dropped with probability `word_dropout` (one kept
    at least), then `round(word_swap * len)` random pairs swapped."""
    if not words:
        return []
    kept = [word for word in words if rng.random() >= word_dropout]
    if not kept:
        kept = [words[int(rng.integers(len(words)))]]
    for _ in range(round(word_swap * len(kept)) if len(kept) > 1 else 0):
        first, second = rng.choice(len(kept), size=2, replace=False)
        kept[first], kept[second] = kept[second], kept[first]
    return kept


def augment_texts(
    texts: np.ndarray,
    labels: np.ndarray,
    *,
    copies: int = 1,
    word_dropout: float = 0.1,
    word_swap: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`texts` and `labels` followed by `copies` altered copies of each text with its label
    (see the module docstring); the same seed gives the same copies."""
    _check(copies, word_dropout, word_swap)
    texts = np.asarray(texts, dtype=object)
    labels = np.asarray(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels; they must match")
    rng = np.random.default_rng(seed)
    words = [model_words(text) for text in texts]
    extra = [
        " ".join(augment_words(found, rng, word_dropout, word_swap))
        for _ in range(copies)
        for found in words
    ]
    new_texts = np.empty(len(texts) + len(extra), dtype=object)
    new_texts[: len(texts)] = texts
    new_texts[len(texts) :] = extra
    return new_texts, np.concatenate([labels, np.tile(labels, copies)])
