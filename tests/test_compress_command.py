"""`trainer compress RUN_DIR` through the recipe contract: the run is rebuilt by the recipe that
made it (an image CNN with a `width`, a text model), candidates are measured and reported, the
budget accepts and rejects, a model that never learned and bad options are refused.

The end-to-end compressions are the session's shared ones (conftest.py): the image_classifier
run compressed with one candidate of each kind, and the text_classifier run. Which candidates
the search tries, and where each ladder stops, is checked on a scripted budget without
training; recipe fields the shipped recipes lack (validation trained on, no validation data,
no `width`) on hand-made runs of the test recipes."""

import json
import re
import shutil

import numpy as np
import pytest
import tf_keras as keras
import yaml

from conftest import RECIPES_FOR_TESTS, fitted_run
from trainer.cli import main as trainer_main
from trainer.compress import CompressConfig, Search, rebuild_run
from trainer.export import tflite_accuracy


def _recipe_run(folder, name: str, epochs: int, **fields):
    """A run folder of tests/recipes_for_tests/NAME.py as `trainer train` leaves it for
    compress, without the training's exports and reports (conftest.fitted_run)."""
    return fitted_run(folder, str(RECIPES_FOR_TESTS / f"{name}.py"), epochs, **fields)


@pytest.fixture(scope="module")
def bars_run(tmp_path_factory):
    """tiny_bars (20x20 bars, 10 classes; its Config has `held_out` and `validation`),
    trained 3 epochs."""
    return _recipe_run(tmp_path_factory.mktemp("bars") / "run", "tiny_bars", epochs=3)


def _copy_run(run, destination, **config_changes):
    """A copy of a run folder, with some values of its config.yaml changed."""
    shutil.copytree(run, destination, ignore=shutil.ignore_patterns("compression*"))
    config = yaml.safe_load((destination / "config.yaml").read_text())
    config.update(config_changes)
    (destination / "config.yaml").write_text(yaml.safe_dump(config))
    return destination


def _metrics(out_dir) -> dict:
    return json.loads((out_dir / "metrics.json").read_text())


def test_an_image_run_compresses_through_its_recipe(
    image_classifier_run, image_classifier_compressed
):
    """The shared compression of the image_classifier run (conftest.py), one candidate of each
    kind on a strict budget: real candidates in the search's order, each judged against the
    budget by its measured validation drop; the best is the smallest within it, verified by
    MediaPipe; pruning and clustering survive into the files."""
    out, run = image_classifier_compressed, image_classifier_run
    metrics = _metrics(out)
    names = [candidate["name"] for candidate in metrics["candidates"]]
    assert names == [
        "original-float32",
        "ptq-float16",
        "ptq-dynamic",
        "ptq-int8",
        "prune+pqat-sparsity0.5-int8",
        "structured-ratio0.5-float32",
        "structured+ptq-ratio0.5-int8",
        "cluster+ptq-clusters8-int8",
        "distill-width4-float32",
        "distill+ptq-width4-int8",
    ]
    by_name = {candidate["name"]: candidate for candidate in metrics["candidates"]}
    original = by_name["original-float32"]
    # The student is the recipe's own model at half the width (4 filters, then 8, 16).
    _, config, experiment = rebuild_run(run)
    assert by_name["distill-width4-float32"]["parameters"] == _student_parameters(run, width=4)
    assert by_name["distill-width4-float32"]["parameters"] < 0.5 * original["parameters"]
    assert by_name["structured-ratio0.5-float32"]["parameters"] < 0.6 * original["parameters"]
    # Half of the large layers' weights (most of the model) stay zero through QAT.
    pruned = by_name["prune+pqat-sparsity0.5-int8"]
    assert pruned["nonzero_parameters"] < 0.75 * pruned["parameters"]
    assert metrics["reference_test_accuracy"] > 0.5  # the tiny run learned
    # Scores are on the data the recipe rebuilds: the recorded accuracy is what the file scores,
    # and the float32 file scores what training measured (25 test images: one image at most).
    content = (out / "candidates" / "ptq-int8.tflite").read_bytes()
    assert tflite_accuracy(content, experiment.x_test, experiment.y_test) == pytest.approx(
        by_name["ptq-int8"]["test_accuracy"]
    )
    test_accuracy = json.loads((run / "metrics.json").read_text())["test_accuracy"]
    assert original["test_accuracy"] == pytest.approx(test_accuracy, abs=1 / 25 + 1e-9)
    # The budget judges each candidate by its validation drop; the smallest gzip file within
    # it wins, else the original.
    for candidate in metrics["candidates"]:
        assert candidate["within_budget"] == (candidate["val_drop_pp"] <= 0.0)
    eligible = [c for c in metrics["candidates"] if c["within_budget"]]
    best = min(eligible, key=lambda c: c["gzip_bytes"])["name"] if eligible else None
    assert metrics["best"] == (best or "original-float32")
    assert (out / "model_compressed.tflite").read_bytes() == (
        out / "candidates" / f"{metrics['best']}.tflite"
    ).read_bytes()
    # The chosen file is verified as training verifies its files: MediaPipe loads it.
    check = metrics["compressed_file"]["mediapipe"]
    assert check["loaded"] and check["labels"] == ["a", "b", "c"], check["error"]
    assert metrics["compressed_file"]["size_bytes"] == by_name[metrics["best"]]["size_bytes"]
    report = (out / "report.md").read_text()
    for fragment in (
        "| candidate |",
        "ptq (int8)",
        "MFLOPs",
        f"{len(experiment.x_val)} validation examples",
        "unbiased",
        "width=4",
        "accuracy_vs_size.png",
    ):
        assert fragment in report, fragment
    assert (out / "accuracy_vs_size.png").read_bytes()[:4] == b"\x89PNG"


