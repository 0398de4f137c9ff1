"""Hyperparameter search (trainer.tuning, `trainer tune`): spaces, the four keras-tuner tuners on
our tf_keras models through the CLI, results, failing trials, budgets, kill -9 and resume, and
a chief with two workers. Tiny data: scikit-learn's digits and a generated image folder."""

import csv
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from datagen import write_image_folder
from trainer.cli.main import main as trainer_main
from trainer.config import ConfigError, fraction

pytestmark = pytest.mark.usefixtures("frozen_gc")  # keras-tuner collects before every trial

# A user's own recipe file: `mode` picks a healthy trial, an exception in build, a NaN loss,
# or a model without a held-out validation set. Each trial takes well under a second (eager
# steps, no tracing). Every build seeds its weights, so a trial's score depends neither on the
# tests that ran before nor on their order (unseeded, the "ok" trial scored 0.275 to 0.95
# after its 8 steps). With `gate=FOLDER` every trial but the first stops at its first batch
# until FOLDER/release exists: a test interrupts a search while work is left, whatever the
# load, never after a sleep.
FLAKY_RECIPE = """
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from trainer import keras
from trainer.experiment import Experiment


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 2  # passes
    mode: str = "ok"  # ok, broken, nan or no_validation
    units: int = 8  # hidden units
    sleep: float = 0.0  # seconds to sleep per batch (makes a trial outlast a time budget)
    gate: str = ""  # a folder: trials after the first wait at their first batch for gate/release


class Sleep(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        import time

        time.sleep(self.seconds)


# Writes gate/heldN (the id of the process holding it) at the first batch of build N, then
# waits for gate/release.
class Gate(keras.callbacks.Callback):
    def __init__(self, folder, number):
        super().__init__()
        self.folder, self.number = folder, number

    def on_train_batch_end(self, batch, logs=None):
        import os
        import time

        if batch == 0 and not (self.folder / "release").exists():
            pid = self.folder / f"pid{self.number}"
            pid.write_text(str(os.getpid()))
            pid.replace(self.folder / f"held{self.number}")  # whole, or not there yet
            while not (self.folder / "release").exists():
                time.sleep(0.05)


# 0, 1, 2... for the builds in every process of a search: each creates the next file.
def build_number(folder):
    folder.mkdir(parents=True, exist_ok=True)
    number = 0
    while True:
        try:
            (folder / f"build{number}").touch(exist_ok=False)
            return number
        except FileExistsError:
            number += 1


def build(config):
    if config.mode == "broken":
        raise ValueError("this combination is impossible")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(config.units, "relu"),
                              keras.layers.Dense(2)])
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    if config.mode == "nan":
        loss = lambda labels, logits: tf.reduce_mean(logits) * float("nan")  # noqa: E731
    # Eagerly: a trial's few steps cost less than tracing the model's functions.
    model.compile(keras.optimizers.Adam(0.01), loss, metrics=["accuracy"], run_eagerly=True)
    if config.sleep:
        model.fit = _with_callback(model.fit, Sleep(config.sleep))
    if config.gate:
        number = build_number(Path(config.gate))
        if number > 0:
            model.fit = _with_callback(model.fit, Gate(Path(config.gate), number))
    train = tf.data.Dataset.from_tensor_slices((x[:200], tf.one_hot(y[:200], 2))).batch(50)
    has_validation = config.mode != "no_validation"
    # A test set no model can take (3 features, NaN): a search that touched it would fail.
    return Experiment(model=model, train=train, x_test=np.full((4, 3), np.nan), y_test=y[:4],
                      class_names=["neg", "pos"], representative=x[:10],
                      x_val=x[200:] if has_validation else None,
                      y_val=y[200:] if has_validation else None, epochs=config.epochs)


def _with_callback(fit, callback):
    def fit_with_callback(*args, callbacks=(), **kwargs):
        return fit(*args, callbacks=[*callbacks, callback], **kwargs)

    return fit_with_callback


def main(config):
    raise NotImplementedError("not needed by these tests")
"""


@pytest.fixture
def flaky_recipe(tmp_path: Path) -> Path:
    path = tmp_path / "flaky_recipe.py"
    path.write_text(FLAKY_RECIPE, encoding="utf-8")
    return path


