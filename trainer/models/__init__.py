"""Model builders: plain functions with explicit arguments that return `tf_keras` models.

Every builder returns an uncompiled functional model whose output is logits (no softmax), so
losses use `from_logits=True` and exported TFLite files give logits too. One module per family:
`image` (small CNN, CIFAR ResNets, ResNet-9), `text` (bag of n-grams, CNN, LSTM/GRU,
Transformer over token ids), `bert` (BERT from its original checkpoint, WordPiece) and
`transfer` (Keras Applications backbones with a new head). This package must not compile,
train or export.

Example:

    from trainer.models import small_cnn
    model = small_cnn(input_shape=(28, 28, 1), num_classes=10)
    model.summary()
"""

from trainer.models.image import (
    resnet,
    resnet9,
    small_cnn,
    with_test_time_flip,
    without_test_time_flip,
)
from trainer.models.text import text_classifier, text_rnn, text_transformer
from trainer.models.text_ngrams import bag_of_ngrams, ngram_idf

__all__ = [
    "bag_of_ngrams",
    "ngram_idf",
    "resnet",
    "resnet9",
    "small_cnn",
    "text_classifier",
    "text_rnn",
    "text_transformer",
    "with_test_time_flip",
    "without_test_time_flip",
]
