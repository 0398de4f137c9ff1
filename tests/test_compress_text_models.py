"""`trainer compress` on text_classifier runs of the models with custom or attention layers:
the bag of n-grams (its TF-IDF table is pruned), the Transformer and BERT (attention, position
embeddings; -m slow). What TF-MOT cannot wrap is skipped with a note, never a traceback."""

import json

import numpy as np
import pytest
from test_text_models import write_tiny_bert

from conftest import fitted_run
from trainer import cli

# Tiny runs: a few seconds of training each; enough to learn the generated sentiment words.
TRAIN_OPTIONS = [
    "--sequence_length=24",
    "--embedding_dim=16",
    "--batch_size=8",
    "--epochs=4",
    "--export=float32",
    "--backup_every=0",
]
MODEL_OPTIONS = {
    "bow": ["--learning_rate=0.05"],
    "transformer": ["--learning_rate=0.003", "--heads=2", "--blocks=1"],
    "bert": ["--learning_rate=0.003", "--epochs=3"],
}


# Only words of the tiny BERT's vocabulary (tests/test_text_models.py), so that every model,
# BERT's WordPiece included, sees the words that decide the class.
SENTIMENT = {"pos": ["great", "wonderful", "superb"], "neg": ["awful", "dull", "terrible"]}
FILLER = ["the", "a", "film", "plot", "story", "acting", "is", "was", ",", "."]


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """train/{pos,neg}/*.txt (40 each) and test/{pos,neg}/*.txt (16 each)."""
    root = tmp_path_factory.mktemp("texts") / "reviews"
    rng = np.random.default_rng(0)
    for split, count in (("train", 40), ("test", 16)):
        for label, words in SENTIMENT.items():
            (root / split / label).mkdir(parents=True)
            for index in range(count):
                tokens = [*rng.choice(FILLER, size=8), *rng.choice(words, size=2)]
                rng.shuffle(tokens)
                (root / split / label / f"{index}.txt").write_text(" ".join(tokens))
    return root


def _train(tmp_path, texts, model: str, *options: str):
    run = tmp_path / f"run_{model}"
    args = ["train", "text_classifier", f"--data={texts}", f"--run_dir={run}", f"--model={model}"]
    assert cli.main([*args, *TRAIN_OPTIONS, *MODEL_OPTIONS[model], *options]) == 0
    return run


def _compress(run, out, capsys, *options: str) -> dict:
    args = [
        "compress",
        str(run),
        "--sparsities=0.5",
        "--finetune_epochs=1",
        "--max_accuracy_drop=100",
        f"--out_dir={out}",
        *options,
    ]
    code = cli.main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert code == 0, captured.err
    return json.loads((out / "metrics.json").read_text())


def _by_name(metrics: dict) -> dict:
    return {candidate["name"]: candidate for candidate in metrics["candidates"]}


def _zero_share(table) -> float:
    return float(np.mean(np.asarray(table) == 0))


@pytest.mark.e2e
def test_bag_of_ngrams_table_is_pruned_and_quantized(tmp_path, texts, capsys):
    import tf_keras as keras

    # Few hash buckets, so that training leaves almost no row of the TF-IDF table at zero. The
    # run folder is the recipe's model fitted 4 epochs (conftest.fitted_run): compress reads
    # only its config, run.json and model, not training's exports and reports.
    run = fitted_run(
        tmp_path / "run_bow",
        "text_classifier",
        epochs=4,
        data=str(texts),
        model="bow",
        buckets=64,
        sequence_length=24,
        batch_size=8,
        learning_rate=0.05,
        export="float32",
    )
    trained = keras.models.load_model(run / "model.keras", compile=False)
    assert _zero_share(trained.get_layer("tf_idf").table.numpy()) < 0.3
    out = tmp_path / "out"
    metrics = _compress(run, out, capsys, "--method=ptq,prune,cluster")
    candidates = _by_name(metrics)
    original = candidates["original-float32"]
    pruned = candidates["prune+ptq-sparsity0.5-dynamic"]
    assert pruned["nonzero_parameters"] < original["nonzero_parameters"]
    assert pruned["test_accuracy"] >= 0.7  # still reads sentiment; chance is 0.5
    assert candidates["ptq-dynamic"]["test_accuracy"] >= original["test_accuracy"] - 0.05
    # The per-layer sparsity table names the TF-IDF table, now at least half zeros.
    row = next(
        line for line in (out / "report.md").read_text().splitlines() if "| tf_idf |" in line
    )
    assert float(row.strip("| ").split("|")[-1].strip().rstrip("%")) >= 49.0
    # TF-MOT has no clustering for a custom layer: a note, and the other candidates stand.
    assert any(
        note.startswith("cluster skipped: TF-MOT cannot cluster this model")
        for note in metrics["notes"]
    )


# About 80 s of CPU each (train, then the whole auto search): behind -m slow, out of CI.
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("model", ["transformer", "bert"])
def test_attention_models_compress_by_default(tmp_path, texts, capsys, model):
    options = []
    if model == "bert":
        folder = tmp_path / "uncased_L-2_H-32_A-2"
        write_tiny_bert(folder)
        options = [f"--bert_dir={folder}"]
    run = _train(tmp_path, texts, model, *options)
    out = tmp_path / "out"
    metrics = _compress(
        run, out, capsys, "--structured_ratios=0.5", "--structured_epochs=1", "--distill_epochs=1"
    )
    candidates = _by_name(metrics)
    original = candidates["original-float32"]
    # Auto mode: dynamic-range PTQ (token ids are inputs), then magnitude pruning of the
    # Dense kernels and embedding tables; attention and the custom layers (position and BERT
    # embeddings, masks) stay as they are.
    assert "ptq-dynamic" in candidates, sorted(candidates)
    pruned = candidates["prune+ptq-sparsity0.5-dynamic"]
    assert pruned["nonzero_parameters"] < original["nonzero_parameters"]
    assert pruned["parameters"] == original["parameters"]
    for candidate in metrics["candidates"]:
        assert candidate["test_accuracy"] > 0.0  # every file runs in LiteRT
    for note in metrics["notes"]:
        assert "Traceback" not in note
    assert (out / "model_compressed.tflite").is_file()