def _rows(tune_dir: Path) -> list[dict]:
    with open(tune_dir / "trials.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _tune(
    recipe: str, tuner: str, tune_dir: Path, *options: str, max_epochs: int = 2
) -> list[dict]:
    """`trainer tune RECIPE --tuner=TUNER` with 2 trials of at most `max_epochs` epochs, in this
    process; returns the trials table once every trial has completed."""
    arguments = ["tune", recipe, f"--tuner={tuner}", "--max_trials=2", f"--max_epochs={max_epochs}"]
    assert trainer_main([*arguments, f"--tune_dir={tune_dir}", *options]) == 0
    rows = _rows(tune_dir)
    assert len(rows) >= 2 and all(row["status"] == "COMPLETED" for row in rows)
    return rows


def _log(tune_dir: Path) -> list[dict]:
    lines = (tune_dir / "trial_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# --- search spaces (no TensorFlow work) ------------------------------------------------------


@dataclasses.dataclass
class SpaceConfig:
    run_dir: str = ""  # output
    epochs: int = 3  # passes
    learning_rate: float = 1e-3  # rate
    width: int = 16  # filters
    dropout: float = fraction(0.3)  # dropout
    augment: str = "crop:2,flip"  # augmentation
    optimizer: str = "adamw"  # optimizer


def test_parse_space_reads_ranges_logs_steps_and_choices():
    from trainer.tuning import parse_space

    space = parse_space(
        "learning_rate=log:1e-4:1e-2; width=16,32,64\n dropout=0.1:0.5:0.1; "
        "augment=none|crop:2,flip|crop:4,flip,erase:0.25",
        SpaceConfig(),
    )
    by_name = {dimension.name: dimension for dimension in space}
    assert by_name["learning_rate"].log and by_name["learning_rate"].low == 1e-4
    assert by_name["width"].choices == (16, 32, 64)  # ints, the field's type
    assert by_name["dropout"].step == pytest.approx(0.1) and not by_name["dropout"].integer
    assert by_name["augment"].choices == ("none", "crop:2,flip", "crop:4,flip,erase:0.25")
    assert [dimension.text() for dimension in space][1] == "width=16,32,64"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("depth=1,2", "unknown field 'depth'"),
        ("dropout=0.2:1.5", "dropout must be in [0, 1]"),
        ("learning_rate=log:0:1e-2", "needs LOW > 0"),
        ("learning_rate=1e-2:1e-4", "LOW must be below HIGH"),
        ("width=16,abc", "width expects int, received 'abc'"),
        ("epochs=2,4", "--max_epochs"),
        ("width=16,32; width=8", "appears twice"),
        ("width", "has no values"),
    ],
)
def test_parse_space_refuses_bad_entries_quoting_them(text, message):
    from trainer.tuning import parse_space

    with pytest.raises(ConfigError, match=None) as error:
        parse_space(text, SpaceConfig())
    assert message in str(error.value)


def test_generic_space_covers_the_issue_fields_and_every_value_is_valid():
    import recipes.digits as digits
    import recipes.fashion_mnist as fashion_mnist
    from trainer.tuning import default_space, generic_space, parse_space

    names = {
        d.name for d in parse_space(generic_space(fashion_mnist.Config()), fashion_mnist.Config())
    }
    assert {
        "learning_rate",
        "schedule",
        "optimizer",
        "weight_decay",
        "dropout",
        "augment",
        "batch_size",
        "width",
        "head_units",
        "label_smoothing",
    } <= names
    # digits declares no SEARCH_SPACE: the generic default from the fields it has
    assert default_space(digits, digits.Config()) == (
        "batch_size=16,32,64; learning_rate=log:0.0003:0.009; width=8,16,32"
    )
    assert default_space(fashion_mnist, fashion_mnist.Config()) == fashion_mnist.SEARCH_SPACE


# --- keras-tuner on tf_keras -----------------------------------------------------------------


def test_keras_tuner_is_imported_for_tf_keras_and_keras_is_restored():
    import tf_keras

    before = sys.modules.get("keras")
    from trainer.tuning import keras_tuner

    kt = keras_tuner()
    from keras_tuner.src.backend import config, keras

    assert not config.multi_backend()
    assert keras.Model is tf_keras.Model  # the tuner's isinstance check accepts our models
    assert sys.modules.get("keras") is before
    assert kt.RandomSearch and kt.GridSearch and kt.BayesianOptimization and kt.Hyperband


