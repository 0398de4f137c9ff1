"""`trainer compress RUN_DIR` through the recipe contract: the run is rebuilt by the recipe that
made it (an image CNN with a `width`, a text model), candidates are measured and reported, the
budget accepts and rejects, a model that never learned and bad options are refused."""

import json
import re
import shutil

import numpy as np
import pytest
import tf_keras as keras
import yaml

from trainer.cli import main as trainer_main
from trainer.compress import CompressConfig, Search, compress_run, rebuild_run
from trainer.export import tflite_accuracy

IMAGE_RECIPE = '''"""Tiny bars (test recipe): a functional CNN sized by `width`."""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from trainer import keras
from trainer.data.pipeline import image_dataset
from trainer.experiment import Experiment, finish, fit, start_run


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 5  # passes over the training set
    width: int = 8  # filters of the first convolution (doubled in the second)
    learning_rate: float = 0.005  # peak learning rate
    held_out: bool = True  # the validation examples were never trained on
    validation: int = 100  # validation examples (0 = none)
    seed: int = 0  # seeds weights and shuffling


def bars(count, seed):
    """Class k has a bright bar in rows 2k and 2k+1 of a 20x20 noisy image."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 20, 20, 1), dtype=np.uint8)
    for index, label in enumerate(labels):
        images[index, 2 * label : 2 * label + 2, 2:18] = 230
    return images, labels


def build(config):
    keras.utils.set_random_seed(config.seed)
    x_train, y_train = bars(400, 1)
    x_test, y_test = bars(200, 2)
    x_val, y_val = bars(config.validation, 3) if config.validation else (None, None)
    train = image_dataset(x_train, y_train, num_classes=10, batch_size=32, training=True,
                          seed=config.seed)
    inputs = keras.Input((20, 20, 1))
    x = keras.layers.Conv2D(config.width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(config.width * 2, 3, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(config.learning_rate),
                  keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    return Experiment(
        model=model, train=train, x_test=scale(x_test), y_test=y_test,
        class_names=[str(k) for k in range(10)], representative=scale(x_train[:100]),
        x_val=None if x_val is None else scale(x_val), y_val=y_val,
        validation_held_out=config.held_out, epochs=config.epochs, batch_size=32,
        learning_rate=config.learning_rate, export_formats=("float32", "int8"),
    )


def main(config):
    experiment = build(config)
    run_dir = start_run("tiny_bars", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
'''

TEXT_RECIPE = '''"""Tiny token sequences (test recipe): Embedding + Conv1D, no `width` field."""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from trainer import keras
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.models import text_classifier


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 6  # passes over the training set
    seed: int = 0  # seeds weights and shuffling


def texts(count, seed):
    """Sequences of 16 float32 token ids in [2, 40); class k always holds token 40 + k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 4
    ids = rng.integers(2, 40, size=(count, 16))
    ids[np.arange(count), rng.integers(0, 16, count)] = 40 + labels
    return ids.astype(np.float32), labels


def build(config):
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    x_train, y_train = texts(320, 1)
    x_val, y_val = texts(80, 2)
    x_test, y_test = texts(120, 3)
    train = tf.data.Dataset.from_tensor_slices((x_train, tf.one_hot(y_train, 4)))
    train = train.shuffle(320, seed=config.seed).batch(32)
    model = text_classifier(16, 48, 4, embedding_dim=16, width=32, dropout=0.0)
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return Experiment(
        model=model, train=train, x_test=x_test, y_test=y_test, class_names=list("abcd"),
        representative=x_train[:100], x_val=x_val, y_val=y_val, epochs=config.epochs,
        batch_size=32, learning_rate=0.01, export_formats=("float32", "dynamic"),
    )


def main(config):
    experiment = build(config)
    run_dir = start_run("tiny_text", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
'''


def _train(root, name: str, source: str) -> tuple:
    """Trains a recipe written to `root/name.py` with `trainer train`; returns (run, recipe)."""
    recipe = root / f"{name}.py"
    recipe.write_text(source)
    run = root / f"{name}-run"
    assert trainer_main(["train", str(recipe), f"--run_dir={run}"]) == 0
    return run, recipe


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    run, _ = _train(tmp_path_factory.mktemp("image"), "tiny_bars", IMAGE_RECIPE)
    return run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    run, _ = _train(tmp_path_factory.mktemp("text"), "tiny_text", TEXT_RECIPE)
    return run


