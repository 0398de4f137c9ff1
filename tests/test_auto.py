"""`trainer auto`: a verified winner within the limits, an impossible budget named with the
closest file, text data, resume after a kill, Ctrl-C keeping the finished winner, and the
pieces (budget arithmetic, the winner's choice, resolutions, epochs, options) in unit tests.

One tiny image run is shared by the tests that only read it (a module-scoped fixture, about
30 s of CPU: a search of one or two trials, one finalist, its quantization and verification);
the text run is the resume test's (killed in a fork of the warm server once its first
trial is logged, then resumed here).
"""

import contextlib
import dataclasses
import io
import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from trainer.auto import AutoOptions, check_auto_options
from trainer.auto.cost import COMPRESS_REACH, Budget, Cost
from trainer.config import ConfigError

pytestmark = pytest.mark.usefixtures("frozen_gc")  # keras-tuner collects before every trial

TINY_BUDGET = 8.0  # seconds: every stage then runs its minimum (one trial, one finalist)


def _run(options: AutoOptions):
    """`run_auto(options)` in this process; returns (result, what it printed)."""
    from trainer.auto import run_auto

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run_auto(options)
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from datagen import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("auto") / "photos", per_class=20, seed=1)


@pytest.fixture(scope="module")
def image_auto(photos):
    """One tiny `trainer auto` run on 3 classes of 16x16 bar images: (result, printed)."""
    options = AutoOptions(
        data=str(photos),
        max_kib=64,
        max_ms=1.0,
        time_budget=TINY_BUDGET,
        run_dir=str(photos.parent / "auto"),
        progress_every=0,
    )
    return _run(options)


# -- end to end ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_winner_fits_both_limits_and_is_verified_in_litert_and_mediapipe(image_auto):
    import numpy as np

    from trainer.export import predict_tflite

    result, _ = image_auto
    assert result.met, result.message
    model = result.directory / "model.tflite"
    assert model.stat().st_size <= 64 * 1024
    verified = result.winner["verified"]
    assert verified["latency_ms"] <= 1.0 and verified["size_bytes"] == model.stat().st_size
    assert verified["mediapipe_loaded"] and verified["mediapipe_agreement"] >= 0.9
    assert verified["accuracy"] >= 0.8  # bar images: far above chance (1/3)
    sidecar = json.loads((result.directory / "model.json").read_text())
    assert sidecar["model_file"] == "model.tflite"
    assert sidecar["class_names"] == ["a", "b", "c"]
    assert sidecar["tflite_input"]["shape"][-1] == 3  # RGB in, as the mobile runtimes feed
    assert sidecar["tflite_output"]["shape"] == [1, 3]  # one probability per class out
    size = sidecar["image"]["height"]
    probabilities = predict_tflite(model.read_bytes(), np.full((2, size, size, 3), 0.5, np.float32))
    assert np.allclose(probabilities.sum(axis=-1), 1.0, atol=0.02)
    assert (result.directory / "model_card.md").read_text().startswith("# Model card")


@pytest.mark.e2e
def test_report_picture_and_progress_lines(image_auto):
    result, printed = image_auto
    report = (result.directory / "report.md").read_text()
    assert "winner:" in report and "MediaPipe Tasks" in report
    assert (result.directory / "accuracy_size_latency.png").stat().st_size > 10_000
    metrics = json.loads((result.directory / "metrics.json").read_text())
    assert metrics["met"] is True and metrics["trials"]
    for stage in ("auto: data check;", "auto: search;", "auto: training finalist"):
        assert stage in printed, printed[-3000:]
    assert f"s of the {TINY_BUDGET:.0f} s budget left" in printed
    assert "trials done" in printed
    # the recipe's default model is a finalist, or the progress lines and the report say why not
    assert "the recipe's default model (width=32, stages=3, image_size=32" in printed
    assert "The recipe's default model (width=32" in report


@pytest.mark.e2e
def test_an_impossible_budget_names_the_limit_and_shows_the_closest(photos, tmp_path):
    result, _ = _run(
        AutoOptions(
            data=str(photos),
            max_kib=1,
            time_budget=TINY_BUDGET,
            run_dir=str(tmp_path / "impossible"),
            progress_every=0,
        )
    )
    assert not result.met and result.winner is None
    assert "--max_kib=1 (best file" in result.message, result.message
    assert "closest measured: width=8" in result.message
    state = json.loads((tmp_path / "impossible" / "state.json").read_text())
    assert state["cannot_meet"] and not state["trials"]  # stopped before any training
    assert "cannot be met" in (tmp_path / "impossible" / "report.md").read_text()