def test_recipe_hypermodel_works_with_keras_tuners_own_api(flaky_recipe, tmp_path):
    from trainer.recipe_loader import load_recipe
    from trainer.tuning import keras_tuner, recipe_hypermodel

    recipe = load_recipe(str(flaky_recipe))
    hypermodel = recipe_hypermodel(recipe, recipe.Config(), "units=4,8", max_epochs=1)
    tuner = keras_tuner().GridSearch(
        hypermodel, objective="val_accuracy", directory=str(tmp_path), project_name="grid"
    )
    tuner.search(verbose=0)
    trials = tuner.oracle.trials.values()
    assert sorted(trial.hyperparameters.values["units"] for trial in trials) == [4, 8]
    assert all(0.0 < trial.score <= 1.0 for trial in trials)


# --- the command, all four tuners ------------------------------------------------------------


def _digits_search(tuner: str, tune_dir: Path) -> str:
    """`trainer tune digits --tuner=TUNER` over a learning rate and two widths, with a fixed
    batch size, into `tune_dir`; returns what it printed."""
    import contextlib
    import io

    search = "--search=learning_rate=log:3e-3:3e-2; width=4,8"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _tune("digits", tuner, tune_dir, search, "--batch_size=64")
    return printed.getvalue()


@pytest.fixture(scope="module")
def digits_grid(tmp_path_factory) -> Path:
    """The tuning folder of one grid search of digits from the command line (2 trials of 2
    epochs), shared by the tests that read it."""
    tune_dir = tmp_path_factory.mktemp("digits") / "tune"
    (tune_dir.parent / "printed.txt").write_text(_digits_search("grid", tune_dir))
    return tune_dir


def _check_digits_search(tuner: str, tune_dir: Path, printed: str) -> None:
    rows = _rows(tune_dir)
    assert len(rows) == 2
    objectives = [float(row["val_accuracy"]) for row in rows]
    assert objectives == sorted(objectives, reverse=True)  # best first
    assert all(row["width"] in ("4", "8") and 1 <= int(row["epochs"]) <= 2 for row in rows)
    if tuner == "grid":
        assert {row["width"] for row in rows} == {"4", "8"}
    best = yaml.safe_load((tune_dir / "best.yaml").read_text())
    assert best["batch_size"] == 64  # the fixed option
    assert best["width"] == int(rows[0]["width"])
    assert best["learning_rate"] == pytest.approx(float(rows[0]["learning_rate"]))
    for name in ("trials.md", "report.md", "objective_vs_trial.png", "objective_vs_parameters.png"):
        assert (tune_dir / name).stat().st_size > 0
    assert "best: trial" in printed


def test_the_cli_search_of_digits_writes_sorted_trials_best_yaml_and_plots(digits_grid):
    """The grid tuner, which tries both widths; the same search with each other tuner runs
    under `pytest -m slow` (their proposals are checked without training below, and each of
    them searches end to end in the tests of the flaky recipe: random in most, Bayesian
    optimization and Hyperband in their own)."""
    _check_digits_search("grid", digits_grid, (digits_grid.parent / "printed.txt").read_text())


@pytest.mark.slow  # about 3 s of CPU each: the grid search above shows the command's files
@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_the_other_tuners_from_the_cli_on_digits(tuner, tmp_path):
    tune_dir = tmp_path / "tune"
    _check_digits_search(tuner, tune_dir, _digits_search(tuner, tune_dir))


TUNERS_BUT_RANDOM = ("grid", "bayesian", "hyperband")


