"""The case-study recipes on generated files in their real formats: CIFAR-10 (python batches)
with ResNet-20 and ResNet-9, and IMDb (the aclImdb folder tree)."""

import json
from pathlib import Path

import numpy as np
import pytest

from datagen import write_cifar10_folder
from trainer import cli


def _history_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "history.csv").read_text().splitlines()
    column = lines[0].split(",").index("loss")
    return [float(line.split(",")[column]) for line in lines[1:]]


def _check_run(run_dir: Path, formats: set[str], learns: bool = True) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    losses = _history_losses(run_dir)
    assert not learns or losses[-1] < losses[0], losses
    for name in (
        "config.yaml",
        "model.keras",
        "report.md",
        "learning_curves.png",
        "confusion_matrix.png",
        *(f"model_{f}.tflite" for f in formats),
    ):
        assert (run_dir / name).is_file(), name
    exports = {export["format"]: export for export in metrics["exports"]}
    assert set(exports) == formats
    assert exports["float32"]["agreement"] == 1.0  # the TFLite file was verified
    return metrics


@pytest.mark.e2e
def test_cifar10_recipe_on_the_python_batches(cifar_run):
    """The shared run (conftest.py: resnet9 at width 4, 3 epochs on a generated
    cifar-10-batches-py folder) learned, wrote its files and named the CIFAR classes."""
    metrics = _check_run(cifar_run, {"float32"})
    assert metrics["class_names"][:2] == ["airplane", "automobile"]
    assert "model: resnet9" in (cifar_run / "config.yaml").read_text()


def test_cifar10_resnet20_is_built_from_the_folder_holding_the_batches(tmp_path):
    """`--data=` the folder that holds cifar-10-batches-py (as the tarball unpacks) with the
    default ResNet-20 at width 4: the model and data a run would train, without training
    (the trained run is the slow test below; ResNet-20's published size is test_models.py's)."""
    from recipes.cifar10_resnet import Config, build

    folder = write_cifar10_folder(tmp_path / "cifar")
    experiment = build(Config(data=str(folder.parent), width=4, batch_size=16))
    assert experiment.class_names[:2] == ["airplane", "automobile"]
    assert experiment.x_test.shape == (40, 32, 32, 3)
    assert experiment.model.count_params() < 20_000  # width 4: a sixteenth of ResNet-20
    convolutions = [layer for layer in experiment.model.layers if "Conv" in type(layer).__name__]
    assert len(convolutions) >= 19  # 20 weight layers (6n+2, n=3): 19 convolutions, the head


@pytest.mark.e2e
@pytest.mark.slow
def test_cifar10_resnet20_on_the_python_folder(tmp_path):
    """Trains what the test above builds (17 s of CPU); the shared resnet9 run shows the
    recipe's run on the python batches in every session."""
    folder = write_cifar10_folder(tmp_path / "cifar")
    run_dir = tmp_path / "run"
    args = [
        "train",
        "cifar10_resnet",
        f"--data={folder.parent}",
        f"--run_dir={run_dir}",
        "--model=resnet20",
        "--width=4",
        "--epochs=3",
        "--batch_size=16",
        "--learning_rate=0.05",
        "--export=float32",
        "--backup_every=0",
    ]
    assert cli.main(args) == 0
    metrics = _check_run(run_dir, {"float32"})
    assert metrics["class_names"][:2] == ["airplane", "automobile"]
    assert metrics["parameters"] < 20_000  # width 4: a sixteenth of ResNet-20
    config = (run_dir / "config.yaml").read_text()
    assert "model: resnet20" in config


@pytest.mark.e2e
@pytest.mark.slow
def test_cifar10_resnet9_with_test_time_flip(tmp_path):
    folder = write_cifar10_folder(tmp_path / "cifar")
    run_dir = tmp_path / "run"
    args = [
        "train",
        "cifar10_resnet",
        f"--data={folder}",
        f"--run_dir={run_dir}",
        "--model=resnet9",
        "--width=8",
        "--epochs=3",
        "--batch_size=16",
        "--test_time_flip=true",
        "--export=float32",
        "--backup_every=0",
    ]
    assert cli.main(args) == 0
    metrics = _check_run(run_dir, {"float32"})
    assert "test-time flip" in (run_dir / "report.md").read_text()
    assert metrics["test_accuracy"] > 0.2  # chance is 0.1


