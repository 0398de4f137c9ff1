"""The `linear` text model (text_classifier's default): its TF-IDF features against a direct
computation, scikit-learn's fit written into it, and one tiny run that fits, beats the
majority class and exports a file MediaPipe's TextClassifier loads and answers with LiteRT's
top class."""

from pathlib import Path

import numpy as np
import pytest
from test_mobile_text import CLASSES, export_float32, write_reviews

import trainer  # noqa: F401
from conftest import classify_texts
from trainer.export import convert, predict_tflite
from trainer.logistic_regression import (
    _set_coefficients,
    choose_regularization,
    fit_logistic_regression,
    held_out_val_accuracy,
    tf_idf_matrix,
)
from trainer.models import ngram_idf
from trainer.models.text_choice import with_text_model_defaults
from trainer.models.text_ngrams import (
    TfIdfLinear,
    bigram_owners,
    ngram_ids,
    tf_idf_weights,
    tfidf_linear,
)

VOCAB, BUCKETS, LEADING = 6, 5, 2
SIZE = 2 * VOCAB + BUCKETS  # words, bigram buckets, leading words
IDS = np.array([[2, 3, 2, 1, 4, 0, 0], [5, 5, 1, 0, 0, 0, 0], [2, 3, 2, 3, 5, 4, 0]], np.float32)


def _direct_tf_idf(tokens: list[int], idf: np.ndarray) -> dict[int, float]:
    """scikit-learn's TfidfVectorizer(sublinear_tf=True) over a text's words (but the unknown
    id 1), every bigram of real tokens, hashed as the layer hashes them, and the leading
    words as words of their own."""
    grams = [t for t in tokens if t > 1] + [
        VOCAB + (a * VOCAB + b) % BUCKETS for a, b in zip(tokens, tokens[1:], strict=False)
    ]
    grams += [VOCAB + BUCKETS + t for t in tokens[:LEADING] if t > 1]
    distinct, counts = np.unique(grams, return_counts=True)
    values = (1 + np.log(counts)) * idf[distinct]
    values /= np.linalg.norm(values)
    return dict(zip(distinct.tolist(), values, strict=True))


def test_linear_logits_are_a_table_times_sublinear_tf_idf():
    idf = ngram_idf(IDS, VOCAB, BUCKETS, leading_tokens=LEADING)
    model = tfidf_linear(7, VOCAB, 3, BUCKETS, l2=1e-3, idf=idf, leading_tokens=LEADING)
    layer = model.get_layer("logits")
    assert isinstance(layer, TfIdfLinear) and len(model.losses) == 1  # the L2 penalty
    table = np.random.default_rng(0).normal(size=(SIZE, 3)).astype(np.float32)
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    layer.set_weights([table, bias, idf])
    features = tf_idf_matrix(layer, IDS).toarray()
    for row, ids in enumerate(IDS.astype(int)):
        direct = _direct_tf_idf([t for t in ids if t > 0], idf)
        expected = np.zeros(SIZE)
        expected[list(direct)] = list(direct.values())
        np.testing.assert_allclose(features[row], expected, atol=1e-6)
        np.testing.assert_allclose(
            model(IDS[row : row + 1]).numpy()[0], expected @ table + bias, atol=1e-5
        )
    # Builtin ops only (the exported files' b"Flex" can be a word of the packed vocabulary).
    content = convert(model, "float32")
    assert b"Flex" not in content
    np.testing.assert_allclose(predict_tflite(content, IDS), model(IDS).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="l2 >= 0"):
        TfIdfLinear(VOCAB, BUCKETS, 3, l2=-1.0)
    layer.adapt(IDS[:2])  # the idf of other texts; n-grams they lack are no features
    np.testing.assert_array_equal(
        layer.idf.numpy(), ngram_idf(IDS[:2], VOCAB, BUCKETS, 512, 1, LEADING)
    )
    leading_idf = layer.idf.numpy()[VOCAB + BUCKETS :]
    assert leading_idf[4] == 0 < leading_idf[5]  # 4 leads no text, 5 leads the second