# random trains drawn fashion_mnist configs in every session; what the other three tuners add,
# their own proposals from the 10 dimensions, is checked without training below (each end to
# end with `pytest -m slow`, about 7 s of CPU).
@pytest.mark.parametrize(
    "tuner",
    ["random", *(pytest.param(name, marks=pytest.mark.slow) for name in TUNERS_BUT_RANDOM)],
)
def test_all_four_tuners_search_fashion_mnists_own_space_from_the_cli(tuner, fashion_dir, tmp_path):
    """No --search: the recipe's SEARCH_SPACE (10 dimensions) is what every tuner draws from;
    each drawn config trains one stage of convolutions for one epoch on 100 images."""
    import recipes.fashion_mnist as fashion_mnist
    from trainer.tuning import parse_space

    tune_dir = tmp_path / "tune"
    data = [f"--data_dir={fashion_dir}", "--train_limit=100", "--validation_size=50"]
    data.append("--stages=1")  # fixed: one convolution stage, whatever width is drawn
    rows = _tune("fashion_mnist", tuner, tune_dir, *data, max_epochs=1)
    space = parse_space(fashion_mnist.SEARCH_SPACE, fashion_mnist.Config())
    choices = {d.name: {str(v) for v in d.choices} for d in space if d.choices}
    assert set(choices) >= {"optimizer", "width", "batch_size", "augment"}
    for row in rows:
        assert all(row[name] in values for name, values in choices.items()), row
    best = yaml.safe_load((tune_dir / "best.yaml").read_text())
    assert best["train_limit"] == 100 and best["data_dir"] == str(fashion_dir)  # fixed options
    assert best["optimizer"] in ("adamw", "sgd")


@pytest.mark.parametrize("tuner", TUNERS_BUT_RANDOM)
def test_each_tuner_proposes_valid_configs_from_fashion_mnists_own_space(tuner, tmp_path):
    """The tuner's oracle, as `trainer tune` makes it, proposes trials from the recipe's
    SEARCH_SPACE, fed a score after each (Bayesian optimization past its 2 random starts):
    every value within its dimension, every proposal a valid Config. No training."""
    import recipes.fashion_mnist as fashion_mnist
    from trainer.tuning import TuneOptions, make_tuner, parse_space, recipe_hypermodel, trial_config

    base = fashion_mnist.Config()
    space = parse_space(fashion_mnist.SEARCH_SPACE, base)
    hypermodel = recipe_hypermodel(fashion_mnist, base, space, max_epochs=2)
    options = TuneOptions(tuner=tuner, max_trials=6, max_epochs=2)
    oracle = make_tuner(hypermodel, options, tmp_path, overwrite=True).oracle
    proposed = []
    for score in (0.1, 0.5, 0.2, 0.6, 0.3, 0.4):
        trial = oracle.create_trial("test")
        if trial.status != "RUNNING":  # Hyperband's bracket for 2 epochs holds 2 trials
            break
        values = trial.hyperparameters.values
        for dimension in space:
            value = values[dimension.name]
            if dimension.choices:
                assert value in dimension.choices, (dimension.name, value)
            else:
                assert dimension.low <= value <= dimension.high, (dimension.name, value)
        config = trial_config(base, values, max_epochs=2)
        assert (config.epochs, config.width) == (2, values["width"])
        proposed.append(values)
        oracle.update_trial(trial.trial_id, {"val_accuracy": score})
        oracle.end_trial(trial)
    assert len(proposed) == {"grid": 6, "bayesian": 6, "hyperband": 2}[tuner]
    assert len({tuple(sorted(values.items())) for values in proposed}) == len(proposed)
    if tuner == "bayesian":
        assert oracle.num_initial_points == 2  # then 4 proposals of the Gaussian process


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write_image_folder(root / "train", per_class=16, seed=1)
    write_image_folder(root / "test", per_class=4, seed=2)
    return root


# With `pytest -m slow` (about 5 s of CPU each): in every session, test_auto.py's image run
# searches image_classifier configs through the same `trainer.tuning.search`, and the digits
# and fashion_mnist searches above run the command.
@pytest.mark.slow
@pytest.mark.parametrize("tuner", ["random", *TUNERS_BUT_RANDOM])
def test_tuners_from_the_cli_on_image_classifier(tuner, small_folder, tmp_path):
    tune_dir = tmp_path / "tune"
    search = "--search=learning_rate=log:3e-3:3e-2; width=4,8"
    options = [f"--data={small_folder}", "--image_size=16", "--stages=1", "--batch_size=16"]
    rows = _tune("image_classifier", tuner, tune_dir, search, *options, max_epochs=1)
    assert float(rows[0]["val_accuracy"]) > 0


def _assert_same_config(run_dir: Path, best_file: Path) -> None:
    trained = yaml.safe_load((run_dir / "config.yaml").read_text())
    best = yaml.safe_load(best_file.read_text())
    assert {key: trained[key] for key in best if key != "run_dir"} == {
        key: value for key, value in best.items() if key != "run_dir"
    }