def _student_parameters(run, width: int) -> int:
    import dataclasses

    recipe, config, _ = rebuild_run(run)
    return recipe.build(dataclasses.replace(config, width=width)).model.count_params()


def test_a_text_run_gets_dynamic_range_candidates_and_skips_qat(text_classifier_compressed):
    """The shared compression of the text_classifier run (the CNN on token ids, conftest.py):
    its recipe exports no int8, so dynamic range stands in for int8 and QAT is skipped."""
    out = text_classifier_compressed
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
    assert metrics["quantized_format"] == "dynamic"
    assert any(note.startswith("qat skipped") for note in metrics["notes"])
    by_name = {c["name"]: c for c in metrics["candidates"]}
    original = by_name["original-float32"]
    assert by_name["structured-ratio0.5-float32"]["parameters"] < original["parameters"]
    assert by_name["distill-width8-float32"]["parameters"] < original["parameters"]
    # Dynamic-range quantization keeps the token ids intact: the model still works.
    assert by_name["ptq-dynamic"]["test_accuracy"] >= original["test_accuracy"] - 0.05
    assert metrics["reference_test_accuracy"] > 0.6
    assert "dynamic range" in (out / "report.md").read_text()


def test_without_a_width_the_student_is_the_original_with_half_its_filters(tmp_path):
    """tiny_text's Config has no `width`: the student is the original without half its
    filters, re-initialised (not trained: the factory is what is checked)."""
    from trainer.compress.search import student_factory
    from trainer.compression import prune_filters

    run = _recipe_run(tmp_path / "run", "tiny_text", epochs=0)
    recipe, config, experiment = rebuild_run(run)
    model = keras.models.load_model(run / "model.keras", compile=False)
    student, settings, description = student_factory(recipe, config, model, CompressConfig())()
    assert settings == "ratio=0.5" and "re-initialised" in description
    pruned = prune_filters(model, 0.5, criterion="l1")
    assert student.count_params() == pruned.count_params() < model.count_params()
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(student.get_weights(), pruned.get_weights(), strict=True)
    )


def test_a_model_of_token_ids_without_a_tokenizer_is_written_for_litert_only(tmp_path):
    """tiny_text's input_spec names no tokenizer: its files take the ids as they are and
    return logits, and the compressed file gets no MediaPipe row."""
    import time

    from trainer.compress.files import CandidateFiles

    run = _recipe_run(tmp_path / "run", "tiny_text", epochs=0)
    _, _, experiment = rebuild_run(run)
    model = keras.models.load_model(run / "model.keras", compile=False)
    outputs = model.predict(experiment.x_test, verbose=0)
    files = CandidateFiles(model, experiment, "float32", tmp_path / "out", outputs, (0.9, 0.9))
    assert files.target.outputs == "logits" and files.target.text is None
    candidate = files.measure("original", "", model, "float32", time.perf_counter())
    result = files.write_compressed(candidate, 100.0)
    assert result.mediapipe is None and result.outputs == "logits"
    assert result.agreement == 1.0