def test_counting_by_scatter_and_by_comparison_agree_and_rare_ngrams_can_be_dropped():
    grams = ngram_ids(IDS, VOCAB, BUCKETS)
    idf = ngram_idf(IDS, VOCAB, BUCKETS)
    for first in (1, 2):  # the bag of n-grams counts the unknown word, the linear model not
        compared = tf_idf_weights(grams, idf, first).numpy()
        scattered = tf_idf_weights(grams, idf, first, table_size=VOCAB + BUCKETS).numpy()
        np.testing.assert_allclose(compared, scattered, atol=1e-6)
    # min_df: an n-gram in fewer texts is no feature; the others keep their idf.
    texts_with = np.zeros(VOCAB + BUCKETS, int)
    for row in grams.numpy():
        texts_with[np.unique(row[row > 0])] += 1
    pruned = ngram_idf(IDS, VOCAB, BUCKETS, min_document_frequency=2)
    np.testing.assert_array_equal(pruned, np.where(texts_with >= 2, idf, 0))
    assert (texts_with == 1).any() and (texts_with >= 2).any()


def test_exact_bigrams_keep_each_buckets_most_frequent_bigram_and_drop_the_others():
    # Keys a * 6 + b, bucket key mod 5: bucket 0 holds 15 = (2, 3) and 20 = (3, 2), each in
    # 2 texts (the smaller key wins the tie), and 10 and 35, each in 1; no bigram reaches 2.
    keys = bigram_owners(IDS, VOCAB, BUCKETS)
    pairs = {}
    for row in IDS.astype(int):
        seen = {a * VOCAB + b for a, b in zip(row, row[1:], strict=False) if a > 0 and b > 0}
        for key in seen:
            pairs[key] = pairs.get(key, 0) + 1
    for bucket in range(BUCKETS):
        there = [key for key in pairs if key % BUCKETS == bucket]
        owner = min(there, key=lambda key: (-pairs[key], key)) if there else -1
        assert keys[bucket] == owner, (bucket, keys, pairs)
    assert keys[0] == 15 and (keys == -1).any()
    hashed = ngram_ids(IDS, VOCAB, BUCKETS).numpy()
    exact = ngram_ids(IDS, VOCAB, BUCKETS, bigram_keys=keys).numpy()
    bigram = slice(IDS.shape[1], 2 * IDS.shape[1] - 1)
    owned = [
        [
            keys[(a * VOCAB + b) % BUCKETS] == a * VOCAB + b
            for a, b in zip(row, row[1:], strict=False)
        ]
        for row in IDS.astype(int)
    ]
    np.testing.assert_array_equal(exact[:, bigram], np.where(owned, hashed[:, bigram], 0))
    np.testing.assert_array_equal(exact[:, : IDS.shape[1]], hashed[:, : IDS.shape[1]])
    assert (exact[:, bigram] == 0).sum() > (hashed[:, bigram] == 0).sum()  # some dropped

    # The layer sets the keys with the idf, computes the same ids, reloads and converts.
    model = tfidf_linear(7, VOCAB, 3, BUCKETS, leading_tokens=LEADING, exact_bigrams=True)
    layer = model.get_layer("logits")
    layer.adapt(IDS)
    np.testing.assert_array_equal(layer.bigram_keys.numpy(), keys)
    np.testing.assert_array_equal(layer.features(IDS)[0].numpy()[:, bigram], exact[:, bigram])
    np.testing.assert_array_equal(
        layer.idf.numpy(), ngram_idf(IDS, VOCAB, BUCKETS, 512, 1, LEADING, keys)
    )
    layer.table.assign(np.random.default_rng(0).normal(size=(SIZE, 3)).astype(np.float32))
    again = TfIdfLinear.from_config(layer.get_config())
    assert again.exact_bigrams
    content = convert(model, "float32")
    assert b"Flex" not in content
    np.testing.assert_allclose(predict_tflite(content, IDS), model(IDS).numpy(), atol=1e-4)


def test_regularization_is_chosen_on_validation_and_written_into_the_layer():
    rng = np.random.default_rng(0)
    model = tfidf_linear(7, VOCAB, num_classes=2, buckets=BUCKETS)
    layer = model.get_layer("logits")
    ids = rng.integers(2, VOCAB, size=(60, 7)).astype(np.float32)
    labels = (ids[:, 0] > 3).astype(int)  # the first word decides
    features = tf_idf_matrix(layer, ids)
    steps, chosen, classifier = choose_regularization(
        features[:40], labels[:40], features[40:], labels[40:], 2, (0.01, 1.0, 10.0)
    )
    assert [step.inverse_regularization for step in steps] == [0.01, 1.0, 10.0]
    lowest = min(step.val_loss for step in steps)  # the loss decides, not the accuracy
    ties = [step.inverse_regularization for step in steps if step.val_loss == lowest]
    assert chosen.inverse_regularization == max(ties) == classifier.C
    assert steps[0].accuracy < steps[-1].accuracy  # the strongest penalty underfits
    # Two classes: scikit-learn's one logit becomes two whose softmax is its probability.
    _set_coefficients(layer, classifier, 2)
    logits = model(ids).numpy().astype(np.float64)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, classifier.predict_proba(features), atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        choose_regularization(features, np.zeros(60, int), features, labels, 2)