def _copy_run(run, destination, **config_changes):
    """A copy of a run folder, with some values of its config.yaml changed."""
    shutil.copytree(run, destination, ignore=shutil.ignore_patterns("compression*"))
    config = yaml.safe_load((destination / "config.yaml").read_text())
    config.update(config_changes)
    (destination / "config.yaml").write_text(yaml.safe_dump(config))
    return destination


def _metrics(out_dir) -> dict:
    return json.loads((out_dir / "metrics.json").read_text())


def test_image_run_compresses_through_its_recipe(image_run, tmp_path):
    out = tmp_path / "out"
    args = [
        "compress",
        str(image_run),
        "--method=ptq,structured,distill",
        f"--out_dir={out}",
        "--structured_ratios=0.5",
        "--structured_epochs=1",
        "--distill_epochs=1",
        "--max_accuracy_drop=50",
    ]
    assert trainer_main(args) == 0
    metrics = _metrics(out)
    names = [candidate["name"] for candidate in metrics["candidates"]]
    assert names == [
        "original-float32",
        "ptq-float16",
        "ptq-dynamic",
        "ptq-int8",
        "structured-ratio0.5-float32",
        "structured+ptq-ratio0.5-int8",
        "distill-width4-float32",
        "distill+ptq-width4-int8",
    ]
    by_name = {candidate["name"]: candidate for candidate in metrics["candidates"]}
    original = by_name["original-float32"]
    # The student is the recipe's own model at half the width (4 filters, then 8).
    _, config, experiment = rebuild_run(image_run)
    assert by_name["distill-width4-float32"]["parameters"] == (_student_parameters(config, width=4))
    assert by_name["structured-ratio0.5-float32"]["parameters"] < 0.6 * original["parameters"]
    assert metrics["reference_test_accuracy"] > 0.5  # the tiny run learned
    # Scores are on the data the recipe rebuilds: the recorded accuracy is what the file scores.
    content = (out / "candidates" / "ptq-int8.tflite").read_bytes()
    assert tflite_accuracy(content, experiment.x_test, experiment.y_test) == pytest.approx(
        by_name["ptq-int8"]["test_accuracy"]
    )
    # With a generous budget everything qualifies and the smallest gzip file wins.
    smallest = min(metrics["candidates"], key=lambda candidate: candidate["gzip_bytes"])
    assert metrics["best"] == smallest["name"]
    assert (out / "model_compressed.tflite").read_bytes() == (
        out / "candidates" / f"{smallest['name']}.tflite"
    ).read_bytes()
    report = (out / "report.md").read_text()
    for fragment in (
        "| candidate |",
        "ptq (int8)",
        "MFLOPs",
        "100 validation examples",
        "unbiased",
        "width=4",
        "accuracy_vs_size.png",
    ):
        assert fragment in report, fragment
    assert (out / "accuracy_vs_size.png").read_bytes()[:4] == b"\x89PNG"


def _student_parameters(config, width: int) -> int:
    import dataclasses
    import sys

    recipe = sys.modules["tiny_bars"]
    return recipe.build(dataclasses.replace(config, width=width)).model.count_params()


def test_text_run_gets_dynamic_range_candidates_and_skips_qat(text_run, tmp_path):
    out = tmp_path / "out"
    metrics = compress_run(
        text_run,
        CompressConfig(
            method="ptq,qat,structured,distill",
            structured_ratios="0.5",
            structured_epochs=1,
            distill_epochs=1,
            max_accuracy_drop=100,
            out_dir=str(out),
        ),
    )
    formats = {(c["technique"], c["format"]) for c in metrics["candidates"]}
    assert formats == {
        ("original", "float32"),
        ("ptq", "float16"),
        ("ptq", "dynamic"),
        ("structured", "float32"),
        ("structured+ptq", "dynamic"),
        ("distill", "float32"),
        ("distill+ptq", "dynamic"),
    }
    assert metrics["quantized_format"] == "dynamic"
    assert any(note.startswith("qat skipped") for note in metrics["notes"])
    by_technique = {c["technique"]: c for c in metrics["candidates"] if c["format"] != "dynamic"}
    original = by_technique["original"]
    # Without a `width`, the student is the original with half its filters, re-initialised.
    assert by_technique["distill"]["settings"] == "ratio=0.5"
    assert by_technique["distill"]["parameters"] == by_technique["structured"]["parameters"]
    assert by_technique["structured"]["parameters"] < original["parameters"]
    # Dynamic-range quantization keeps the token ids intact: the model still works.
    dynamic = [
        c for c in metrics["candidates"] if c["technique"] == "ptq" and c["format"] == "dynamic"
    ][0]
    assert dynamic["test_accuracy"] >= metrics["reference_test_accuracy"] - 0.05
    assert metrics["reference_test_accuracy"] > 0.6
    assert "dynamic range" in (out / "report.md").read_text()