class ScriptedBudget(Search):
    """A Search whose measurements are scripted: the candidates in `over` are over budget,
    every other one within it; nothing is trained, exported or scored. What is tested is the
    plan `Search.run` follows, not the tiny run's accuracies."""

    over: set = set()

    def fit(self, *args, **kwargs) -> None:
        pass

    def measure(self, technique, settings, model, format, started):
        from trainer.compress.candidates import Candidate

        name = "-".join(part for part in (technique, settings.replace("=", ""), format) if part)
        candidate = Candidate(
            technique=technique,
            settings=settings,
            format=format,
            path=f"{name}.tflite",
            val_accuracy=0.9,
            val_drop_pp=0.0,
            test_accuracy=0.9,
            test_drop_pp=0.0,
            size_bytes=1,
            gzip_bytes=1,
            latency_ms=1.0,
            parameters=1,
            nonzero_parameters=1,
            flops=1,
            seconds=0.0,
            within_budget=(technique, settings, format) not in self.over,
        )
        self.candidates.append(candidate)
        return candidate


def _scripted_search(run, out_dir, config: CompressConfig, over: set) -> ScriptedBudget:
    from trainer.compress.search import student_factory

    recipe, recipe_config, experiment = rebuild_run(run)
    model = keras.models.load_model(run / "model.keras", compile=False)
    make_student = student_factory(recipe, recipe_config, model, config)
    search = ScriptedBudget(model, experiment, config, out_dir, make_student)
    search.over = over
    return search


@pytest.mark.parametrize("ptq_over", [True, False], ids=["ptq_over_budget", "ptq_within"])
def test_search_plan_in_auto_mode_is_cheapest_first_and_each_ladder_stops_at_its_first_rung_over(
    image_classifier_run, tmp_path, ptq_over
):
    # PTQ over budget: QAT is tried, and the pruned models are quantized with QAT that keeps
    # their zeros; within budget, neither.
    prune = "prune+pqat" if ptq_over else "prune+ptq"
    over = {(prune, "sparsity=0.75", "int8"), ("structured+ptq", "ratio=0.25", "int8")}
    if ptq_over:
        over.add(("ptq", "", "int8"))
    config = CompressConfig(sparsities="0.5,0.75,0.9", structured_ratios="0.25,0.5")
    search = _scripted_search(image_classifier_run, tmp_path, config, over)
    search.run(["auto"])
    plan = [(c.technique, c.settings, c.format) for c in search.candidates]
    assert plan == [
        ("original", "", "float32"),
        ("ptq", "", "float16"),
        ("ptq", "", "dynamic"),
        ("ptq", "", "int8"),
        *([("qat", "", "int8")] if ptq_over else []),
        (prune, "sparsity=0.5", "int8"),
        (prune, "sparsity=0.75", "int8"),  # over budget: 0.9 is never tried
        ("structured", "ratio=0.25", "float32"),
        ("structured+ptq", "ratio=0.25", "int8"),  # over budget: 0.5 is never tried
        ("distill", "width=4", "float32"),
        ("distill+ptq", "width=4", "int8"),
    ]
    assert "prune: stopped at 0.75, the first over budget." in search.notes
    assert "structured: stopped at 0.25, the first over budget." in search.notes
    assert any(note.startswith("QAT skipped") for note in search.notes) != ptq_over


def test_search_plan_with_named_methods_tries_each_rung_whatever_the_budget(
    image_classifier_run, tmp_path
):
    over = {("ptq", "", "int8"), ("structured+ptq", "ratio=0.25", "int8")}
    config = CompressConfig(structured_ratios="0.25,0.5")
    search = _scripted_search(image_classifier_run, tmp_path, config, over)
    search.run(["ptq", "structured", "distill"])
    assert [(c.technique, c.settings, c.format) for c in search.candidates] == [
        ("original", "", "float32"),
        ("ptq", "", "float16"),
        ("ptq", "", "dynamic"),
        ("ptq", "", "int8"),  # over budget, but QAT was not asked for
        ("structured", "ratio=0.25", "float32"),
        ("structured+ptq", "ratio=0.25", "int8"),
        ("structured", "ratio=0.5", "float32"),
        ("structured+ptq", "ratio=0.5", "int8"),
        ("distill", "width=4", "float32"),
        ("distill+ptq", "width=4", "int8"),
    ]


