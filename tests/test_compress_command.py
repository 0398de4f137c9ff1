"""`trainer compress RUN_DIR`: candidates measured and reported, the budget accepts and rejects,
the best file is written, bad options fail fast with exit code 2."""

import json

import numpy as np
import pytest
import tf_keras as keras
import yaml

from conftest import make_class_images, write_fashion_dir
from trainer.cli import main as trainer_main
from trainer.compression import CompressConfig, compress_run, load_run_data
from trainer.data.idx import load_fashion_mnist
from trainer.export import tflite_accuracy
from trainer.models import small_cnn


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory like `trainer train fashion_mnist` makes, with a quickly trained model."""
    root = tmp_path_factory.mktemp("compress")
    data_dir = write_fashion_dir(root / "fashion")
    (x_train, y_train), _ = load_fashion_mnist(data_dir, check_counts=False)
    run = root / "run"
    run.mkdir()
    config = {"data_dir": str(data_dir), "train_limit": 0, "test_limit": 0, "width": 8,
              "dropout": 0.0, "label_smoothing": 0.0, "crop_padding": 0, "flip": False}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    keras.utils.set_random_seed(0)
    model = small_cnn(width=8, dropout=0.0)
    model.compile(
        keras.optimizers.Adam(3e-3), keras.losses.CategoricalCrossentropy(from_logits=True)
    )
    model.fit(
        x_train[..., None] / 255.0, keras.utils.to_categorical(y_train, 10), epochs=3, verbose=0
    )
    model.save(run / "model.keras")
    return run


def test_validation_slice_is_disjoint_from_fine_tuning_data(run_dir):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    data = load_run_data(config, validation_size=100, seed=0)
    assert len(data.x_fit) == 500 and len(data.x_val) == 100 and len(data.x_test) == 200
    fit_rows = {image.tobytes() for image in data.x_fit}
    val_rows = {(image[..., 0] * 255).round().astype(np.uint8).tobytes() for image in data.x_val}
    assert not fit_rows & val_rows
    with pytest.raises(ValueError, match="validation_size"):
        load_run_data(config, validation_size=400)


def test_ptq_candidates_are_measured_reported_and_the_smallest_kept(run_dir, tmp_path):
    out = tmp_path / "out"
    metrics = compress_run(
        run_dir,
        CompressConfig(method="ptq", max_accuracy_drop=50.0, validation_size=100, out_dir=str(out)),
    )
    names = [candidate["name"] for candidate in metrics["candidates"]]
    assert names == ["original-float32", "ptq-float16", "ptq-dynamic", "ptq-int8"]
    by_name = {candidate["name"]: candidate for candidate in metrics["candidates"]}
    assert by_name["ptq-int8"]["size_bytes"] < 0.35 * by_name["original-float32"]["size_bytes"]
    # With a generous budget everything qualifies and the smallest gzip file wins.
    smallest = min(metrics["candidates"], key=lambda candidate: candidate["gzip_bytes"])
    assert metrics["best"] == smallest["name"]
    assert (out / "model_compressed.tflite").read_bytes() == (
        out / "candidates" / f"{smallest['name']}.tflite"
    ).read_bytes()
    assert (out / "model_compressed.keras").is_file()
    # The recorded accuracy is what the written file scores.
    images, y_test = make_class_images(200, seed=2)  # the run's test images
    x_test = (images[..., None] / 255.0).astype(np.float32)
    content = (out / "candidates" / "ptq-int8.tflite").read_bytes()
    assert tflite_accuracy(content, x_test, y_test) == pytest.approx(
        by_name["ptq-int8"]["test_accuracy"]
    )
    report = (out / "report.md").read_text()
    for fragment in (
        "| candidate |",
        "ptq (int8)",
        "gzip size",
        "MFLOPs",
        "validation slice",
        "accuracy_vs_size.png",
    ):
        assert fragment in report, fragment
    assert (out / "accuracy_vs_size.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "metrics.json").read_text())["best"] == metrics["best"]


def test_candidate_over_budget_is_rejected(run_dir, tmp_path):
    """90% of the filters gone and a handful of fine-tuning steps: far over a 0.5 pp budget."""
    metrics = compress_run(
        run_dir,
        CompressConfig(
            method="structured", structured_ratios="0.9", structured_epochs=0.2, criterion="l1",
            max_accuracy_drop=0.5, validation_size=100, out_dir=str(tmp_path / "out"),
        ),
    )  # fmt: skip
    structured = [c for c in metrics["candidates"] if c["technique"].startswith("structured")]
    assert len(structured) == 2
    for candidate in metrics["candidates"]:
        assert candidate["within_budget"] == (candidate["val_drop_pp"] <= 0.5)
    assert all(c["val_drop_pp"] > 0.5 and not c["within_budget"] for c in structured)
    assert all(c["parameters"] < 0.3 * metrics["candidates"][0]["parameters"] for c in structured)
    assert all(c["flops"] < 0.3 * metrics["candidates"][0]["flops"] for c in structured)
    # Nothing smaller qualified, so the original float model is kept.
    assert metrics["best"] == "original-float32"
    assert "| over |" in (tmp_path / "out" / "report.md").read_text()


def test_cli_rejects_bad_options_before_any_work(run_dir, tmp_path, capsys):
    assert trainer_main(["compress", str(tmp_path / "missing")]) == 2
    assert "config.yaml" in capsys.readouterr().err
    assert trainer_main(["compress", str(run_dir), "--method=magic"]) == 2
    assert "magic" in capsys.readouterr().err
    assert trainer_main(["compress", str(run_dir), "--sparsities=0.5,1.5"]) == 2
    assert "1.5" in capsys.readouterr().err
    assert trainer_main(["compress", str(run_dir), "--max_accuracy_drop=-1"]) == 2
    assert trainer_main(["compress", str(run_dir), "--budget=1"]) == 2
    assert "max_accuracy_drop" in capsys.readouterr().err
    assert trainer_main(["compress", "--help"]) == 0
    assert "--max_accuracy_drop" in capsys.readouterr().out


def test_auto_search_runs_cheapest_first_and_stops_ladders_over_budget(run_dir, tmp_path):
    metrics = compress_run(
        run_dir,
        CompressConfig(
            max_accuracy_drop=0.0, sparsities="0.5,0.9", structured_ratios="0.5,0.9",
            finetune_epochs=0.2, structured_epochs=0.2, distill_epochs=1, validation_size=100,
            out_dir=str(tmp_path / "out"),
        ),
    )  # fmt: skip
    techniques = [candidate["technique"] for candidate in metrics["candidates"]]
    assert techniques[:4] == ["original", "ptq", "ptq", "ptq"]
    assert techniques[-2:] == ["distill", "distill+ptq"]
    # Each ladder goes up only while within budget: after an over-budget rung it stops.
    for prefix in ("prune", "structured+ptq"):
        rungs = [c for c in metrics["candidates"] if c["technique"].startswith(prefix)]
        over = [index for index, rung in enumerate(rungs) if not rung["within_budget"]]
        assert not over or over[0] == len(rungs) - 1


def test_fine_tuning_with_the_teacher_trains_only_the_student(run_dir, tmp_path):
    # Structured pruning fine-tunes against the original's soft labels: the teacher must be
    # a frozen copy, so the run's model (the source of every other candidate) never changes.
    from trainer.compression import _Search
    from trainer.structured_pruning import prune_filters

    run_config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    original = [weights.copy() for weights in model.get_weights()]
    data = load_run_data(run_config, validation_size=100, seed=0)
    search = _Search(model, data, CompressConfig(), run_config, tmp_path)
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


def test_collaborative_qat_candidates_keep_sparsity_and_clusters(run_dir, tmp_path):
    metrics = compress_run(
        run_dir,
        CompressConfig(
            method="pqat,cqat", sparsities="0.5", clusters=8, finetune_epochs=0.2,
            max_accuracy_drop=100.0, validation_size=100, out_dir=str(tmp_path / "out"),
        ),
    )  # fmt: skip
    by_technique = {c["technique"]: c for c in metrics["candidates"]}
    assert set(by_technique) == {"original", "prune+pqat", "cluster+cqat"}
    assert all(c["format"] == "int8" for c in metrics["candidates"][1:])
    pruned = by_technique["prune+pqat"]
    # Half of the large layers' weights (most of the model) stay zero through QAT.
    assert pruned["nonzero_parameters"] < 0.7 * pruned["parameters"]
    assert by_technique["cluster+cqat"]["settings"] == "clusters=8"


def test_teacher_from_another_run_directory(run_dir, tmp_path, capsys):
    from trainer.compression import _Search

    other = tmp_path / "teacher-run"
    other.mkdir()
    keras.utils.set_random_seed(1)
    small_cnn(width=4, dropout=0.0).save(other / "model.keras")
    run_config = yaml.safe_load((run_dir / "config.yaml").read_text())
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    data = load_run_data(run_config, validation_size=100, seed=0)
    config = CompressConfig(teacher=str(other))
    teacher = _Search(model, data, config, run_config, tmp_path / "out").teacher()
    assert not teacher.trainable and teacher.count_params() == small_cnn(width=4).count_params()
    # A missing teacher fails before any work, naming the file.
    missing = tmp_path / "nowhere"
    assert trainer_main(["compress", str(run_dir), f"--teacher={missing}"]) == 2
    assert str(missing / "model.keras") in capsys.readouterr().err
