"""The fashion_mnist recipe through the command line and as a script, and the option rules
every recipe checks before it loads data."""

import dataclasses
import json

import numpy as np
import pytest

from conftest import REPO
from trainer import cli, keras
from trainer.models import without_test_time_flip

QUICK = [
    "--epochs=3",
    "--batch_size=32",
    "--learning_rate=0.003",
    "--warmup_epochs=0.5",
    "--batch_norm_momentum=0.8",  # a few dozen steps: moving statistics must catch up fast
    "--head_units=0",  # fewer weights to fit on 600 images
]


def test_recipes_lists_fashion_mnist(capsys):
    assert cli.main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "fashion_mnist" in out and "Fashion-MNIST" in out


def test_unknown_recipe_and_command(capsys):
    assert cli.main(["train", "cifar99"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'cifar99'; available:" in err and "fashion_mnist" in err
    assert cli.main(["fly"]) == 2


def test_bad_option_exits_2_with_message(capsys):
    assert cli.main(["train", "fashion_mnist", "--epochs=abc"]) == 2
    assert "epochs expects int, received 'abc'" in capsys.readouterr().err


@pytest.mark.e2e
def test_recipe_run_as_a_script_writes_the_run_directory(fashion_dir, tmp_path, warm):
    """`python recipes/fashion_mnist.py ...` (the recipe by path, as a script, in its own
    process) trains and writes every file of a run folder. The process is a fork of the warm
    server (tests/warm.py): the script runs as `__main__` with its own argv, folder and exit
    code; that a fresh interpreter gets trainer's Keras from a recipe's imports is
    tests/test_keras_path.py's and tests/test_keras_import_order.py's."""
    script = REPO / "recipes" / "fashion_mnist.py"
    run_dir = tmp_path / "run"
    result = warm.run(
        [
            "python",
            str(script),
            f"--data_dir={fashion_dir}",
            f"--run_dir={run_dir}",
            *QUICK,
            "--export=float32,dynamic",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in (
        "config.yaml",
        "history.csv",
        "metrics.json",
        "model.keras",
        "report.md",
        "learning_curves.png",
        "model_float32.tflite",
        "model_dynamic.tflite",
        "data_report.md",
        "confusion_matrix.png",
    ):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5  # bars are easy: chance is 0.1
    assert metrics["epochs"] == 3
    exports = {e["format"]: e for e in metrics["exports"]}
    assert abs(exports["float32"]["accuracy"] - metrics["test_accuracy"]) <= 0.001
    assert exports["dynamic"]["size_bytes"] < exports["float32"]["size_bytes"]
    # The default augmentation flips, so the saved model averages each image and its mirror.
    saved = keras.models.load_model(run_dir / "model.keras", compile=False)
    inner = without_test_time_flip(saved)
    assert saved.name == "small_cnn_flip_averaged" and inner.name == "small_cnn"
    assert saved.count_params() == inner.count_params()  # one set of weights, two views
    # Saved in float32 (the float32 copy where the run trained in bfloat16).
    assert inner.get_layer("stage1_conv").compute_dtype == "float32"
    report = (run_dir / "report.md").read_text()
    assert "| TFLite float32 |" in report and "| TFLite dynamic |" in report
    assert "| TFLite float32 |" in result.stdout  # the report's table, printed
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and "learning_rate" in history[0] and len(history) == 4
    assert "epochs: 3" in (run_dir / "config.yaml").read_text()
    assert "epoch 3/3" in result.stdout  # one line per epoch when not a terminal
    # The file and the name load the same recipe.
    assert (
        cli.load_recipe(str(script)).Config().epochs
        == cli.load_recipe("fashion_mnist").Config().epochs
    )


def test_held_out_validation_is_never_in_the_training_pipeline(fashion_dir):
    """Compress and the best-epoch choice select on `x_val`: it must be held out of training."""
    from recipes.fashion_mnist import Config, build

    # No augmentation, so that training batches hold the images exactly as they are stored.
    config = Config(
        data_dir=str(fashion_dir), validation_size=100, seed=3, epochs=1, augment="none"
    )
    experiment = build(config)
    assert experiment.validation_held_out and len(experiment.x_val) == 100
    trained = {
        image.tobytes()
        for images, _ in experiment.train
        for image in (images.numpy() * 255).round().astype(np.uint8)
    }
    assert len(trained) == 500
    held_out = {(image * 255).round().astype(np.uint8).tobytes() for image in experiment.x_val}
    assert not trained & held_out
    # The 600 training images are distinct, so train and validation together are all of them.
    everything = build(dataclasses.replace(config, validation_size=0))
    assert len(trained | held_out) == 600 and everything.x_val is None
    assert len(experiment.x_test) == 200 and experiment.x_test.dtype == np.float32


def test_finished_run_directory_is_not_overwritten(fashion_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("{}")
    args = ["train", "fashion_mnist", f"--data_dir={fashion_dir}", f"--run_dir={run_dir}"]
    assert cli.main(args) == 1
    assert "already holds a finished run" in capsys.readouterr().err
    assert (run_dir / "metrics.json").read_text() == "{}"


def test_missing_data_dir_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAINER_DEBUG", raising=False)
    args = [
        "train",
        "fashion_mnist",
        f"--data_dir={tmp_path / 'none'}",
        f"--run_dir={tmp_path / 'r'}",
    ]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "apt-get install dataset-fashion-mnist" in err
    assert "Traceback" not in err
    monkeypatch.setenv("TRAINER_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        cli.main(args[:-1] + [f"--run_dir={tmp_path / 'r2'}"])


@pytest.mark.slow
def test_default_recipe_reaches_target_on_real_data(tmp_path):
    from recipes import fashion_mnist

    metrics = fashion_mnist.main(fashion_mnist.Config(run_dir=str(tmp_path / "full")))
    assert metrics["test_accuracy"] >= 0.92
    exports = {e["format"]: e for e in metrics["exports"]}
    assert exports["float32"]["drop_pp"] <= 0.1 and exports["int8"]["drop_pp"] <= 0.5
    assert np.isfinite(metrics["train_seconds"])


# A data path that does not exist: only a check made before loading can answer with exit 2.
MISSING_DATA = {
    "fashion_mnist": ["--data_dir=/nonexistent/fashion"],
    "image_classifier": ["--data=/nonexistent/images"],
    "text_classifier": ["--data=/nonexistent/texts"],
}
RECIPES = list(MISSING_DATA)


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize(
    ("option", "phrase"),
    [
        ("--epochs=0", "epochs must be >= 1, received 0"),
        ("--learning_rate=nan", "learning_rate must be a finite number"),
        ("--width=-5", "width must be >= 1, received -5"),
        ("--backup_every=-1", "backup_every must be >= 0"),
    ],
)
def test_every_recipe_checks_its_options_before_loading_data(
    recipe, option, phrase, tmp_path, capsys
):
    args = ["train", recipe, option, *MISSING_DATA[recipe], f"--run_dir={tmp_path / 'run'}"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("recipe", "option", "phrase"),
    [
        ("fashion_mnist", "--export=float32,int4", "export must be comma-separated"),
        ("fashion_mnist", "--train_limit=-5", "train_limit must be >= 0"),
        ("fashion_mnist", "--validation_size=-2", "validation_size must be >= -1"),
        ("fashion_mnist", "--optimizer=adagrad", "optimizer must be one of"),
        ("fashion_mnist", "--augment=spin", "augment: unknown augmentation 'spin'"),
        ("image_classifier", "--image_size=-5", "image_size must be >= 0, received -5"),
        ("image_classifier", "--channels=2", "channels must be one of 0, 1, 3"),
        ("image_classifier", "--balance=x", "balance must be one of none, class_weights"),
        ("image_classifier", "--dropout=1", "dropout must be in [0, 1)"),
        ("text_classifier", "--export=int8", "export must be comma-separated"),
        ("text_classifier", "--schedule=linear", "schedule must be one of"),
        ("text_classifier", "--heads=0", "heads must be >= 1, received 0"),
    ],
)
def test_recipe_option_rules(recipe, option, phrase, tmp_path, capsys):
    args = ["train", recipe, option, *MISSING_DATA[recipe], f"--run_dir={tmp_path / 'run'}"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err


def test_lr_find_refuses_negative_limits_before_loading(capsys):
    args = ["lr-find", "fashion_mnist", "--train_limit=-5", *MISSING_DATA["fashion_mnist"]]
    assert cli.main(args) == 2
    assert "train_limit must be >= 0, received -5" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", RECIPES)
def test_only_export_and_backup_options_change_on_resume(recipe):
    from trainer.config import resumable_options

    options = resumable_options(cli.load_recipe(recipe).Config)
    # The exported files' format, input/output type and output kind, and the backups.
    assert options[0] == "export" and options[-1] == "backup_every"
    assert set(options[1:-1]) <= {"io", "outputs"}


def test_test_time_flip_needs_flips_in_training():
    from recipes.fashion_mnist import trains_on_mirror_images

    assert trains_on_mirror_images("crop:2,flip")
    assert trains_on_mirror_images("flip,erase:0.25")
    assert not trains_on_mirror_images("none")
    assert not trains_on_mirror_images("crop:2,erase:0.25")