@pytest.mark.e2e
def test_ctrl_c_keeps_the_finished_winner_usable(image_auto, tmp_path):
    from trainer.auto.run import _keep_what_finished
    from trainer.auto.state import load_options, load_state

    result, _ = image_auto
    copy = Path(shutil.copytree(result.directory, tmp_path / "copy"))
    (copy / "model.tflite").unlink()
    state = load_state(copy)
    with pytest.raises(KeyboardInterrupt, match=f"--resume={copy}"):
        _keep_what_finished(copy, load_options(copy), state, KeyboardInterrupt())
    assert (copy / "model.tflite").is_file()


@pytest.mark.e2e
def test_text_data_resumes_after_a_kill(tmp_path, warm, monkeypatch):
    """`trainer auto` in a fork of the warm server (the process the command would be), killed
    once its first trial is logged, then resumed in this process."""
    from conftest import command_env
    from datagen import write_imdb

    reviews = write_imdb(tmp_path / "aclImdb", per_class=60)
    run_dir = tmp_path / "auto"
    command = [sys.executable, "-m", "trainer.cli", "auto", f"--data={reviews}",
               f"--run_dir={run_dir}", "--max_kib=256", "--time_budget=10",
               "--progress_every=0"]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    process = warm.start(command, command_env(), tmp_path / "killed.log")
    marker = run_dir / "search" / "trial_log.jsonl"
    try:
        while not marker.is_file() and process.poll() is None:
            time.sleep(0.2)  # waits for the file: the first trial has ended
    finally:
        process.kill()
        process.wait()
    assert marker.is_file(), (tmp_path / "killed.log").read_text()[-3000:]
    logged = marker.read_text().splitlines()

    result, printed = _run(AutoOptions(resume=str(run_dir), progress_every=0))
    assert result.met, result.message
    state = json.loads((run_dir / "state.json").read_text())
    assert state["kind"] == "text"
    assert marker.read_text().splitlines()[: len(logged)] == logged  # the trials before it stay
    verified = result.winner["verified"]
    assert verified["format"] == "dynamic" and verified["size_bytes"] <= 256 * 1024
    assert verified["mediapipe_loaded"] and verified["mediapipe_agreement"] >= 0.9
    assert (run_dir / "vocabulary.txt").is_file()  # the file the sidecar names, beside it


# -- units ---------------------------------------------------------------------------------


def test_tracking_logs_the_auto_folder_with_its_finalists_nested(image_auto, tmp_path, monkeypatch):
    """`--tracking=mlflow`: the auto folder is one MLflow run (options, winner's metrics, the
    chosen file) and each finalist's run folder a run nested under it."""
    import json

    import mlflow

    from trainer.tracking import log_auto

    result, _ = image_auto
    monkeypatch.chdir(tmp_path)  # MLflow's artifact store (./mlruns) goes here, not in the repo
    # As a user sets it; mlflow.set_tracking_uri would change MLflow's process-wide state.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = log_auto(result.directory)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(parent)}
    by_id = {run.info.run_id: run for run in runs}
    logged = by_id[parent].data
    assert float(logged.params["max_kib"]) == 64 and logged.tags["trainer.command"] == "auto"
    metrics = json.loads((result.directory / "metrics.json").read_text())
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    assert numbers and all(logged.metrics[k] == pytest.approx(float(v)) for k, v in numbers.items())
    assert {"model.tflite", "report.md", "model_card.md", "auto.yaml"} <= artifacts
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent]
    finalists = [
        p for p in (result.directory / "candidates").glob("*") if (p / "run.json").is_file()
    ]
    assert finalists and len(children) == len(finalists)


