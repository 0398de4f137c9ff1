"""Exported text files load in MediaPipe Tasks' TextClassifier as they are (issue 22).

Every text model kind is built by recipes/text_classifier.py on tiny generated reviews written
the way people write (capitals, punctuation, "didn't"), trained a little, exported, and the
written file is classified from raw strings by MediaPipe itself, as an app would: the labels
are the class names, the scores are probabilities and the top class is LiteRT's on the ids our
pipeline made of the same strings. A run whose words MediaPipe cannot make again says why.

Elsewhere: BERT's file with its WordPiece tokenizer, from a `trainer train` run on such reviews,
is tests/test_text_models.py::test_text_classifier_fine_tunes_bert; `trainer export` of text
runs checking their files with MediaPipe is tests/test_export_every_recipe.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import trainer  # noqa: F401
from conftest import classify_texts
from datagen import FILLER, WORDS, spell
from trainer import cli
from trainer.data.text import Vectorizer
from trainer.export import export_and_verify, predict_tflite
from trainer.export.runtimes import top1_agreement
from trainer.export.text import regex_vocabulary, text_input

CLASSES = ["neg", "pos"]


def _review(label: str, rng: np.random.Generator) -> str:
    words = list(rng.choice(FILLER, size=10)) + list(rng.choice(WORDS[label], size=3))
    words += ["didn't"] if label == "neg" else ["well-made"]
    rng.shuffle(words)
    return " ".join(spell(str(word), rng) for word in words) + f" (#{rng.integers(1000)})."


def write_reviews(root: Path, per_class: int = 40, test_per_class: int = 24) -> Path:
    """root/train/<class>/*.txt and root/test/<class>/*.txt (the aclImdb layout)."""
    rng = np.random.default_rng(7)
    for split, count in (("train", per_class), ("test", test_per_class)):
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                (folder / f"{index}.txt").write_text(_review(label, rng), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_reviews(tmp_path_factory.mktemp("reviews") / "texts")


def export_float32(experiment, out_dir: Path) -> tuple:
    """The float32 export of a trained text experiment as `finish` does it: the artifacts (the
    vocabulary) written into `out_dir` first, then the file, checked on the test set by LiteRT
    and MediaPipe. Returns (the ExportResult, Keras's test accuracy)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in experiment.artifacts.items():
        (out_dir / name).write_text(text, encoding="utf-8")
    logits = experiment.model.predict(experiment.x_test, verbose=0)
    keras_accuracy = float(np.mean(np.argmax(logits, -1) == experiment.y_test))
    (result,) = export_and_verify(
        experiment.model,
        experiment.x_test,
        experiment.y_test,
        keras_accuracy,
        ["float32"],
        out_dir,
        class_names=experiment.class_names,
        input_spec=experiment.input_spec,
        keras_outputs=logits,
        artifacts=list(experiment.artifacts),
        outputs=experiment.export_outputs,
        test_texts=experiment.test_texts,
    )
    return result, keras_accuracy


def _trained_export(data: Path, out_dir: Path, **settings):
    """text_classifier's build on `data`, a few epochs of fit, then `export_float32`. Returns
    (experiment, the float32 ExportResult)."""
    from recipes import text_classifier

    config = text_classifier.Config(
        data=str(data),
        sequence_length=24,
        embedding_dim=16,
        width=8,
        heads=2,
        blocks=1,
        batch_size=8,
        export="float32",
        **settings,
    )
    experiment = text_classifier.build(config)
    experiment.model.fit(experiment.train, epochs=config.epochs, verbose=0)
    result, _ = export_float32(experiment, out_dir)
    return experiment, result


KINDS = [
    pytest.param("bow", {"learning_rate": 0.05, "epochs": 8}, id="bow"),
    pytest.param("cnn", {"learning_rate": 0.01, "epochs": 8}, id="cnn"),
    pytest.param("transformer", {"learning_rate": 0.003, "epochs": 8}, id="transformer"),
    # The GRU and LSTM files are unrolled recurrent layers, minutes to convert under load.
    pytest.param("gru", {"learning_rate": 0.01, "epochs": 6}, id="gru", marks=pytest.mark.slow),
    pytest.param("lstm", {"learning_rate": 0.01, "epochs": 6}, id="lstm", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("kind", "settings"), KINDS)
def test_mediapipe_classifies_raw_text_like_our_pipeline(reviews, tmp_path, kind, settings):
    experiment, result = _trained_export(reviews, tmp_path, model=kind, **settings)
    texts, y = experiment.test_texts, experiment.y_test
    assert any(character.isupper() for character in "".join(texts))  # spellings exercised
    check = result.mediapipe
    assert check is not None and check.loaded, check
    assert check.labels == CLASSES and check.labels_match
    # The file itself, loaded by MediaPipe: class names, probabilities, LiteRT's top class.
    categories = classify_texts(Path(result.path), texts)
    scores = np.zeros((len(texts), len(CLASSES)), np.float32)
    for row, found in enumerate(categories):
        assert sorted(category.category_name for category in found) == CLASSES
        for category in found:
            assert category.category_name == CLASSES[category.index]
            scores[row, category.index] = category.score
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    content = Path(result.path).read_bytes()
    litert = predict_tflite(content, experiment.x_test)
    top1 = np.array([found[0].index for found in categories])
    agreement, _ = top1_agreement(top1, litert)
    assert agreement >= 0.99 and check.agreement >= 0.99, (agreement, check.agreement)
    assert check.accuracy == pytest.approx(float(np.mean(top1 == y)))
    assert result.accuracy >= 0.75, result.accuracy  # it learned: the words decide
    # LiteRT answers as the Keras model does: the conversion is exact (builtin operators).
    assert result.agreement == 1.0 and result.max_abs_diff < 1e-4, result.max_abs_diff
    sidecar = json.loads(Path(result.sidecar_path).read_text())
    assert sidecar["text"]["tokenizer"] == "regex" and sidecar["text"]["mediapipe"] == "loads"
    assert sidecar["tflite_input"]["dtype"] == "int32"
    assert sidecar["output"]["kind"] == "probabilities"


def test_a_run_with_stripped_punctuation_says_why_mediapipe_cannot_load(reviews, tmp_path, capsys):
    run_dir = tmp_path / "run"
    arguments = [
        "train",
        "text_classifier",
        f"--data={reviews}",
        f"--run_dir={run_dir}",
        "--model=bow",
        "--standardize=lower_and_strip_punctuation",
        "--sequence_length=24",
        "--learning_rate=0.05",
        "--epochs=4",
        "--batch_size=8",
        "--export=float32",
        "--backup_every=0",
    ]
    assert cli.main(arguments) == 0
    (export,) = json.loads((run_dir / "metrics.json").read_text())["exports"]
    assert export["mediapipe"]["checked"] is False
    assert "Retrain with --standardize=lower_and_split_punctuation" in export["mediapipe"]["error"]
    assert "did not check the float32 file" in (run_dir / "report.md").read_text()
    capsys.readouterr()
    assert cli.main(["export", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert "joins the pieces of a word around punctuation" in printed
    # A run made before --standardize existed has no such line in config.yaml: rebuilt with
    # today's default its vocabulary differs, and the export refuses instead of verifying the
    # model on ids it was not trained on.
    config = run_dir / "config.yaml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(line for line in lines if "standardize" not in line) + "\n")
    assert cli.main(["export", str(run_dir)]) != 0
    assert "standardize: lower_and_strip_punctuation" in capsys.readouterr().err


def test_the_vocabulary_lists_every_spelling_training_mapped_to_an_id():
    vectorizer = Vectorizer(vocab_size=50, sequence_length=6)
    vectorizer.adapt(["The OpenGL demo didn't run", "the e-mail client, the GUI"])
    ids = dict(zip(vectorizer.vocabulary, range(len(vectorizer.vocabulary)), strict=True))
    spellings = vectorizer.spellings()
    assert spellings["OpenGL"] == spellings["opengl"] == spellings["OPENGL"] == ids["opengl"]
    assert spellings["The"] == spellings["THE"] == ids["the"]
    assert "gUI" not in spellings  # a spelling never seen: unknown in the app, "gui" here
    # Words split at punctuation, as MediaPipe's regex tokenizer splits them.
    assert {"didn", "t", "e", "mail"} <= set(vectorizer.vocabulary)
    lines = regex_vocabulary(spellings).splitlines()
    assert lines[:2] == ["<PAD> 0", "<UNKNOWN> 1"]
    assert f"OpenGL {ids['opengl']}" in lines
    with pytest.raises(ValueError, match="stripped punctuation"):
        Vectorizer(50, 6, "lower_and_strip_punctuation").adapt(["a b"]).spellings()


def test_text_input_names_what_mediapipe_cannot_do(tmp_path):
    from trainer.models import text_classifier

    model = text_classifier(8, 20, 2, embedding_dim=4, width=4)
    assert text_input(model, {"shape": [8]}, tmp_path) is None  # no tokenizer: not ours
    cased = text_input(model, {"tokenizer": "wordpiece", "lowercase": False}, tmp_path)
    assert "cased" in cased.refused
    (tmp_path / "vocab.txt").write_text("[PAD]\n\n[UNK]\n")
    gap = text_input(model, {"tokenizer": "wordpiece", "vocabulary": "vocab.txt"}, tmp_path)
    assert "empty line" in gap.refused
    with pytest.raises(FileNotFoundError, match="missing"):
        spec = {"tokenizer": "regex", "standardize": "lower_and_split_punctuation"}
        text_input(model, {**spec, "tokenizer_vocabulary": "absent.txt"}, tmp_path)
    with pytest.raises(ValueError, match="one row of token ids"):
        from trainer.models import small_cnn

        text_input(small_cnn((8, 8, 1), 2), {"tokenizer": "regex"}, tmp_path)