def test_best_yaml_is_the_config_train_runs_unchanged(digits_grid, tmp_path):
    """What `trainer train digits --config=best.yaml` does before it trains: parse the file
    with the recipe's Config and write the run folder's config.yaml. Trained end to end with
    `pytest -m slow` (below); --final (trainer.tuning.final_run) retrains it through the
    recipe's main in the notebook "Tune a recipe", which checks the test accuracy."""
    import recipes.digits as digits
    from trainer.config import parse_args
    from trainer.runs import create_run_dir

    best_file, run_dir = digits_grid / "best.yaml", tmp_path / "run"
    config = parse_args(digits.Config, [f"--config={best_file}", f"--run_dir={run_dir}"])
    create_run_dir("digits", config, config.run_dir)
    _assert_same_config(run_dir, best_file)


@pytest.mark.slow  # about 5 s of CPU: a digits run with its exports, as any `trainer train`
def test_best_yaml_trains_unchanged(digits_grid, tmp_path):
    best_file, run_dir = digits_grid / "best.yaml", tmp_path / "run"
    arguments = ["train", "digits", f"--config={best_file}", f"--run_dir={run_dir}"]
    assert trainer_main(arguments) == 0
    _assert_same_config(run_dir, best_file)


def test_cli_refuses_a_field_both_searched_and_fixed(tmp_path, capsys):
    code = trainer_main(
        ["tune", "digits", "--search=width=4,8", "--width=8", f"--tune_dir={tmp_path / 't'}"]
    )
    assert code == 2
    assert "width is both searched and fixed" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_cli_refuses_an_unknown_search_field_listing_the_fields(tmp_path, capsys):
    code = trainer_main(["tune", "digits", "--search=depth=1,2", f"--tune_dir={tmp_path / 't'}"])
    assert code == 2
    error = capsys.readouterr().err
    assert "unknown field 'depth'" in error and "learning_rate" in error


# --- isolation, budgets, resume, workers -----------------------------------------------------


@pytest.fixture(scope="module")
def worker_search(tmp_path_factory, warm) -> Path:
    """One search by a chief (this process) and two worker processes, each replaced after one
    trial: the grid of the flaky recipe's four modes, three of which fail. Returns its tuning
    folder, which the tests below only read. The workers are forks of the warm server
    (tests/warm.py) where `trainer.processes.start` would start new interpreters: the same
    code, without importing TensorFlow six times."""
    from trainer import processes

    folder = tmp_path_factory.mktemp("workers")
    recipe, tune_dir = folder / "flaky_recipe.py", folder / "tune"
    recipe.write_text(FLAKY_RECIPE, encoding="utf-8")
    arguments = ["tune", str(recipe), "--tuner=grid", "--max_epochs=2", f"--tune_dir={tune_dir}"]
    arguments += ["--search=mode=broken,nan,no_validation,ok", "--max_trials=4", "--workers=2"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processes, "start", warm.start)
        assert trainer_main([*arguments, "--trials_per_process=1"]) == 0
    return tune_dir


def test_a_chief_and_two_workers_run_each_trial_once_each_in_a_fresh_process(worker_search):
    records = _log(worker_search)
    assert sorted(record["trial"] for record in records) == ["0", "1", "2", "3"]  # each once
    assert {record["worker"] for record in records} == {"worker0", "worker1"}
    assert len({record["process"] for record in records}) == 4  # replaced after each trial
    assert all(record["rss_mb"] > 0 for record in records)
    assert len(_rows(worker_search)) == 4 and (worker_search / "best.yaml").is_file()


def test_failing_trials_are_recorded_and_the_search_goes_on(worker_search):
    rows = {row["mode"]: row for row in _rows(worker_search)}
    assert rows["ok"]["status"] == "COMPLETED" and float(rows["ok"]["val_accuracy"]) > 0.5
    assert rows["broken"]["status"] == "FAILED"
    assert "this combination is impossible" in rows["broken"]["error"]
    assert rows["nan"]["status"] == "FAILED" and "loss became nan" in rows["nan"]["error"]
    assert "no validation set" in rows["no_validation"]["error"]
    assert int(rows["ok"]["trial"]) == 3  # the grid's last trial, after three failures
    assert yaml.safe_load((worker_search / "best.yaml").read_text())["mode"] == "ok"
    assert "failed" in (worker_search / "trials.md").read_text()