def test_budget_excess_fits_and_broken_limits():
    budget = Budget(max_kib=64, max_ms=0.1)
    assert budget.fits(64, 0.1) and not budget.fits(65, 0.05)
    assert budget.excess(128, 0.05) == 2.0 and budget.excess(10, 0.3) == pytest.approx(3.0)
    assert budget.broken_limits(80.04, 0.2) == [
        "size 80.0 KiB > --max_kib=64",
        "latency 0.200 ms > --max_ms=0.1",
    ]
    assert Budget().fits(10**6, 10**3)  # no limits
    cost = Cost("width=8", 100, 200, "int8", int(64 * 1024 * COMPRESS_REACH["int8"]), 0.05)
    assert budget.reachable(cost)
    assert not budget.reachable(dataclasses.replace(cost, size_bytes=cost.size_bytes + 1024))
    assert not budget.reachable(dataclasses.replace(cost, format="dynamic"))  # words stay


def test_image_sizes_are_the_datas_own_three_quarters_and_half():
    from trainer.auto.data_stage import image_sizes

    assert image_sizes(28) == [14, 20, 28]
    assert image_sizes(16) == [8, 12, 16]
    assert image_sizes(8) == [8]
    assert image_sizes(224) == [32, 48, 64]


def test_trial_epochs_give_small_data_enough_steps():
    from trainer.auto.search_stage import trial_epochs

    assert trial_epochs(60_000, 60) == 2  # 844 steps an epoch
    assert trial_epochs(2_000, 60) == 3  # 57 steps an epoch: 3 for 150 steps
    assert trial_epochs(100, 10) == 8  # 6 steps an epoch: capped at 8
    assert trial_epochs(60_000, 900) == 6  # a minute of search each: a longer budget


def test_final_epochs_from_the_trials_seconds_per_epoch():
    from trainer.auto.finalist_stage import FINISH_SECONDS, MAX_FINAL_EPOCHS, final_epochs

    finalist = {"seconds": 30.0, "epochs": 6}  # 5 s per epoch
    assert final_epochs(finalist, FINISH_SECONDS + 100) == 20
    assert final_epochs(finalist, 0) == 6  # at least the trial's own epochs
    assert final_epochs(finalist, 10**6) == MAX_FINAL_EPOCHS


def _finalist(name: str, val: float, kib: float, ms: float, fits: bool) -> dict:
    entry = {"name": name, "label": name, "path": f"{name}.tflite", "val_accuracy": val,
             "test_accuracy": val, "size_bytes": int(kib * 1024), "latency_ms": ms, "fits": fits}  # fmt: skip
    return {"run_dir": name, "measured": [entry], "chosen": entry, "verified": {}}


def test_the_most_accurate_fitting_file_wins_else_the_closest_is_shown():
    from trainer.auto.report import choose_winner
    from trainer.auto.state import AutoState

    budget = Budget(max_kib=64, max_ms=0.1)
    state = AutoState(
        finalists=[
            _finalist("big", 0.95, 200, 0.05, False),
            _finalist("small", 0.90, 60, 0.05, True),
            _finalist("tiny", 0.85, 20, 0.01, True),
        ]
    )
    winner, closest = choose_winner(state, budget)
    assert winner["run_dir"] == "small" and closest is None
    state.finalists = [
        _finalist("slow", 0.9, 10, 0.5, False),
        _finalist("big", 0.9, 80, 0.05, False),
    ]
    winner, closest = choose_winner(state, budget)
    assert winner is None and closest["name"] == "big"  # 1.25x over, against 5x


def test_options_are_checked_before_any_data_loads():
    check_auto_options(AutoOptions(data="photos"))
    with pytest.raises(ConfigError, match="no data source given"):
        check_auto_options(AutoOptions())
    with pytest.raises(ConfigError, match="min_accuracy is a fraction"):
        check_auto_options(AutoOptions(data="photos", min_accuracy=93))
    with pytest.raises(ConfigError, match="time_budget must be > 0"):
        check_auto_options(AutoOptions(data="photos", time_budget=0))


def test_a_candidate_is_the_recipes_config_with_the_searched_values():
    from trainer.auto import candidate

    config = candidate.Config(data="d", width=12, stages=2, image_size=20, augment="none")
    image = candidate.recipe_config(config, candidate.recipe_for(config))
    assert (image.width, image.stages, image.image_size, image.augment) == (12, 2, 20, "none")
    assert image.learning_rate == 2e-3  # 0 = the recipe's default
    assert candidate.architecture(config) == "width=12, stages=2, image_size=20"
    text = dataclasses.replace(config, kind="text", model="transformer", learning_rate=0.01)
    recipe_config = candidate.recipe_config(text, candidate.recipe_for(text))
    assert (recipe_config.model, recipe_config.learning_rate) == ("transformer", 0.01)
    assert candidate.architecture(dataclasses.replace(text, model="bow")).startswith("model=bow")