@pytest.mark.e2e
def test_imdb_recipe_on_the_aclimdb_tree(imdb_run):
    run_dir = imdb_run  # shared (conftest.py): bow, 4 epochs on 24 reviews per class and split
    metrics = _check_run(run_dir, {"float32"})
    assert metrics["class_names"] == ["neg", "pos"]
    assert metrics["test_accuracy"] >= 0.7  # sentiment words decide; chance is 0.5


@pytest.mark.e2e
@pytest.mark.slow
def test_image_classifier_transfers_a_backbone_from_an_earlier_run(tmp_path):
    from datagen import write_image_folder

    write_image_folder(tmp_path / "first", per_class=12, size=32, seed=1)
    write_image_folder(tmp_path / "second", per_class=12, size=32, seed=2)
    common = [
        "--backbone=mobilenet_v2",
        "--image_size=32",
        "--batch_size=8",
        "--epochs=2",
        "--export=float32",
        "--backup_every=0",
        "--augment=none",
    ]
    first, second = tmp_path / "run1", tmp_path / "run2"
    assert (
        cli.main(
            [
                "train",
                "image_classifier",
                f"--data={tmp_path / 'first'}",
                f"--run_dir={first}",
                *common,
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "train",
                "image_classifier",
                f"--data={tmp_path / 'second'}",
                f"--run_dir={second}",
                f"--weights={first}",
                "--fine_tune_epochs=1",
                "--seed=1",
                *common,
            ]
        )
        == 0
    )
    history = (second / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 + 1  # head epochs, then the fine-tuning epoch
    # Two epochs on 24 images say little about accuracy; what matters is that the bottom of
    # the backbone (frozen in the second run, never unfrozen) is what the first run trained
    # from scratch, not the seed-1 initialization of the second run.
    _check_run(second, {"float32"}, learns=False)
    from trainer import keras

    def bottom_kernel(run):
        model = keras.models.load_model(run / "model.keras", compile=False)
        return model.get_layer("mobilenet_v2").get_layer("Conv1").get_weights()[0]

    np.testing.assert_array_equal(bottom_kernel(first), bottom_kernel(second))


@pytest.mark.e2e
@pytest.mark.slow
def test_image_classifier_transfers_its_own_cnn_from_an_earlier_run(tmp_path):
    from datagen import write_image_folder

    write_image_folder(tmp_path / "first", per_class=12, size=16, seed=1)
    write_image_folder(tmp_path / "second", classes=("x", "y"), per_class=12, size=16, seed=2)
    common = ["--image_size=16", "--width=4", "--epochs=2", "--export=float32"]
    common += ["--backup_every=0", "--augment=none"]
    first, second = tmp_path / "run1", tmp_path / "run2"
    train = ["train", "image_classifier"]
    assert cli.main([*train, f"--data={tmp_path / 'first'}", f"--run_dir={first}", *common]) == 0
    pretrained = [f"--weights={first}", "--fine_tune_epochs=1", "--seed=1"]
    assert (
        cli.main(
            [*train, f"--data={tmp_path / 'second'}", f"--run_dir={second}", *pretrained, *common]
        )
        == 0
    )
    # The fine-tuning epoch follows the head's two in history.csv, numbered on.
    epochs = [line.split(",")[0] for line in (second / "history.csv").read_text().splitlines()]
    assert epochs == ["epoch", "0", "1", "2"]
    assert json.loads((second / "metrics.json").read_text())["epochs"] == 3
    _check_run(second, {"float32"}, learns=False)
    from trainer import keras

    first_model = keras.models.load_model(first / "model.keras", compile=False)
    second_model = keras.models.load_model(second / "model.keras", compile=False)
    features = second_model.get_layer("features")
    # The first stage stays frozen (only the last stage is fine-tuned): the first run's kernel.
    np.testing.assert_array_equal(
        first_model.get_layer("stage1_conv").get_weights()[0],
        features.get_layer("stage1_conv").get_weights()[0],
    )
    # A new head for the second data set's two classes replaced the first run's three.
    assert first_model.get_layer("logits").output_shape == (None, 3)
    assert second_model.get_layer("logits").output_shape == (None, 2)
