"""Text models: the TF-IDF layer against a direct computation, padding masks, BERT from a tiny
checkpoint in Google's original format, and the text_classifier recipe with every model."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import trainer  # noqa: F401
from conftest import classify_texts
from datagen import write_imdb
from trainer import cli
from trainer.models import bag_of_ngrams, ngram_idf, text_rnn, text_transformer
from trainer.models.bert import (
    BertConfig,
    WordPieceTokenizer,
    bert_classifier,
    bert_encoder,
    check_bert_folder,
)


def test_tf_idf_layer_matches_a_direct_computation():
    vocab, buckets = 6, 5
    ids = np.array([[2, 3, 2, 2, 4, 0, 0], [5, 5, 1, 0, 0, 0, 0]], np.float32)
    idf = ngram_idf(ids, vocab, buckets)
    # The table is the identity: the output is the normalized TF-IDF vector itself.
    model = bag_of_ngrams(7, vocab, num_classes=2, buckets=buckets, idf=idf)
    layer = model.get_layer("tf_idf")
    assert layer.units == 2
    identity_model = bag_of_ngrams(7, vocab, 2, buckets=buckets, hidden_units=vocab + buckets)
    identity_model.get_layer("tf_idf").set_weights([np.eye(vocab + buckets), idf])
    features = identity_model.get_layer("tf_idf")(ids).numpy()
    for row, tokens in enumerate(ids.astype(int)):
        tokens = [t for t in tokens if t > 0]
        grams = tokens + [
            vocab + (a * vocab + b) % buckets for a, b in zip(tokens, tokens[1:], strict=False)
        ]
        expected = np.zeros(vocab + buckets)
        for gram in set(grams):
            expected[gram] = (1 + np.log(grams.count(gram))) * idf[gram]
        np.testing.assert_allclose(features[row], expected / np.linalg.norm(expected), atol=1e-5)
    # Smoothed idf as scikit-learn: token 2 is in one of two texts, the padding id 0 in none.
    assert idf[2] == pytest.approx(np.log(3 / 2) + 1) and idf[0] == pytest.approx(np.log(3) + 1)


@pytest.mark.parametrize("cell", ["lstm", pytest.param("gru", marks=pytest.mark.slow)])
def test_recurrent_models_ignore_padding(cell):
    long = text_rnn(
        sequence_length=9,
        vocab_size=20,
        num_classes=3,
        embedding_dim=8,
        width=4,
        dropout=0.0,
        cell=cell,
    )
    short = text_rnn(4, 20, 3, embedding_dim=8, width=4, dropout=0.0, cell=cell)
    short.set_weights(long.get_weights())
    ids = np.array([[3, 7, 1, 12]], np.float32)
    padded = np.pad(ids, ((0, 0), (0, 5)))
    np.testing.assert_allclose(long(padded).numpy(), short(ids).numpy(), atol=1e-5)


def test_transformer_ignores_padding():
    long = text_transformer(9, 20, 3, embedding_dim=8, heads=2, blocks=2, dropout=0.0)
    short = text_transformer(4, 20, 3, embedding_dim=8, heads=2, blocks=2, dropout=0.0)
    weights = [w[:4] if w.shape == (9, 8) else w for w in long.get_weights()]  # positions
    short.set_weights(weights)
    ids = np.array([[3, 7, 1, 12]], np.float32)
    padded = np.pad(ids, ((0, 0), (0, 5)))
    np.testing.assert_allclose(long(padded).numpy(), short(ids).numpy(), atol=1e-5)
    assert not np.allclose(long(padded).numpy(), long(np.pad(ids[:, :3], ((0, 0), (0, 6)))))


VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "a",
    "film",
    "##s",
    "un",
    "##aff",
    "##able",
    "!",
    ".",
    ",",
    "is",
    "was",
    "great",
    "wonderful",
    "superb",
    "awful",
    "dull",
    "terrible",
    "plot",
    "story",
    "acting",
]


def write_tiny_bert(folder: Path, hidden=32, layers=2, heads=2, intermediate=37, positions=64):
    """A BERT folder exactly as Google publishes it: bert_config.json, vocab.txt and a TF1
    name-based checkpoint (bert_model.ckpt.index/.data-*) with the original variable names."""
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = dict(
        vocab_size=len(VOCAB),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=positions,
        type_vocab_size=2,
        initializer_range=0.02,
    )
    (folder / "bert_config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    tensors = {}

    def add(name, *shape, scale=0.05, offset=0.0):
        tensors[name] = (offset + rng.normal(size=shape) * scale).astype(np.float32)

    add("bert/embeddings/word_embeddings", len(VOCAB), hidden)
    add("bert/embeddings/position_embeddings", positions, hidden)
    add("bert/embeddings/token_type_embeddings", 2, hidden)
    add("bert/embeddings/LayerNorm/gamma", hidden, scale=0.01, offset=1.0)
    add("bert/embeddings/LayerNorm/beta", hidden)
    for index in range(layers):
        prefix = f"bert/encoder/layer_{index}/"
        for part in ("query", "key", "value"):
            add(f"{prefix}attention/self/{part}/kernel", hidden, hidden)
            add(f"{prefix}attention/self/{part}/bias", hidden)
        add(f"{prefix}attention/output/dense/kernel", hidden, hidden)
        add(f"{prefix}attention/output/dense/bias", hidden)
        for norm in ("attention/output/LayerNorm", "output/LayerNorm"):
            add(f"{prefix}{norm}/gamma", hidden, scale=0.01, offset=1.0)
            add(f"{prefix}{norm}/beta", hidden)
        add(f"{prefix}intermediate/dense/kernel", hidden, intermediate)
        add(f"{prefix}intermediate/dense/bias", intermediate)
        add(f"{prefix}output/dense/kernel", intermediate, hidden)
        add(f"{prefix}output/dense/bias", hidden)
    add("bert/pooler/dense/kernel", hidden, hidden)
    add("bert/pooler/dense/bias", hidden)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(folder / "bert_model.ckpt"),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tensors[n] for n in names],
    )
    return tensors


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert") / "uncased_L-2_H-32_A-2"
    return folder, write_tiny_bert(folder)


def test_wordpiece_splits_like_bert(tiny_bert):
    tokenizer = WordPieceTokenizer(tiny_bert[0] / "vocab.txt")
    assert tokenizer.tokenize("Unaffable FILMS, the plot!") == [
        "un",
        "##aff",
        "##able",
        "film",
        "##s",
        ",",
        "the",
        "plot",
        "!",
    ]
    assert tokenizer.tokenize("Café xyz") == ["[UNK]", "[UNK]"]
    ids = tokenizer(["the films", "great " * 20], sequence_length=6)
    np.testing.assert_array_equal(ids[0], [2, 5, 7, 8, 3, 0])
    np.testing.assert_array_equal(ids[1], [2, 17, 17, 17, 17, 3])  # cut, [SEP] kept


def test_bert_reads_the_original_checkpoint(tiny_bert):
    folder, tensors = tiny_bert
    model = bert_classifier(folder, sequence_length=16, num_classes=2)
    np.testing.assert_array_equal(
        model.get_layer("layer_1_intermediate").kernel.numpy(),
        tensors["bert/encoder/layer_1/intermediate/dense/kernel"],
    )
    query = model.get_layer("layer_0_attention")._query_dense.kernel.numpy()
    np.testing.assert_array_equal(
        query.reshape(32, 32), tensors["bert/encoder/layer_0/attention/self/query/kernel"]
    )
    np.testing.assert_array_equal(
        model.get_layer("embeddings").word.numpy(), tensors["bert/embeddings/word_embeddings"]
    )
    # Padding is masked: the pooled vector of a text does not change with the padded length.
    config = BertConfig.from_json(folder / "bert_config.json")
    long, short = bert_encoder(config, 16), bert_encoder(config, 5)
    short.set_weights(long.get_weights())
    ids = WordPieceTokenizer(folder / "vocab.txt")(["great acting !"], 5)
    np.testing.assert_allclose(
        long(np.pad(ids, ((0, 0), (0, 11)))).numpy(), short(ids).numpy(), atol=1e-5
    )


def test_bert_without_weights_says_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="needs a pretrained BERT folder.*--bert_dir"):
        check_bert_folder("")
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(FileNotFoundError, match="bert_config.json, bert_model.ckpt.index missing"):
        check_bert_folder(tmp_path)


def _train_text(tmp_path, model, *options, data=None):
    """`trainer train text_classifier --model=MODEL` on `data` (default: a generated aclImdb
    tree, 24 reviews per class and split), 4 epochs; checked by `_check_text_run`."""
    root = data or tmp_path / "aclImdb"
    if not root.exists():
        write_imdb(root, per_class=24)
    run_dir = tmp_path / f"run_{model}"
    args = [
        "train",
        "text_classifier",
        f"--data={root}",
        f"--run_dir={run_dir}",
        f"--model={model}",
        "--sequence_length=24",
        "--embedding_dim=16",
        "--width=8",
        "--batch_size=8",
        "--epochs=4",
        "--export=float32",
        "--backup_every=0",
        *options,
    ]
    assert cli.main(args) == 0
    return _check_text_run(run_dir), run_dir


def _check_text_run(run_dir) -> dict:
    """Asserts that the run learned (its loss fell), holds its files and that its float32
    file answers as the model does; returns its metrics."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv", newline="") as history:
        losses = [float(row["loss"]) for row in csv.DictReader(history)]
    assert losses[-1] < losses[0], losses  # it learns
    for name in (
        "model.keras",
        "model_float32.tflite",
        "model_float32.json",
        "report.md",
        "vocabulary.txt",
        "config.yaml",
    ):
        assert (run_dir / name).is_file(), name
    export = next(export for export in metrics["exports"] if export["format"] == "float32")
    assert export["agreement"] == 1.0 and export["max_abs_diff"] < 1e-3  # TFLite verified
    return metrics