def test_tensorboard_compares_the_trials_with_their_values_and_objectives(worker_search):
    """TensorBoard's HParams dashboard: one session per trial with its searched value, the
    objective for the one that completed, no metric for failed ones."""
    from tensorboard_events import Events

    rows = {row["mode"]: row for row in _rows(worker_search)}
    experiment = Events(worker_search / "logs").experiment().experiment
    assert [info.name for info in experiment.hparam_infos] == ["mode"]
    assert [info.name.tag for info in experiment.metric_infos] == ["val_accuracy", "epochs"]
    for row in rows.values():
        trial = Events(worker_search / "logs" / f"trial_{row['trial']}")
        assert trial.hparams() == {"mode": row["mode"]}
        if row["status"] == "COMPLETED":
            assert trial.scalars() == pytest.approx(
                {
                    "val_accuracy": float(row["val_accuracy"]),
                    "epochs": float(row["epochs"]),
                },
                abs=1e-6,  # trials.csv rounds to 6 decimals
            )
        else:
            assert trial.scalars() == {}


def test_time_budget_stops_cleanly_and_still_writes_results(flaky_recipe, tmp_path):
    from trainer.recipe_loader import load_recipe
    from trainer.tuning import TuneOptions, search

    recipe = load_recipe(str(flaky_recipe))
    options = TuneOptions(
        max_trials=20,
        max_epochs=50,
        trial_patience=0,
        time_budget=1.0,
        tune_dir=str(tmp_path / "tune"),
    )
    result = search(recipe, recipe.Config(sleep=0.05), "units=2:64", options=options)
    assert result.stopped_by_budget
    assert 1 <= len(result.trials) < 20
    assert result.trials[0].epochs < 50  # the running trial stopped at an epoch end
    assert (result.directory / "best.yaml").is_file() and (result.directory / "report.md").is_file()


def test_hyperband_counts_the_epochs_each_trial_trained_not_its_epoch_target(
    flaky_recipe, tmp_path
):
    """bench/tuning.py compares tuners by the sum of trial epochs: a trial Hyperband continues
    from its checkpoint counts only its new epochs (2 of `tuner/epochs`=3)."""
    from trainer.recipe_loader import load_recipe
    from trainer.tuning import TuneOptions, search

    recipe = load_recipe(str(flaky_recipe))
    options = TuneOptions(
        tuner="hyperband", max_epochs=3, trial_patience=0, tune_dir=str(tmp_path / "tune")
    )
    result = search(recipe, recipe.Config(), "units=2:64", options=options)
    # max_epochs=3, factor 3: bracket 1 runs 3 configs for 1 epoch and continues the best to
    # epoch 3; bracket 0 runs 2 configs for 3 epochs.
    in_start_order = sorted(result.trials, key=lambda trial: trial.trial_id)
    assert [trial.epochs for trial in in_start_order] == [1, 1, 1, 2, 3, 3]
    first_round = [trial.values for trial in in_start_order[:3]]
    assert in_start_order[3].values in first_round  # the continued configuration


def test_bayesian_search_leaves_its_random_start_within_the_trial_budget(flaky_recipe, tmp_path):
    """keras-tuner's default is 3 random trials per dimension before its Gaussian process: a
    search of the 10-dimension fashion_mnist space with fewer than 30 trials was random."""
    from trainer.recipe_loader import load_recipe
    from trainer.tuning import (
        KERAS_TUNER_DIR,
        PROJECT_NAME,
        TuneOptions,
        bayesian_initial_points,
        search,
    )

    assert bayesian_initial_points(12, 10) == 4  # then 8 trials chosen by the process
    assert bayesian_initial_points(100, 10) == 30  # keras-tuner's own, when it fits
    assert bayesian_initial_points(3, 10) == 2
    assert bayesian_initial_points(None, 10) is None  # unbounded: keras-tuner's default

    recipe = load_recipe(str(flaky_recipe))
    options = TuneOptions(
        tuner="bayesian",
        max_trials=3,
        max_epochs=1,
        trial_patience=0,
        tune_dir=str(tmp_path / "tune"),
    )
    # a float dimension: the Gaussian process proposes numpy.float64 values
    result = search(recipe, recipe.Config(), "units=2:64; sleep=0.0:0.001", options=options)
    assert len(result.trials) == 3  # 2 random, then 1 proposed by the Gaussian process
    best = yaml.safe_load((result.directory / "best.yaml").read_text())
    assert isinstance(best["sleep"], float) and best["units"] == result.best.values["units"]
    oracle = json.loads(
        (result.directory / KERAS_TUNER_DIR / PROJECT_NAME / "oracle.json").read_text()
    )
    assert oracle["num_initial_points"] == 2  # keras-tuner's default would have been 3


