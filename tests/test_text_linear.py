"""The `linear` text model (text_classifier's default): its TF-IDF features against a direct
computation, and one tiny run that trains, beats the majority class and exports a file
MediaPipe's TextClassifier loads and answers with LiteRT's top class."""

from pathlib import Path

import numpy as np
import pytest
from test_mobile_text import CLASSES, _classify, _trained_export, write_reviews

import trainer  # noqa: F401
from trainer.export import convert, predict_tflite
from trainer.models import ngram_idf
from trainer.models.text import TfIdfLinear, tfidf_linear


def test_linear_logits_are_a_table_times_normalized_tf_idf():
    vocab, buckets = 6, 5
    ids = np.array([[2, 3, 2, 1, 4, 0, 0], [5, 5, 1, 0, 0, 0, 0]], np.float32)
    idf = ngram_idf(ids, vocab, buckets)
    model = tfidf_linear(7, vocab, num_classes=3, buckets=buckets, l2=1e-3, idf=idf)
    layer = model.get_layer("logits")
    assert isinstance(layer, TfIdfLinear) and len(model.losses) == 1  # the L2 penalty
    table = np.random.default_rng(0).normal(size=(vocab + buckets, 3)).astype(np.float32)
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    layer.set_weights([table, bias, idf])
    for row, tokens in enumerate(ids.astype(int)):
        tokens = [t for t in tokens if t > 0]
        # Words except the unknown id 1; every bigram of real tokens, unknown ones included.
        grams = [t for t in tokens if t > 1] + [
            vocab + (a * vocab + b) % buckets for a, b in zip(tokens, tokens[1:], strict=False)
        ]
        weights = np.array([idf[gram] for gram in grams])
        weights /= np.linalg.norm(weights)
        expected = sum(w * table[g] for w, g in zip(weights, grams, strict=True)) + bias
        np.testing.assert_allclose(model(ids[row : row + 1]).numpy()[0], expected, atol=1e-5)
    # Builtin ops only (the exported files' b"Flex" can be a word of the packed vocabulary).
    content = convert(model, "float32")
    assert b"Flex" not in content
    np.testing.assert_allclose(predict_tflite(content, ids), model(ids).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="l2 >= 0"):
        TfIdfLinear(vocab, buckets, 3, l2=-1.0)


def test_the_default_text_model_trains_and_mediapipe_loads_its_file(tmp_path):
    from recipes import text_classifier

    assert text_classifier.Config().model == "linear"
    reviews = write_reviews(tmp_path / "texts", per_class=100, test_per_class=24)
    experiment, result = _trained_export(reviews, tmp_path / "out", epochs=5, buckets=1024)
    assert experiment.model.name == "tfidf_linear"
    majority = np.mean(experiment.y_test == np.bincount(experiment.y_test).argmax())
    assert result.accuracy >= 0.9 > majority, (result.accuracy, majority)
    check = result.mediapipe
    assert check is not None and check.loaded and check.labels == CLASSES, check
    categories = _classify(Path(result.path), experiment.test_texts)
    top1 = np.array([found[0].index for found in categories])
    litert = predict_tflite(Path(result.path).read_bytes(), experiment.x_test)
    np.testing.assert_array_equal(top1, np.argmax(litert, axis=-1))
    assert check.agreement == 1.0