def test_help_lists_every_option_and_resume_refuses_other_options(capsys, tmp_path):
    from trainer.cli.main import main

    assert main(["auto", "--help"]) == 0
    text = capsys.readouterr().out
    missing = [
        f"--{f.name}=" for f in dataclasses.fields(AutoOptions) if f"--{f.name}=" not in text
    ]
    assert not missing, text
    assert main(["auto", f"--resume={tmp_path}", "--max_kib=3"]) == 2
    assert "takes only --time_budget, --progress_every" in capsys.readouterr().err


@pytest.mark.slow
def test_workers_run_the_search_trials_in_worker_processes(photos, tmp_path):
    result, printed = _run(
        AutoOptions(
            data=str(photos),
            max_kib=64,
            time_budget=120,  # a search share that outlasts a worker's start (TensorFlow)
            run_dir=str(tmp_path / "workers"),
            workers=1,
            progress_every=0,
        )
    )
    log = tmp_path / "workers" / "search" / "trial_log.jsonl"
    if log.is_file():  # else the share ended before the worker's first trial: the fallback
        assert all(json.loads(line)["worker"] == "worker0" for line in log.read_text().splitlines())
    else:
        assert "the smallest model of the search space is the finalist" in printed
    assert result.met, result.message


def test_a_large_training_set_searches_its_own_size_when_its_smallest_model_fits(
    tmp_path, monkeypatch
):
    from trainer.auto import candidate, search_stage
    from trainer.auto.state import AutoState

    def cost_at(kib: float, ms: float):
        return lambda corner, state: Cost(
            candidate.architecture(corner), 14_000, 10**6, "dynamic", int(kib * 1024), ms
        )

    budget = Budget(max_kib=100, max_ms=0.1)
    large = AutoState(kind="image", image_sizes=[14, 20, 28], channels=1, classes=10,
                      search_examples=8000, finalist_examples=54_000)  # fmt: skip
    fits = cost_at(18, 0.02)(candidate.Config(image_size=28), large)
    assert search_stage.searched_resolutions(large, fits, budget) == [28]
    slow = dataclasses.replace(fits, latency_ms=0.15)  # only compression could bring it in
    assert search_stage.searched_resolutions(large, slow, budget) == [14, 20, 28]
    small = dataclasses.replace(large, search_examples=0)  # trials see all: sizes stay
    assert search_stage.searched_resolutions(small, fits, budget) == [14, 20, 28]

    base = candidate.Config(kind="image", image_size=28, costs=str(tmp_path / "costs.json"))
    large.smallest = {"width": 8, "stages": 3, "image_size": 14}
    monkeypatch.setattr(search_stage, "corner_cost", cost_at(18, 0.02))
    search_stage.keep_own_size(tmp_path, base, large, budget)
    assert large.image_sizes == [28] and large.smallest["image_size"] == 28
    assert "image_size=28" in next(iter(json.loads((tmp_path / "costs.json").read_text())))
    monkeypatch.setattr(search_stage, "corner_cost", cost_at(18, 0.15))
    large.image_sizes = [14, 20, 28]
    search_stage.keep_own_size(tmp_path, base, large, budget)
    assert large.image_sizes == [14, 20, 28]


def test_a_search_for_files_that_fit_as_they_are_refuses_one_compression_could_fit(tmp_path):
    from trainer.auto import candidate
    from trainer.auto.cost import CandidateTooCostly, remember_cost

    config = candidate.Config(data="never-loaded", width=24, stages=3, image_size=28,
                              max_kib=100, max_ms=0.1, costs=str(tmp_path / "costs.json"))  # fmt: skip
    over = Cost(candidate.architecture(config), 99_778, 8_560_000, "dynamic", 105_267, 0.106,
                reach=candidate.REACH["image"])  # fmt: skip
    remember_cost(config.costs, over)
    assert Budget(100, 0.1).reachable(over)  # 1.06x over: pruning could bring it in
    with pytest.raises(CandidateTooCostly, match="latency 0.106 ms > --max_ms=0.1"):
        candidate.build(dataclasses.replace(config, as_is=True))  # before any data loads