def test_search_seed_0_draws_the_same_trials_whatever_pythons_random_state(tmp_path):
    """keras-tuner reads seed 0 as "no seed" and takes one from Python's `random`: the tuner
    `trainer tune` makes for --search_seed=0 proposes the same trials whatever that state, and
    other trials for another seed. No training: the oracle's proposals are the trials."""
    import random

    import recipes.digits as digits
    from trainer.tuning import TuneOptions, make_tuner, recipe_hypermodel

    def proposals(seed: int, state: int, folder: str) -> list[int]:
        random.seed(state)
        hypermodel = recipe_hypermodel(digits, digits.Config(), "width=2:1000", max_epochs=1)
        options = TuneOptions(max_trials=3, max_epochs=1, search_seed=seed)
        oracle = make_tuner(hypermodel, options, tmp_path / folder, overwrite=True).oracle
        drawn = []
        for _ in range(3):
            trial = oracle.create_trial("test")
            drawn.append(trial.hyperparameters.values["width"])
            oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
            oracle.end_trial(trial)
        return drawn

    assert proposals(0, 1, "a") == proposals(0, 2, "b")
    assert proposals(0, 1, "c") != proposals(1, 1, "d")


def test_early_stopping_ends_a_trial_whose_validation_accuracy_stalls(flaky_recipe, tmp_path):
    from trainer.recipe_loader import load_recipe
    from trainer.tuning import TuneOptions, search

    recipe = load_recipe(str(flaky_recipe))
    options = TuneOptions(
        max_trials=1, max_epochs=40, trial_patience=1, tune_dir=str(tmp_path / "tune")
    )
    result = search(recipe, recipe.Config(), "units=8,16", options=options)
    assert 2 <= result.trials[0].epochs < 40  # 40 samples: accuracy stalls within a few epochs


# Inputs far from batch norm's initial moving statistics (mean 0, variance 1): after a few
# steps at momentum 0.99 the moving mean is still near 0, and inference collapses to one class.
SHIFTED_BN_RECIPE = """
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from trainer import keras
from trainer.experiment import Experiment


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 3  # passes
    units: int = 2  # unused, searched


def data():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 4)) * 10 + 50).astype(np.float32)
    return x, (x[:, 0] > 50).astype(np.int64)


def build(config):
    x, y = data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(momentum=0.99),
                              keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.05),
                  keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((x[:200], tf.one_hot(y[:200], 2))).batch(20)
    return Experiment(model=model, train=train, x_test=x[:4], y_test=y[:4],
                      class_names=["low", "high"], representative=x[:10],
                      x_val=x[200:], y_val=y[200:], epochs=config.epochs)


def main(config):
    raise NotImplementedError("not needed by this test")
"""


def test_trials_are_scored_with_batch_norm_statistics_of_their_final_weights(tmp_path):
    """Keras's own validation of this 30-step run is near chance (checked below, so the test can
    fail); a trial re-estimates the statistics first, as `trainer train` does at the end."""
    from trainer import keras
    from trainer.experiment import validation_dataset
    from trainer.recipe_loader import load_recipe
    from trainer.tuning import TuneOptions, search

    path = tmp_path / "shifted.py"
    path.write_text(SHIFTED_BN_RECIPE, encoding="utf-8")
    recipe = load_recipe(str(path))
    plain = recipe.build(recipe.Config())
    history = plain.model.fit(
        plain.train, validation_data=validation_dataset(plain), epochs=3, verbose=0
    )
    assert max(history.history["val_accuracy"]) < 0.7
    keras.backend.clear_session()
    options = TuneOptions(
        max_trials=1, max_epochs=3, trial_patience=0, tune_dir=str(tmp_path / "t")
    )
    result = search(recipe, recipe.Config(), "units=2,3", options=options)
    assert result.best.objective > 0.9