def test_each_model_kind_resolves_its_own_defaults():
    from recipes.text_classifier import Config

    linear = with_text_model_defaults(Config())
    assert (linear.epochs, linear.sequence_length, linear.optimizer, linear.batch_size) == (
        30,
        400,
        "sgd",
        256,
    )
    mine = with_text_model_defaults(Config(model="cnn", epochs=2, learning_rate=0.5))
    assert (mine.epochs, mine.learning_rate, mine.optimizer, mine.weight_decay) == (
        2,
        0.5,
        "adamw",
        1e-4,
    )
    assert mine.batch_size == 0  # left to the data size
    assert with_text_model_defaults(Config(model="bert")).schedule == "polynomial"
    with pytest.raises(KeyError):
        with_text_model_defaults(Config(model="svm"))


def test_the_default_text_model_fits_and_mediapipe_loads_its_file(tmp_path):
    from recipes import text_classifier

    reviews = write_reviews(tmp_path / "texts", per_class=100, test_per_class=24)
    config = text_classifier.Config(data=str(reviews), sequence_length=24, buckets=1024)
    assert config.model == "linear"
    experiment = text_classifier.build(config)
    result = fit_logistic_regression(experiment, tmp_path, inverse_regularizations=(1.0, 10.0))
    assert experiment.model.name == "tfidf_linear"
    assert result.history["inverse_regularization"] == [
        1.0,
        10.0,
        result.history["inverse_regularization"][-1],
    ]  # the grid, then the refit at the chosen C
    assert "Logistic regression" in experiment.report_sections
    assert (tmp_path / "history.csv").read_text().count("\n") == 4
    # Refitted on the validation texts: no report may call them held out, and what auto
    # compares the run by is the accuracy the chosen C had on them before the refit.
    assert experiment.validation_held_out is False
    chosen = result.history["inverse_regularization"][-1]
    grid_accuracy = result.history["val_accuracy"][
        result.history["inverse_regularization"].index(chosen)
    ]
    assert held_out_val_accuracy(tmp_path) == pytest.approx(grid_accuracy)
    exported, accuracy = export_float32(experiment, tmp_path)
    majority = np.mean(experiment.y_test == np.bincount(experiment.y_test).argmax())
    assert accuracy >= 0.9 > majority, (accuracy, majority)
    check = exported.mediapipe
    assert check is not None and check.loaded and check.labels == CLASSES, check
    categories = classify_texts(Path(exported.path), experiment.test_texts)
    top1 = np.array([found[0].index for found in categories])
    litert = predict_tflite(Path(exported.path).read_bytes(), experiment.x_test)
    np.testing.assert_array_equal(top1, np.argmax(litert, axis=-1))
    assert check.agreement == 1.0


def test_without_validation_one_c_is_fitted_and_the_report_says_it_was_not_chosen(tmp_path):
    from trainer.data.text import token_dataset
    from trainer.experiment import Experiment

    rng = np.random.default_rng(1)
    ids = rng.integers(2, VOCAB, size=(30, 7)).astype(np.float32)
    labels = (ids[:, 0] > 3).astype(int)  # the first word decides: a leading-word feature
    model = tfidf_linear(7, VOCAB, num_classes=2, buckets=BUCKETS, leading_tokens=1)
    model.get_layer("logits").adapt(ids)
    train = token_dataset(ids, labels, num_classes=2, batch_size=8, training=True)
    experiment = Experiment(model, train, ids, labels, ["a", "b"], ids[:4])
    result = fit_logistic_regression(experiment, tmp_path)
    assert result.history["inverse_regularization"] == [100.0]  # not the whole grid
    assert "val_accuracy" not in result.history and result.history["accuracy"][0] == 1.0
    assert (
        "not chosen: there were no validation texts"
        in (experiment.report_sections["Logistic regression"])
    )