def test_auto_search_runs_cheapest_first_and_stops_ladders_over_budget(image_run, tmp_path):
    metrics = compress_run(
        image_run,
        CompressConfig(
            max_accuracy_drop=0.0,
            sparsities="0.5,0.9",
            structured_ratios="0.5,0.9",
            finetune_epochs=0.5,
            structured_epochs=0.5,
            distill_epochs=1,
            out_dir=str(tmp_path / "out"),
        ),
    )
    techniques = [candidate["technique"] for candidate in metrics["candidates"]]
    assert techniques[:4] == ["original", "ptq", "ptq", "ptq"]
    assert techniques[-2:] == ["distill", "distill+ptq"]
    for candidate in metrics["candidates"]:
        assert candidate["within_budget"] == (candidate["val_drop_pp"] <= 0.0)
    # Each ladder goes up only while within budget: after an over-budget rung it stops.
    for prefix in ("prune", "structured+ptq"):
        rungs = [c for c in metrics["candidates"] if c["technique"].startswith(prefix)]
        over = [index for index, rung in enumerate(rungs) if not rung["within_budget"]]
        assert rungs and (not over or over[0] == len(rungs) - 1)
    eligible = [c for c in metrics["candidates"] if c["within_budget"]]
    expected = min(eligible, key=lambda c: c["gzip_bytes"])["name"] if eligible else None
    assert metrics["best"] == (expected or "original-float32")


def test_collaborative_qat_candidates_keep_sparsity_and_clusters(image_run, tmp_path):
    metrics = compress_run(
        image_run,
        CompressConfig(
            method="pqat,cqat",
            sparsities="0.5",
            clusters=8,
            finetune_epochs=0.25,
            max_accuracy_drop=100.0,
            out_dir=str(tmp_path / "out"),
        ),
    )
    by_technique = {c["technique"]: c for c in metrics["candidates"]}
    assert set(by_technique) == {"original", "prune+pqat", "cluster+cqat"}
    assert all(c["format"] == "int8" for c in metrics["candidates"][1:])
    pruned = by_technique["prune+pqat"]
    # Half of the large layers' weights (most of the model) stay zero through QAT.
    assert pruned["nonzero_parameters"] < 0.75 * pruned["parameters"]
    assert by_technique["cluster+cqat"]["settings"] == "clusters=8"


def test_teacher_is_a_frozen_copy_and_fine_tuning_trains_only_the_student(image_run, tmp_path):
    from trainer.compression import prune_filters

    _, _, experiment = rebuild_run(image_run)
    model = keras.models.load_model(image_run / "model.keras", compile=False)
    original = [weights.copy() for weights in model.get_weights()]
    search = Search(model, experiment, CompressConfig(), tmp_path)
    teacher = search.teacher()
    assert teacher is not model and not teacher.trainable and model.trainable
    assert search.teacher() is teacher  # one copy per search
    student = prune_filters(model, 0.5, criterion="bn")
    before = [weights.copy() for weights in student.get_weights()]
    search.fit(student, [], epochs=1, teacher=teacher)
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights(), strict=True))
    for kept, now in zip(original, model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)
    for kept, now in zip(original, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)