def test_kill_minus_9_mid_trial_then_resume_reruns_no_completed_trial(flaky_recipe, tmp_path, warm):
    """The search runs in a fork of the warm server (tests/warm.py), from a thread; the trial
    it holds at the gate names the process to kill."""
    import threading

    from trainer.tuning import resume

    tune_dir, gate = tmp_path / "tune", tmp_path / "gate"
    command = ["trainer", "tune", str(flaky_recipe), "--max_epochs=4", "--trial_patience=0"]
    command += ["--search=units=2:64", f"--tune_dir={tune_dir}", f"--gate={gate}"]
    ended = []
    search = threading.Thread(
        target=lambda: ended.append(warm.run([*command, "--max_trials=3"], cwd=REPO))
    )
    search.start()
    sent = False
    try:
        # Trial 1 waits inside its first epoch, so trial 0 has completed; the deadline only
        # keeps a broken search from hanging the suite.
        deadline = time.monotonic() + 600
        while not (gate / "held1").is_file():
            assert search.is_alive(), "the search ended with no trial at the gate"
            assert time.monotonic() < deadline, "no trial reached the gate in 10 minutes"
            time.sleep(0.05)
        os.kill(int((gate / "held1").read_text()), signal.SIGKILL)
        sent = True
    finally:
        if not sent:  # a failed test: let the search finish
            (gate / "release").touch()
        search.join(timeout=600)
    (killed,) = ended
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    completed_before = {record["trial"] for record in _log(tune_dir)}
    assert completed_before == {"0"}

    (gate / "release").touch()
    result = resume(tune_dir)
    assert sorted(result.trials_run_here) == ["1", "2"]  # trial 0 is not run again
    assert [record["trial"] for record in _log(tune_dir)].count("0") == 1
    assert len(result.trials) == 3 and all(t.status == "COMPLETED" for t in result.trials)


def _run_and_press_ctrl_c(arguments: list[str], tune_dir: Path, gate: Path) -> int:
    """Runs `trainer ARGUMENTS` in this process and presses Ctrl-C (SIGINT to this process's
    main thread, under Python's own handler) once a trial has completed and another waits at
    the gate, so the search still has work; returns the command's exit code."""
    import threading

    from trainer.tuning import TRIAL_LOG_FILE

    main_thread, ended = threading.get_ident(), threading.Event()

    def press_ctrl_c() -> None:
        log = tune_dir / TRIAL_LOG_FILE
        while not (log.is_file() and log.read_text().strip() and list(gate.glob("held*"))):
            if ended.wait(0.05):
                return  # the search ended first: the test fails on its exit code
        signal.pthread_kill(main_thread, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        try:
            return trainer_main(arguments)
        finally:
            ended.set()
            presser.join()
    except KeyboardInterrupt as late:  # possible only if the held trial did not hold
        raise AssertionError("Ctrl-C arrived after the search had ended") from late
    finally:
        signal.signal(signal.SIGINT, previous)


# 0: the trials run in the search's process; 1: in a worker process (a fork of the warm
# server where a new interpreter would start) that the chief stops.
@pytest.mark.parametrize("workers", [0, 1])
def test_ctrl_c_writes_the_finished_trials_and_says_how_to_resume(
    workers, flaky_recipe, tmp_path, capsys, warm, monkeypatch
):
    from trainer import processes

    monkeypatch.setattr(processes, "start", warm.start)
    tune_dir, gate = tmp_path / "tune", tmp_path / "gate"
    arguments = ["tune", str(flaky_recipe), "--max_epochs=4", "--trial_patience=0"]
    arguments += ["--search=units=2:64", f"--tune_dir={tune_dir}", f"--gate={gate}"]
    code = _run_and_press_ctrl_c(
        [*arguments, "--max_trials=6", f"--workers={workers}"], tune_dir, gate
    )
    errors = capsys.readouterr().err
    assert code == 130, errors
    assert f"continue the search with `trainer tune --resume={tune_dir}`" in errors
    assert "Nothing was trained" not in errors
    finished = [row for row in _rows(tune_dir) if row["status"] == "COMPLETED"]
    assert finished and all(float(row["val_accuracy"]) > 0 for row in finished)
    assert (tune_dir / "best.yaml").is_file()
    if workers:  # the worker held at the gate was stopped with the search
        (held,) = gate.glob("held*")
        with pytest.raises(ProcessLookupError):
            os.kill(int(held.read_text()), 0)