def test_a_text_classifier_run_learns_and_holds_its_files(text_classifier_run):
    """The session's text_classifier run (conftest.py, the CNN): the loss fell, the files are
    there and the float32 file answers as the model does."""
    _check_text_run(text_classifier_run)
    metrics = json.loads((text_classifier_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.7  # sentiment words decide; chance is 0.5


MODELS = [
    ("bow", ["--learning_rate=0.05"]),
    ("lstm", ["--learning_rate=0.01"]),
    ("gru", ["--learning_rate=0.01"]),
    ("transformer", ["--learning_rate=0.003", "--heads=2"]),
]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("model, options", MODELS)
def test_text_classifier_trains_and_exports_each_model(tmp_path, model, options):
    """A run of each other model (3-30 s of CPU each): under -m slow. CI has the recipe's run
    and its files on the shared CNN run (the test above), and builds, fits and exports bow and
    the Transformer in tests/test_mobile_text.py (MediaPipe loads their files)."""
    metrics, _ = _train_text(tmp_path, model, *options)
    assert metrics["test_accuracy"] >= 0.7  # sentiment words decide; chance is 0.5


def write_bert_reviews(root: Path) -> Path:
    """root/{train,test}/{neg,pos}/*.txt (24 and 16 per class): words of the tiny BERT's
    vocabulary as people type them (tests/datagen.py's `spell`: capitals, punctuation), two
    sentiment words each, and a word BERT splits into pieces ("films!")."""
    from datagen import spell

    rng = np.random.default_rng(3)
    words = {"neg": ["awful", "dull", "terrible"], "pos": ["great", "wonderful", "superb"]}
    plain = [word for word in VOCAB[5:] if word.isalpha() and word not in sum(words.values(), [])]
    for split, count in (("train", 24), ("test", 16)):
        for label in ("neg", "pos"):
            (root / split / label).mkdir(parents=True)
            for index in range(count):
                chosen = list(rng.choice(plain, 6)) + list(rng.choice(words[label], 2))
                text = " ".join(spell(str(word), rng) for word in chosen)
                (root / split / label / f"{index}.txt").write_text(text + " films!")
    return root


@pytest.mark.e2e
def test_text_classifier_fine_tunes_bert(tmp_path, tiny_bert):
    """`trainer train text_classifier --model=bert` from the tiny checkpoint: the run keeps
    BERT's vocabulary, warms up then decays its learning rate, and its file, with the WordPiece
    tokenizer in its metadata, classifies raw text in MediaPipe Tasks as LiteRT does on our
    ids (the training's own check on the test texts, and here on a few)."""
    folder, _ = tiny_bert
    data = write_bert_reviews(tmp_path / "texts")
    metrics, run_dir = _train_text(
        tmp_path,
        "bert",
        f"--bert_dir={folder}",
        "--learning_rate=0.003",
        "--epochs=3",
        "--allow_chance=true",  # a 2-layer random BERT on 48 texts: the wiring, not accuracy
        data=data,
    )
    assert (run_dir / "vocabulary.txt").read_text().splitlines() == VOCAB
    assert "WordPiece" in (run_dir / "report.md").read_text()
    with open(run_dir / "history.csv", newline="") as history:
        rates = [float(row["learning_rate"]) for row in csv.DictReader(history)]
    assert rates[0] > rates[1] > rates[2]  # linear decay after the warmup
    (export,) = metrics["exports"]
    check = export["mediapipe"]
    assert check["loaded"] and check["labels_match"], check
    assert check["examples"] == 32 and check["agreement"] >= 0.99, check
    assert check["max_score_diff"] < 1e-4, check
    sidecar = json.loads((run_dir / "model_float32.json").read_text())
    assert sidecar["text"]["tokenizer"] == "wordpiece"
    texts = [path.read_text() for path in sorted((data / "test" / "pos").iterdir())[:2]]
    for categories in classify_texts(run_dir / "model_float32.tflite", texts):
        assert sorted(category.category_name for category in categories) == ["neg", "pos"]
        assert sum(category.score for category in categories) == pytest.approx(1.0)


def test_a_gru_model_exports_to_builtin_tflite_ops():
    """The GRU converts to TFLite's builtin operators (no select TF ops) and answers as the
    model does; the LSTM converts the same way (its recipe run is under -m slow). The bag of
    n-grams, CNN, Transformer and BERT are converted and checked against Keras and in MediaPipe
    Tasks (which runs no select TF ops) by tests/test_mobile_text.py and
    test_text_classifier_fine_tunes_bert; trainer's conversion never enables select TF ops."""
    from trainer.export import convert, predict_tflite
    from trainer.export.tflite import select_tf_ops

    ids = np.array([[3, 7, 1, 12, 5, 0, 0, 0], [9, 9, 4, 0, 0, 0, 0, 0]], np.float32)
    model = text_rnn(8, 20, 3, embedding_dim=8, width=4, cell="gru")
    content = convert(model, "float32")
    assert select_tf_ops(content) == []
    np.testing.assert_allclose(predict_tflite(content, ids), model(ids).numpy(), atol=1e-4)