def test_a_teacher_from_another_run(image_run, tmp_path, capsys):
    other = tmp_path / "teacher-run"
    other.mkdir()
    keras.utils.set_random_seed(1)
    tiny = keras.Sequential(
        [keras.Input((20, 20, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    tiny.save(other / "model.keras")
    _, _, experiment = rebuild_run(image_run)
    model = keras.models.load_model(image_run / "model.keras", compile=False)
    config = CompressConfig(teacher=str(other))
    teacher = Search(model, experiment, config, tmp_path / "out").teacher()
    assert not teacher.trainable and teacher.count_params() == tiny.count_params()
    # A missing teacher fails before any work, naming the file.
    missing = tmp_path / "nowhere"
    assert trainer_main(["compress", str(image_run), f"--teacher={missing}"]) == 2
    assert str(missing / "model.keras") in capsys.readouterr().err


def test_drops_are_called_biased_when_validation_was_trained_on(image_run, tmp_path):
    run = _copy_run(image_run, tmp_path / "run", held_out=False)
    out = tmp_path / "out"
    # --batch_size re-batches the recipe's training data for fine-tuning.
    args = [
        "compress",
        str(run),
        "--method=prune",
        "--sparsities=0.5",
        "--finetune_epochs=0.5",
        "--batch_size=16",
        f"--out_dir={out}",
    ]
    assert trainer_main(args) == 0
    report = (out / "report.md").read_text()
    assert "biased" in report and "unbiased" not in report
    # 13 batches of 32 in the recipe's epoch: about 26 of 16.
    assert re.search(r"batch 16, 2[56] steps per epoch", report)


def test_an_original_at_chance_is_refused_before_any_work(image_run, tmp_path, capsys):
    run = _copy_run(image_run, tmp_path / "run")
    keras.utils.set_random_seed(5)
    untrained = keras.models.clone_model(keras.models.load_model(run / "model.keras"))
    untrained.save(run / "model.keras")
    out = tmp_path / "out"
    assert trainer_main(["compress", str(run), f"--out_dir={out}"]) == 1
    error = capsys.readouterr().err
    assert "never learned" in error and "more epochs" in error and "fit diagnosis" in error
    assert "Traceback" not in error
    assert not (out / "candidates").exists()


def test_a_run_without_validation_data_is_refused(image_run, tmp_path, capsys):
    run = _copy_run(image_run, tmp_path / "run", validation=0)
    assert trainer_main(["compress", str(run), f"--out_dir={tmp_path / 'out'}"]) == 1
    error = capsys.readouterr().err
    assert "no validation data" in error and "never on the test set" in error


def test_a_truncated_model_file_is_named_in_one_paragraph(image_run, tmp_path, capsys):
    run = _copy_run(image_run, tmp_path / "run")
    model_file = run / "model.keras"
    model_file.write_bytes(model_file.read_bytes()[: model_file.stat().st_size // 2])
    assert trainer_main(["compress", str(run)]) == 1
    error = capsys.readouterr().err
    assert str(model_file) in error and "truncated" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("--batch_size=0", "batch_size"),
        ("--max_accuracy_drop=nan", "max_accuracy_drop"),
        ("--max_accuracy_drop=-1", "max_accuracy_drop"),
        ("--method=magic", "magic"),
        ("--sparsities=0.5,1.5", "sparsities"),
        ("--criterion=l3", "criterion"),
        ("--finetune_epochs=0", "finetune_epochs"),
        ("--alpha=2", "alpha"),
        ("--budget=1", "max_accuracy_drop"),  # an unknown key lists the valid ones
    ],
)
def test_bad_options_exit_2_naming_the_option(image_run, option, named, capsys):
    assert trainer_main(["compress", str(image_run), option]) == 2
    assert named in capsys.readouterr().err
    assert not (image_run / "compression").exists()


def test_missing_run_files_and_help(text_run, tmp_path, capsys):
    assert trainer_main(["compress", str(tmp_path / "missing")]) == 2
    assert "config.yaml" in capsys.readouterr().err
    # The text recipe has no `width`, so a student width cannot apply.
    assert trainer_main(["compress", str(text_run), "--student_width=8"]) == 2
    assert "student_width" in capsys.readouterr().err
    assert trainer_main(["compress", "--help"]) == 0
    assert "--max_accuracy_drop" in capsys.readouterr().out


def test_an_image_classifier_run_compresses(tmp_path):
    from datagen import write_image_folder

    photos = tmp_path / "photos"
    write_image_folder(photos / "train", per_class=30, seed=1)
    write_image_folder(photos / "test", per_class=10, seed=2)
    run = tmp_path / "run"
    train = [
        "train",
        "image_classifier",
        f"--data={photos}",
        f"--run_dir={run}",
        "--epochs=3",
        "--image_size=16",
        "--width=8",
        "--batch_size=16",
        "--learning_rate=0.01",
        "--export=float32,int8",
        "--augment=crop:2",
    ]
    assert trainer_main(train) == 0
    out = tmp_path / "out"
    args = [
        "compress",
        str(run),
        "--method=ptq,distill",
        "--distill_epochs=1",
        "--max_accuracy_drop=100",
        f"--out_dir={out}",
    ]
    assert trainer_main(args) == 0
    candidates = _metrics(out)["candidates"]
    assert [c["name"] for c in candidates] == [
        "original-float32",
        "ptq-float16",
        "ptq-dynamic",
        "ptq-int8",
        "distill-width4-float32",
        "distill+ptq-width4-int8",
    ]
    # The run's own 16x16 RGB test images, scored through the recipe's preprocessing.
    test_accuracy = json.loads((run / "metrics.json").read_text())["test_accuracy"]
    assert candidates[0]["test_accuracy"] == pytest.approx(test_accuracy, abs=1 / 30)
    assert candidates[4]["parameters"] < 0.5 * candidates[0]["parameters"]


def test_a_text_classifier_run_compresses_with_dynamic_range(tmp_path):
    from datagen import write_imdb

    root = write_imdb(tmp_path / "aclImdb", per_class=20)
    run = tmp_path / "run"
    train = [
        "train",
        "text_classifier",
        f"--data={root}",
        f"--run_dir={run}",
        "--model=cnn",
        "--epochs=12",
        "--sequence_length=24",
        "--embedding_dim=16",
        "--width=16",
        "--batch_size=8",
        "--learning_rate=0.01",
    ]
    assert trainer_main(train) == 0
    out = tmp_path / "out"
    args = [
        "compress",
        str(run),
        "--method=ptq,structured,distill",
        "--structured_ratios=0.5",
        "--structured_epochs=1",
        "--distill_epochs=1",
        "--max_accuracy_drop=100",
        f"--out_dir={out}",
    ]
    assert trainer_main(args) == 0
    metrics = _metrics(out)
    assert [c["name"] for c in metrics["candidates"]] == [
        "original-float32",
        "ptq-float16",
        "ptq-dynamic",
        "structured-ratio0.5-float32",
        "structured+ptq-ratio0.5-dynamic",
        "distill-width8-float32",
        "distill+ptq-width8-dynamic",
    ]
    by_name = {c["name"]: c for c in metrics["candidates"]}
    assert (
        by_name["ptq-dynamic"]["test_accuracy"]
        >= by_name["original-float32"]["test_accuracy"] - 0.05
    )


def test_best_is_the_smallest_or_fastest_within_budget_else_the_original():
    from trainer.compress import Candidate, best_candidate

    def candidate(name, gzip_bytes, latency_ms, within_budget):
        return Candidate(
            technique=name,
            settings="",
            format="int8",
            path=f"{name}.tflite",
            val_accuracy=0.9,
            val_drop_pp=0.0,
            test_accuracy=0.9,
            test_drop_pp=0.0,
            size_bytes=gzip_bytes,
            gzip_bytes=gzip_bytes,
            latency_ms=latency_ms,
            parameters=1,
            nonzero_parameters=1,
            flops=1,
            seconds=0.0,
            within_budget=within_budget,
        )

    original = candidate("original", 1000, 1.0, True)
    small = candidate("small", 100, 0.8, True)
    fast = candidate("fast", 300, 0.2, True)
    tiny_but_over = candidate("tiny", 10, 0.1, False)
    candidates = [original, small, fast, tiny_but_over]
    assert best_candidate(candidates, "size") is small
    assert best_candidate(candidates, "latency") is fast
    original.within_budget = False  # even the original over budget: keep it all the same
    assert best_candidate([original, tiny_but_over], "size") is original
