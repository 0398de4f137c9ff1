"""`trainer auto` spending its budget: the cost model keeping the faster quantized file, the
resolutions of a source that keeps its own size, the search's share of a large training set,
the finalists' epochs from the trials' pace, each finalist trained then compressed in turn,
and the budget left retraining the winner for longer. Unit tests on tiny arrays and fake
finalists (no training); the end-to-end runs are tests/test_auto.py's.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from trainer.auto import candidate, data_stage, finalist_stage, search_stage
from trainer.auto.cost import IMAGE_REACH, Budget, Cost, fastest_file, refuse_unreachable
from trainer.auto.state import AutoState, Clock


def test_the_cost_model_keeps_the_faster_file_and_an_image_keeps_its_reach():
    assert fastest_file({"int8": (61_440, 0.12), "dynamic": (59_700, 0.061)}) == "dynamic"
    assert fastest_file({"int8": (61_440, 0.05), "dynamic": (59_700, 0.061)}) == "int8"
    assert fastest_file({"a": (2, 0.1), "b": (1, 0.1)}) == "b"  # a tie: the smaller
    with pytest.raises(ValueError, match="no file was measured"):
        fastest_file({})
    budget = Budget(max_kib=64, max_ms=0.1)
    # An image measured as dynamic range is still within compression's 4x reach...
    image = Cost("width=32", 1, 1, "dynamic", int(64 * 1024 * 3.9), 0.05, reach=IMAGE_REACH)
    assert budget.reachable(image)
    # ...a text file of the same size is not (its word table does not shrink).
    text = dataclasses.replace(image, reach=0.0)
    assert not budget.reachable(text)
    with pytest.raises(ValueError, match="more than the 1x that compression can remove"):
        refuse_unreachable(text, budget)
    assert candidate.SHIPPED_FORMATS["image"] == ("int8", "dynamic")
    assert candidate.REACH == {"image": IMAGE_REACH, "text": 1.0}


def test_an_image_search_tries_flips_and_a_trial_can_read_the_search_share():
    assert "augment=none|crop:2|crop:2,flip|crop:2,erase:0.25" in candidate.image_space([28])
    config = candidate.Config(data="d", image_size=20, resolutions="auto_dir", trial_subset=True)
    recipe_config = candidate.recipe_config(config, candidate.recipe_for(config))
    assert recipe_config.data == str(Path("auto_dir") / "data/search_20.npz")
    finalist = dataclasses.replace(config, trial_subset=False)
    recipe_config = candidate.recipe_config(finalist, candidate.recipe_for(finalist))
    assert recipe_config.data == str(Path("auto_dir") / "data/image_20.npz")


def test_tiny_images_are_also_searched_larger_others_at_their_size_and_below():
    assert data_stage.searched_sizes(8) == [8, 16, 32]  # digits: the recipe's default is 32
    assert data_stage.searched_sizes(16) == data_stage.image_sizes(16) == [8, 12, 16]
    assert data_stage.searched_sizes(28) == [14, 20, 28]


def test_resize_images_keeps_the_type_and_the_layout():
    images = np.zeros((5, 28, 28, 1), np.uint8)
    images[:, :14] = 255
    resized = data_stage.resize_images(images, 14)
    assert resized.shape == (5, 14, 14, 1) and resized.dtype == np.uint8
    assert resized[0, 0, 0, 0] == 255 and resized[0, -1, 0, 0] == 0
    assert data_stage.resize_images(images[..., 0], 20).shape == (5, 20, 20)  # no channel axis
    assert data_stage.resize_images(images, 28) is images  # already that size


def _npz_source(path: Path, train: int, test: int) -> Path:
    from datagen import bar_images

    x_train, y_train = bar_images(train, seed=1)
    x_test, y_test = bar_images(test, seed=2)
    np.savez(path, x_train=x_train[..., None], y_train=y_train, x_test=x_test[..., None],
             y_test=y_test)  # fmt: skip
    return path


def test_resolutions_of_a_source_that_keeps_its_size_are_resized(tmp_path):
    from trainer.auto.options import AutoOptions
    from trainer.data.sources import SourceOptions, load_source

    source = _npz_source(tmp_path / "source.npz", 60, 20)
    data = load_source(str(source), SourceOptions(image_size=14))
    assert data.x_train.shape[1:3] == (28, 28)  # the .npz loader keeps its own size
    (tmp_path / "auto" / "data").mkdir(parents=True)
    data_stage.save_resolutions(tmp_path / "auto", AutoOptions(data=str(source)), data, [14, 28])
    for size in (14, 28):
        saved = np.load(tmp_path / "auto" / candidate.resolution_file(size))
        assert saved["x_train"].shape == (60, size, size, 1)
        assert saved["x_test"].shape == (20, size, size, 1)
        assert (saved["y_train"] == data.y_train).all()


def test_a_large_training_set_is_searched_on_a_share_validated_like_the_finalists(
    tmp_path, monkeypatch
):
    from trainer.auto.options import AutoOptions
    from trainer.data.prepare import Cleaning, prepare_data
    from trainer.data.sources import SourceOptions

    directory = tmp_path / "auto"
    (directory / "data").mkdir(parents=True)
    source = _npz_source(directory / candidate.resolution_file(28), 400, 50)
    options = AutoOptions(data=str(source))
    state = AutoState(kind="image", image_sizes=[28], train_examples=400)
    monkeypatch.setattr(data_stage, "SEARCH_EXAMPLES", 500)  # 360 after validation: not large
    data_stage.save_search_subsets(directory, options, state)
    assert state.search_examples == 0 and finalist_stage.epoch_scale(state) == 1.0
    assert not (directory / candidate.resolution_file(28, trial_subset=True)).exists()
    assert search_stage.search_share(state) == search_stage.SEARCH_SHARE

    monkeypatch.setattr(data_stage, "SEARCH_EXAMPLES", 90)
    data_stage.save_search_subsets(directory, options, state)
    subset = np.load(directory / candidate.resolution_file(28, trial_subset=True))
    finalist, _ = prepare_data(str(source), SourceOptions(), None, Cleaning(), 0.1)
    assert state.finalist_examples == len(finalist.y_train) == 360
    assert state.search_examples == len(subset["y_train"]) == 90
    assert np.bincount(subset["y_train"]).tolist() == [9] * 10  # stratified
    assert (subset["x_val"] == finalist.x_val).all()  # the finalists' own validation split
    assert finalist_stage.epoch_scale(state) == 4.0
    assert search_stage.search_share(state) == search_stage.SEARCH_SHARE_LARGE


def test_a_finalists_epochs_come_from_its_trials_pace_scaled_and_corrected():
    state = AutoState(finalist_examples=54_000, search_examples=8_000)
    trial = {"seconds": 80.0, "epochs": 8}  # 10 s a trial epoch: 67.5 s a finalist epoch
    # 2,000 s less 20 s of overhead buy 29 epochs; at least the 2 epochs that see as many
    # images as the trial's 8.
    assert finalist_stage.plan_training(state, dict(trial), 2000.0) == 29
    assert finalist_stage.plan_training(state, dict(trial), 10.0) == 2
    # A finalist that took twice its predicted time per epoch halves the next one's epochs.
    state.finalists = [
        {"predicted_per_epoch": 50.0, "per_epoch_seconds": 100.0, "overhead_seconds": 60.0}
    ]
    assert finalist_stage.finalist_pace(state) == (2.0, 60.0)
    assert finalist_stage.plan_training(state, dict(trial), 2000.0) == 14
    # Small data (no share): the trial's epochs are the finalist's, at least as many.
    assert finalist_stage.plan_training(AutoState(), dict(trial), 0.0) == 8
    # An epoch timed on the finalist's own data replaces the trial's scaled pace.
    timed = dict(trial)
    assert finalist_stage.plan_training(AutoState(), timed, 2000.0, measured=24.5) == 40
    assert timed["predicted_per_epoch"] == 24.5


def test_an_epoch_is_timed_on_the_finalists_own_data_and_model(tmp_path):
    import time

    from trainer.auto.finalists import epoch_seconds

    source = _npz_source(tmp_path / "source.npz", 100, 10)
    config = candidate.Config(data=str(source), image_size=28, width=4, stages=2, epochs=1)
    cpu = time.process_time()
    seconds = epoch_seconds(candidate, config, steps=1)  # 6 steps an epoch, 10 validation images
    print(f"epoch_seconds: {time.process_time() - cpu:.1f} s of CPU")
    assert 0.0 < seconds < 60.0


def test_a_finalist_that_must_be_compressed_keeps_a_third_of_its_part():
    state = AutoState()
    assert finalist_stage.compress_reserve(state, {"fits_as_is": True}, 900) == 60.0
    assert finalist_stage.compress_reserve(state, {"fits_as_is": False}, 900) == 300.0
    assert finalist_stage.compress_reserve(state, {"fits_as_is": False}, 90) == 60.0
    state.finalists = [{"compress_seconds": 95.0, "chosen": {"name": "ptq_int8"}}]
    assert finalist_stage.compress_reserve(state, {"fits_as_is": True}, 900) == 95.0


def _trained_winner(trial: str, fits: bool = True, epochs: int = 8) -> dict:
    return {"trial": trial, "values": {"width": 16}, "run_dir": f"c/1-trial{trial}",
            "final_epochs": epochs, "per_epoch_seconds": 20.0, "overhead_seconds": 30.0,
            "compress_seconds": 50.0, "verified": {},
            "chosen": {"fits": fits, "val_accuracy": 0.9, "size_bytes": 1000}}  # fmt: skip


def test_the_budget_left_retrains_the_winner_only_for_enough_more_epochs():
    budget = Budget(max_kib=64)
    state = AutoState(finalists=[_trained_winner("0001")])
    longer = finalist_stage.plan_longer_run(state, budget, Clock(1000, 0))
    assert longer["planned_epochs"] == finalist_stage.MAX_FINAL_EPOCHS  # 920 s / 20 s: capped
    assert longer["longer_of"] == "c/1-trial0001" and longer["values"] == {"width": 16}
    assert "final_epochs" not in longer and "verified" not in longer
    assert finalist_stage.plan_longer_run(state, budget, Clock(300, 0)) is None  # 11 < 1.5 x 8
    state.finalists = [_trained_winner("0001", fits=False)]
    assert finalist_stage.plan_longer_run(state, budget, Clock(1000, 0)) is None  # nothing fits


def test_each_finalist_is_trained_then_compressed_then_the_winner_once_longer(
    tmp_path, monkeypatch
):
    from trainer.auto.options import AutoOptions
    from trainer.auto.state import Progress

    calls = []

    def train(directory, options, state, clock, finalist):
        calls.append(("train", finalist["run_dir"]))
        finalist.update(final_epochs=finalist.get("planned_epochs", 4), test_accuracy=0.9)
        finalist.update(per_epoch_seconds=1.0, overhead_seconds=1.0)

    def compress(directory, options, state, clock, finalist):
        calls.append(("compress", finalist["run_dir"]))
        entry = {"fits": True, "val_accuracy": 0.9, "size_bytes": 10, "name": "ptq_int8"}
        finalist.update(chosen=entry, measured=[entry], verified={}, compress_seconds=1.0)

    monkeypatch.setattr(finalist_stage, "train_one", train)
    monkeypatch.setattr(finalist_stage, "compress_one", compress)
    state = AutoState(finalists=[
        {"trial": "1", "values": {}, "run_dir": "c/1-trial1"},
        {"trial": "2", "values": {}, "run_dir": "c/2-trial2"},
    ])  # fmt: skip
    clock = Clock(1000, 0)
    progress = Progress(tmp_path, clock, 0)
    finalist_stage.finish_finalists(tmp_path, AutoOptions(data="d"), state, clock, progress)
    assert calls == [
        ("train", "c/1-trial1"),
        ("compress", "c/1-trial1"),
        ("train", "c/2-trial2"),
        ("compress", "c/2-trial2"),
        ("train", "c/3-trial1-longer"),
        ("compress", "c/3-trial1-longer"),
    ]
    assert (
        state.extended and state.finalists[-1]["planned_epochs"] == finalist_stage.MAX_FINAL_EPOCHS
    )
    # Resumed after it ended: nothing runs again.
    calls.clear()
    finalist_stage.finish_finalists(tmp_path, AutoOptions(data="d"), state, clock, progress)
    assert calls == []


# -- bench/auto.py: the table from the recorded runs ---------------------------------------


def test_bench_budgets_parse_and_refuse_what_is_not_kib_and_ms():
    from bench.auto import parse_budgets

    assert parse_budgets("64:0.1, 256:0.5") == [(64.0, 0.1), (256.0, 0.5)]
    for wrong in ("64", "64:x", "0:0.1", "64:0.1,"):
        with pytest.raises(ValueError, match="each budget is KIB:MS"):
            parse_budgets(wrong)


def _file(val: float, test: float, kib: float, ms: float) -> dict:
    return {"label": "f", "architecture": "a", "epochs": 3, "val_accuracy": val,
            "test_accuracy": test, "size_bytes": int(kib * 1024), "latency_ms": ms}  # fmt: skip


def test_bench_rows_compare_auto_with_the_best_baseline_file_within_the_same_budget(tmp_path):
    from bench.auto import COLUMNS, best_within, record_run, table_rows

    baseline = {
        "side": "baseline",
        "set": "digits",
        "files": [_file(0.97, 0.96, 200, 0.05), _file(0.95, 0.94, 50, 0.05)],
        "wall_seconds": 100.0,
        "cpu_seconds": 80.0,
    }
    assert best_within(baseline["files"], (64, 0.1))["test_accuracy"] == 0.94
    assert best_within(baseline["files"], (256, 0.1))["test_accuracy"] == 0.96
    assert best_within(baseline["files"], (10, 0.1)) is None

    def auto(budget, file):
        return {"side": "auto", "set": "digits", "budget": budget, "time_budget": 300.0,
                "file": file, "wall_seconds": 310.0, "cpu_seconds": 250.0, "load": [3.0, 4.5]}  # fmt: skip

    path = tmp_path / "runs.json"
    record_run(auto([64.0, 0.1], _file(0.9, 0.9, 60, 0.05)), path)
    record_run(baseline, path)
    record_run(auto([10.0, 0.1], _file(0.9, 0.9, 9, 0.05)), path)
    runs = record_run(auto([64.0, 0.1], _file(0.96, 0.955, 60, 0.05)), path)  # replaces
    assert len(runs) == 3
    rows = table_rows(runs)
    assert all(len(row) == len(COLUMNS) for row in rows)
    assert [row[1] for row in rows] == ["10 KiB, 0.1 ms", "64 KiB, 0.1 ms"]
    assert rows[0][2] == "90.00%" and rows[0][6] == "none fits" and rows[0][10] == "only auto fits"
    assert rows[1][2] == "95.50%" and rows[1][6] == "94.00%" and rows[1][10] == "+1.50 pp"
    assert rows[1][9] == "100 s (80 s)" and rows[1][11] == "3.0-4.5"


def test_text_kinds_whose_smallest_file_cannot_fit_are_left_out_of_the_search(
    tmp_path, monkeypatch
):
    sizes = {"cnn": 100, "linear": 320, "bow": 1800}  # KiB, as measured on man pages

    def cost(corner, state):
        kib = sizes[corner.model]
        return Cost(candidate.architecture(corner), 1, 1, "dynamic", kib * 1024, 0.01, 1.0)

    monkeypatch.setattr(search_stage, "corner_cost", cost)
    state = AutoState(kind="text")
    base = candidate.Config(data="d", kind="text", costs=str(tmp_path / "costs.json"))
    search_stage.check_reachable(tmp_path, base, state, Budget(max_kib=256))
    assert not state.cannot_meet and state.left_out == ["linear", "bow"]
    assert "model=cnn,transformer;" in search_stage.space(state)
    state = AutoState(kind="text")
    search_stage.check_reachable(tmp_path, base, state, Budget(max_kib=512))
    assert state.left_out == ["bow"] and "model=linear,cnn,transformer;" in search_stage.space(
        state
    )
    assert "model=linear,bow,cnn,transformer;" in search_stage.space(AutoState(kind="text"))


# -- the recipe's default model and the smallest as finalists ------------------------------


def _default_cost(kib: float, ms: float):
    def measure(config, state):
        return Cost(candidate.architecture(config), 94_000, 10**7, "dynamic", int(kib * 1024),
                    ms, reach=IMAGE_REACH)  # fmt: skip

    return measure


def test_the_recipes_default_model_is_a_finalist_when_its_cost_fits_and_not_when_it_cannot(
    tmp_path, monkeypatch, capsys
):
    from trainer.auto.options import AutoOptions

    # digits: 8x8 images, searched at 8, 16 and 32; image_classifier's default is a width-32,
    # 3-stage CNN at 32x32 trained 15 epochs (72 KiB and about 0.3 ms once quantized)
    monkeypatch.setattr(search_stage, "corner_cost", _default_cost(72, 0.3))
    state = AutoState(kind="image", image_sizes=[8, 16, 32], channels=1, classes=10,
                      trial_epochs=3, finalists=[{"trial": "0002", "run_dir": "c/1-trial0002"}])  # fmt: skip
    options = AutoOptions(data="digits", max_kib=256, max_ms=0.5)
    search_stage.add_recipe_default(tmp_path, options, state, Clock(300, 0))
    default = state.finalists[-1]
    assert default["trial"] == "default" and default["recipe_default"] and default["fits_as_is"]
    assert default["run_dir"] == str(tmp_path / "candidates" / "2-recipe-default")
    assert (
        default["epochs"] == 15 and default["architecture"] == "width=32, stages=3, image_size=32"
    )
    config = search_stage.candidate_config(search_stage.base_config(tmp_path, options, state),
                                           default["values"])  # fmt: skip
    assert (config.width, config.stages, config.image_size, config.augment) == (32, 3, 32, "crop:2")
    assert config.resolutions == str(tmp_path) and config.learning_rate == 0.0  # the recipe's
    assert state.recipe_default["added"] and "is a finalist too: 2-recipe-default" in (
        capsys.readouterr().out
    )
    assert default["architecture"] in (tmp_path / "costs.json").read_text()  # measured once

    def refused(max_kib: float, as_is: bool = False) -> str:
        later = AutoState(kind="image", image_sizes=[8, 16, 32], channels=1, classes=10,
                          as_is=as_is)  # fmt: skip
        budget = AutoOptions(data="digits", max_kib=max_kib, max_ms=0.5)
        search_stage.add_recipe_default(tmp_path, budget, later, Clock(300, 0))
        assert not later.finalists and not later.recipe_default["added"]
        return later.recipe_default["reason"]

    # 4.5x over: more than pruning half the filters can remove
    assert refused(16).startswith("size 72.0 KiB > --max_kib=16, more than the 4x")
    # a search for files that fit as they are (a large training set) holds it to that
    assert refused(64, as_is=True).endswith("this search keeps files that fit as they are")
    assert "is not a finalist: size 72.0 KiB > --max_kib=64" in capsys.readouterr().out

    # 50 s left once the search ends: less than a run's overhead and quantization (80 s); not
    # measured, said
    monkeypatch.setattr(search_stage, "corner_cost", None)  # would raise if called
    spent = AutoState(kind="image", image_sizes=[14, 20, 28], channels=1, classes=10)
    search_stage.add_recipe_default(tmp_path / "spent", options, spent, Clock(300, 250))
    assert spent.recipe_default["reason"].startswith("50 s of the time budget are left, less")
    assert not spent.finalists


def test_the_recipes_default_reads_an_image_size_the_search_does_not_write_from_the_source():
    base = candidate.Config(data="photos", kind="image", resolutions="auto-dir")
    values, epochs = search_stage.recipe_default(
        base, AutoState(kind="image", image_sizes=[14, 20, 28])
    )
    assert values["image_size"] == 32 and values["resolutions"] == "" and epochs == 15
    text = dataclasses.replace(base, kind="text")
    values, epochs = search_stage.recipe_default(text, AutoState(kind="text"))
    # text_classifier's default: the linear model on 10,000 words and 400 tokens per text
    assert (values["model"], values["vocab_size"], values["sequence_length"]) == (
        "linear",
        10000,
        400,
    )
    assert candidate.architecture(dataclasses.replace(text, **values)).startswith("model=linear")


def test_the_recipes_default_trains_its_default_epochs_or_says_the_budget_buys_fewer(
    monkeypatch, capsys
):
    monkeypatch.setattr(finalist_stage, "epoch_seconds", lambda module, config: 2.0)
    default = {"trial": "default", "values": {"width": 32}, "epochs": 15, "seconds": None,
               "run_dir": "c/3-recipe-default", "fits_as_is": True, "recipe_default": True}  # fmt: skip
    state = AutoState(finalists=[dict(default)])
    # 1,000 s less 60 s for its quantization and 20 s outside the epochs buy 460: its 15
    assert finalist_stage._planned_epochs(state, Clock(1000, 0), state.finalists[0], None) == 15
    assert "short_of_default" not in state.finalists[0]
    state = AutoState(finalists=[dict(default)])
    # 101 s: 21 s for epochs after 60 s and 20 s
    assert finalist_stage._planned_epochs(state, Clock(101, 0), state.finalists[0], None) == 10
    assert "the budget left buys 10 of its 15 default epochs" in capsys.readouterr().out
    from trainer.auto.report import recipe_default_note

    state.recipe_default = {"architecture": "width=32, stages=3, image_size=32", "epochs": 15,
                            "added": True}  # fmt: skip
    assert recipe_default_note(state).endswith(
        "is a finalist, 3-recipe-default: the budget left buys 10 of its 15 default epochs."
    )


def test_when_no_finalists_file_fits_the_smallest_architecture_is_trained_as_one_more(
    tmp_path, monkeypatch, capsys
):
    """man pages at 256 KiB: the searched finalist's trained file came out at 317 KiB (its
    untrained cost said 248), and auto ended with none where 64 KiB, whose search fell back
    to the smallest model, ended with a file."""
    from trainer.auto.options import AutoOptions
    from trainer.auto.report import choose_winner
    from trainer.auto.state import Progress

    calls = []

    def train(directory, options, state, clock, finalist):
        calls.append(("train", Path(finalist["run_dir"]).name))
        finalist.update(final_epochs=3, test_accuracy=0.75)

    def compress(directory, options, state, clock, finalist):
        calls.append(("compress", Path(finalist["run_dir"]).name))
        kib = 54 if finalist["trial"] == "smallest" else 317
        entry = {"fits": kib <= 256, "val_accuracy": 0.9, "size_bytes": kib * 1024,
                 "latency_ms": 0.02, "name": "ptq-dynamic"}  # fmt: skip
        finalist.update(chosen=entry, measured=[entry], verified={}, compress_seconds=1.0)

    monkeypatch.setattr(finalist_stage, "train_one", train)
    monkeypatch.setattr(finalist_stage, "compress_one", compress)
    smallest = {"model": "cnn", "embedding_dim": 16, "width": 16, "vocab_size": 1000,
                "sequence_length": 64, "image_size": 0, "stages": 3}  # fmt: skip
    state = AutoState(kind="text", trial_epochs=3, smallest=smallest, finalists=[
        {"trial": "0000", "values": {"model": "linear"}, "run_dir": "c/1-trial0000"}])  # fmt: skip
    clock = Clock(300, 0)
    options = AutoOptions(data="man-pages", max_kib=256, max_ms=0.5)
    finalist_stage.finish_finalists(tmp_path, options, state, clock, Progress(tmp_path, clock, 0))
    assert calls[:4] == [("train", "1-trial0000"), ("compress", "1-trial0000"),
                         ("train", "2-trialsmallest"), ("compress", "2-trialsmallest")]  # fmt: skip
    assert "no finalist's file fits the budget: the smallest model" in capsys.readouterr().out
    winner, _ = choose_winner(state, Budget(256, 0.5))
    assert winner["trial"] == "smallest"
    assert winner["values"] == {"model": "cnn", "embedding_dim": 16, "width": 16,
                                "vocab_size": 1000, "sequence_length": 64}  # fmt: skip
    # Tried once: when the smallest does not fit either, the run ends with the closest file.
    calls.clear()
    state.finalists = [f for f in state.finalists if f["trial"] != "0000"]
    state.finalists[0]["chosen"] = dict(state.finalists[0]["chosen"], fits=False)
    state.extended = True
    finalist_stage.finish_finalists(tmp_path, options, state, clock, Progress(tmp_path, clock, 0))
    assert calls == []
    # Not when not even the smallest can fit (the run stopped before the search).
    state = AutoState(kind="text", smallest=smallest, cannot_meet="size", finalists=[])
    assert finalist_stage.plan_fallback(tmp_path, options, state, clock) is None
    # Nor when the time budget is spent: it is kept, and the closest file reported.
    capsys.readouterr()
    state = AutoState(kind="text", trial_epochs=3, smallest=smallest, finalists=[
        {"trial": "0000", "values": {"model": "linear"}, "run_dir": "c/1-trial0000"}])  # fmt: skip
    spent = Clock(300, 290)  # 10 s left: less than a run takes besides its epochs
    finalist_stage.finish_finalists(tmp_path, options, state, spent, Progress(tmp_path, spent, 0))
    assert calls == [("train", "1-trial0000"), ("compress", "1-trial0000")]
    said = capsys.readouterr().out
    assert said.count("the smallest model of the search space is not trained") == 1
    assert choose_winner(state, Budget(256, 0.5))[0] is None


def test_a_linear_finalist_fitted_on_validation_is_compared_by_its_held_out_accuracy(tmp_path):
    # A linear text run is fitted again on train + validation: its files score near 100% on
    # those texts. Auto compares it by the accuracy its C was chosen on, keeping each file's
    # drop from the float model; a Keras run (or a fit without refit) is left as it is.
    from trainer.auto.finalists import validation_shift
    from trainer.logistic_regression import RegularizationStep, _write_history

    grid = [RegularizationStep(c, 0.4, 0.9, 0.7, acc, 1.0) for c, acc in ((1, 0.74), (10, 0.78))]
    refit = RegularizationStep(10, 0.1, 0.99, 0.7, 0.78, 1.0)
    _write_history(tmp_path, [*grid, refit])
    assert validation_shift(tmp_path, 0.995) == pytest.approx(0.78 - 0.995)
    _write_history(tmp_path, grid)  # no refit: validation was held out
    assert validation_shift(tmp_path, 0.78) == 0.0
    (tmp_path / "history.csv").write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy\n0,1,0.5,1,0.6\n"
    )
    assert validation_shift(tmp_path, 0.6) == 0.0


def test_a_large_image_set_trains_the_most_accurate_trial_again_with_flips_toggled(
    capsys, monkeypatch
):
    """All of Fashion-MNIST: trials of a few epochs on 8,000 images kept no augmentation, which
    trailed flips after 40 epochs on all 54,000; the second run is added once, when the most
    accurate trial is about to train and both runs still buy enough epochs at its epoch timed
    on all the data (20.5 s there), and only for images on the large path."""
    from trainer.auto.finalist_stage import FLIP_VARIANT_EPOCHS, add_flip_variant, toggle_flip

    def state(**fields) -> AutoState:
        trial = {"trial": "0002", "values": {"width": 16, "augment": "none"}, "seconds": 33.0,
                 "epochs": 8, "run_dir": "c/1-trial0002", "fits_as_is": True}  # fmt: skip
        large = dict(kind="image", finalist_examples=54_000, search_examples=8000)
        return AutoState(**{**large, **fields}, finalists=[trial])

    large = state()
    add_flip_variant(large, Clock(1800, 367), large.finalists[0], 20.5)  # 31 epochs each
    assert [f["run_dir"] for f in large.finalists] == ["c/1-trial0002", "c/2-trial0002-flip"]
    assert large.finalists[1]["values"] == {"width": 16, "augment": "flip"}
    assert large.finalists[0]["values"]["augment"] == "none"  # the searched run is kept as is
    assert large.finalists[1]["flip_variant_of"] == "c/1-trial0002"
    add_flip_variant(large, Clock(1800, 367), large.finalists[0], 20.5)  # resumed: not twice
    add_flip_variant(large, Clock(1800, 367), large.finalists[1], 20.5)  # nor for the variant
    assert len(large.finalists) == 2
    short = state()
    add_flip_variant(short, Clock(900, 180), short.finalists[0], 20.5)  # 14 epochs each
    assert len(short.finalists) == 1
    assert f"would buy 14 epochs each, fewer than {FLIP_VARIANT_EPOCHS}" in capsys.readouterr().out
    for other in (state(search_examples=0, finalist_examples=0), state(kind="text")):
        add_flip_variant(other, Clock(1800, 367), other.finalists[0], 20.5)
        assert len(other.finalists) == 1
    flipped = state()
    flipped.finalists[0]["values"]["augment"] = "crop:2,flip"
    add_flip_variant(flipped, Clock(1800, 367), flipped.finalists[0], 20.5)
    assert flipped.finalists[1]["values"]["augment"] == "crop:2"
    assert flipped.finalists[1]["run_dir"] == "c/2-trial0002-noflip"
    assert toggle_flip("crop:2,erase:0.25") == "crop:2,flip,erase:0.25"
    # The first finalist's planning adds it, then takes its half of the budget left: 31 epochs
    # at the 20.5 s its epoch took on all 54,000 images, as the Fashion-MNIST run trained.
    monkeypatch.setattr(finalist_stage, "epoch_seconds", lambda recipe, config: 20.5)
    planned = state()
    epochs = finalist_stage._planned_epochs(planned, Clock(1800, 367), planned.finalists[0], None)
    assert [f["run_dir"] for f in planned.finalists][1] == "c/2-trial0002-flip"
    assert epochs == 31