@pytest.mark.e2e
@pytest.mark.slow
def test_collaborative_qat_candidates_keep_sparsity_and_clusters(image_classifier_run, tmp_path):
    """Cluster-preserving QAT through the search (about 12 s of CPU for its QAT alone): under
    -m slow, because CI has each part elsewhere: the search's pruning-preserving QAT and its
    clustering are candidates of the shared compression (test_an_image_run_compresses_...),
    and quantize_aware(preserve="clusters") keeping the clusters is
    test_compression.py::test_cluster_preserving_qat_keeps_clusters."""
    from trainer.compress import compress_run

    metrics = compress_run(
        image_classifier_run,
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
    assert pruned["nonzero_parameters"] < 0.75 * pruned["parameters"]
    assert by_technique["cluster+cqat"]["settings"] == "clusters=8"


def test_teacher_is_a_frozen_copy_and_fine_tuning_trains_only_the_student(
    image_classifier_run, tmp_path
):
    from trainer.compression import prune_filters

    _, _, experiment = rebuild_run(image_classifier_run)
    model = keras.models.load_model(image_classifier_run / "model.keras", compile=False)
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


def test_a_teacher_from_another_run(image_classifier_run, tmp_path, capsys):
    other = tmp_path / "teacher-run"
    other.mkdir()
    keras.utils.set_random_seed(1)
    tiny = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    tiny.save(other / "model.keras")
    _, _, experiment = rebuild_run(image_classifier_run)
    model = keras.models.load_model(image_classifier_run / "model.keras", compile=False)
    config = CompressConfig(teacher=str(other))
    teacher = Search(model, experiment, config, tmp_path / "out").teacher()
    assert not teacher.trainable and teacher.count_params() == tiny.count_params()
    # A missing teacher fails before any work, naming the file.
    missing = tmp_path / "nowhere"
    assert trainer_main(["compress", str(image_classifier_run), f"--teacher={missing}"]) == 2
    assert str(missing / "model.keras") in capsys.readouterr().err


def test_drops_are_called_biased_when_validation_was_trained_on(bars_run, tmp_path):
    run = _copy_run(bars_run, tmp_path / "run", held_out=False)
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
    assert [c["name"] for c in _metrics(out)["candidates"]] == [
        "original-float32",
        "prune+ptq-sparsity0.5-int8",
    ]


def test_an_original_at_chance_is_refused_before_any_work(image_classifier_run, tmp_path, capsys):
    run = _copy_run(image_classifier_run, tmp_path / "run")
    keras.utils.set_random_seed(5)
    untrained = keras.models.clone_model(keras.models.load_model(run / "model.keras"))
    untrained.save(run / "model.keras")
    out = tmp_path / "out"
    assert trainer_main(["compress", str(run), f"--out_dir={out}"]) == 1
    error = capsys.readouterr().err
    assert "never learned" in error and "more epochs" in error and "fit diagnosis" in error
    assert "Traceback" not in error
    assert not (out / "candidates").exists()


def test_a_run_without_validation_data_is_refused(bars_run, tmp_path, capsys):
    run = _copy_run(bars_run, tmp_path / "run", validation=0)
    assert trainer_main(["compress", str(run), f"--out_dir={tmp_path / 'out'}"]) == 1
    error = capsys.readouterr().err
    assert "no validation data" in error and "never on the test set" in error


def test_a_truncated_model_file_is_named_in_one_paragraph(image_classifier_run, tmp_path, capsys):
    run = _copy_run(image_classifier_run, tmp_path / "run")
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
def test_bad_options_exit_2_naming_the_option(image_classifier_run, option, named, capsys):
    assert trainer_main(["compress", str(image_classifier_run), option]) == 2
    assert named in capsys.readouterr().err
    assert not (image_classifier_run / "compression").exists()


def test_missing_run_files_and_help(tmp_path, capsys):
    assert trainer_main(["compress", str(tmp_path / "missing")]) == 2
    assert "config.yaml" in capsys.readouterr().err
    # The text recipe has no `width`, so a student width cannot apply.
    text_run = _recipe_run(tmp_path / "text-run", "tiny_text", epochs=0)
    assert trainer_main(["compress", str(text_run), "--student_width=8"]) == 2
    assert "student_width" in capsys.readouterr().err
    assert trainer_main(["compress", "--help"]) == 0
    assert "--max_accuracy_drop" in capsys.readouterr().out


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
