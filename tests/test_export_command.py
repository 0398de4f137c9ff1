"""`trainer export MODEL_OR_RUN`: a user's own model on a data source, and a run folder.

(The run folder of each shipped recipe, exported through its own build(), is
tests/test_export_every_recipe.py.)"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tf_keras as keras

from conftest import REPO
from datagen import bar_image, write_image_folder
from trainer import cli

CLASSES = ("circle", "square", "star")


def run(arguments: list[str]) -> int:
    """`trainer export ARGUMENTS` through the command line's error boundary: its exit code."""
    return cli.main(["export", *arguments])


def _bar_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 16x16x3 images in [0, 1], class k = a bright bar in band k (of 4)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    images = np.stack([bar_image(int(label), rng, size=16) for label in labels])
    return images.astype(np.float32) / 255.0, labels


def _trained_cnn() -> keras.Model:
    """A small functional CNN trained a few steps on generated, separable bar images."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    features = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    features = keras.layers.MaxPool2D()(features)
    outputs = keras.layers.Dense(len(CLASSES))(keras.layers.Flatten()(features))
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy"],
    )
    x, y = _bar_images(150, seed=5)
    model.fit(x, y, epochs=4, batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The trained CNN saved as .keras, SavedModel and .h5, and an image folder to verify on
    (PNG files of another seed, one subfolder per class)."""
    root = tmp_path_factory.mktemp("export_command")
    model = _trained_cnn()
    model.save(root / "mine.keras")
    model.save(root / "mine_savedmodel", save_format="tf")
    model.save(root / "mine.h5")
    folder = write_image_folder(root / "photos", classes=CLASSES, per_class=20, seed=9, size=16)
    return root, folder


def _sidecar(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_own_keras_model_on_an_image_folder_is_verified_with_sidecars(saved, tmp_path, capsys):
    root, folder = saved
    code = run(
        [
            str(root / "mine.keras"),
            f"--data={folder}",
            f"--out={tmp_path}",
            "--format=float32,int8",
            "--representative=30",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "resized to 16x16x3 and divided by 255" in out
    assert "| TFLite int8 |" in out and "top-1 agreement" in out
    float32 = _sidecar(tmp_path / "model_float32.json")
    assert float32["class_names"] == list(CLASSES)
    assert float32["input"]["shape"] == [16, 16, 3] and float32["input"]["range"] == [0, 1]
    assert float32["model_file"] == "model_float32.tflite"
    verification = float32["verification"]
    assert verification["examples"] == 60  # every image in the folder, train and test splits
    assert verification["keras_accuracy"] > 0.9  # the model learned, so parity means something
    assert verification["agreement"] == 1.0 and verification["max_abs_diff"] < 1e-3
    assert verification["latency_p90_ms"] >= verification["latency_ms"] > 0
    int8 = _sidecar(tmp_path / "model_int8.json")
    assert int8["tflite_input"]["dtype"] == "float32"  # float I/O: apps need not quantize
    assert int8["verification"]["size_bytes"] == (tmp_path / "model_int8.tflite").stat().st_size
    assert int8["verification"]["size_bytes"] < float32["verification"]["size_bytes"]


def test_over_budget_writes_the_files_then_exits_1_naming_the_format(
    saved, tmp_path, capsys, monkeypatch
):
    """A file that scores worse than the Keras model (here LiteRT's answers rolled by one
    class, as a broken conversion would give) is written, reported and fails the command."""
    from trainer.export import verify

    real = verify.predict_tflite
    monkeypatch.setattr(
        verify, "predict_tflite", lambda *args, **kwargs: np.roll(real(*args, **kwargs), 1, -1)
    )
    root, folder = saved
    code = run(
        [
            str(root / "mine.keras"),
            f"--data={folder}",
            f"--out={tmp_path}",
            "--format=float32",
            "--max_accuracy_drop=0.5",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "float32 is over its accuracy budget" in captured.err
    assert "budget is 0.5 pp" in captured.err
    assert "**over budget**" in captured.out
    assert (tmp_path / "model_float32.tflite").is_file()
    assert _sidecar(tmp_path / "model_float32.json")["verification"]["within_budget"] is False


def test_model_at_chance_is_refused_unless_allowed(tmp_path, capsys):
    # Always predicts the first class: 1/3 on balanced data, exactly the majority share.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                3,
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant([1.0, 0.0, 0.0]),
            ),
        ]
    )
    model.save(tmp_path / "constant.keras")
    folder = write_image_folder(tmp_path / "photos", classes=CLASSES, per_class=10, size=16)
    arguments = [
        str(tmp_path / "constant.keras"),
        f"--data={folder}",
        "--format=float32",
        f"--out={tmp_path / 'out'}",
    ]
    assert run(arguments) == 1
    assert "did not learn" in capsys.readouterr().err
    assert not (tmp_path / "out" / "model_float32.tflite").exists()
    assert run([*arguments, "--allow_chance=true"]) == 0
    assert (tmp_path / "out" / "model_float32.tflite").is_file()


@pytest.mark.parametrize("name", ["mine_savedmodel", "mine.h5"])
def test_savedmodel_and_h5_export(saved, tmp_path, capsys, name):
    root, folder = saved
    code = run([str(root / name), f"--data={folder}", "--format=float32", f"--out={tmp_path}"])
    assert code == 0, capsys.readouterr()
    sidecar = _sidecar(tmp_path / "model_float32.json")
    assert sidecar["class_names"] == list(CLASSES)
    assert sidecar["verification"]["agreement"] == 1.0
    assert sidecar["verification"]["keras_accuracy"] > 0.9


def test_default_output_folder_sits_beside_the_model(saved, capsys):
    root, folder = saved
    assert run([str(root / "mine.h5"), f"--data={folder}", "--format=float16"]) == 0
    assert (root / "mine_export" / "model_float16.tflite").is_file()


def test_text_source_for_a_bare_model_says_export_the_run(saved, tmp_path, capsys):
    root, _ = saved
    for label in ("neg", "pos"):
        (tmp_path / "texts" / label).mkdir(parents=True)
        for index in range(6):
            (tmp_path / "texts" / label / f"{index}.txt").write_text(f"{label} review {index}")
    assert run([str(root / "mine.keras"), f"--data={tmp_path / 'texts'}"]) == 1
    error = capsys.readouterr().err
    assert "holds texts" in error and "export the run folder instead" in error


def test_shape_mismatch_names_both_shapes(tmp_path, capsys):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.save(tmp_path / "rows.keras")
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "rows.npz",
        x_train=rng.normal(size=(30, 7)).astype(np.float32),
        y_train=np.arange(30) % 3,
        x_test=rng.normal(size=(9, 7)).astype(np.float32),
        y_test=np.arange(9) % 3,
    )
    assert run([str(tmp_path / "rows.keras"), f"--data={tmp_path / 'rows.npz'}"]) == 1
    error = capsys.readouterr().err
    assert "shape mismatch" in error and "[7]" in error and "[5]" in error


def test_bare_model_needs_data_and_bad_budget_is_quoted(saved, capsys):
    root, folder = saved
    assert run([str(root / "mine.keras")]) == 1
    assert "--data=SOURCE" in capsys.readouterr().err
    # A bad budget is a bad option: exit 2 when the options are parsed, before any loading.
    assert run([str(root / "mine.keras"), f"--data={folder}", "--max_accuracy_drop=half"]) == 2
    assert "'half'" in capsys.readouterr().err


RECIPE = '''
"""A tiny image recipe for the export test: bar images from a folder, a small CNN."""

from dataclasses import dataclass

import numpy as np
import tf_keras as keras

from trainer.data.sources import SourceOptions, load_source
from trainer.experiment import Experiment


@dataclass
class Config:
    data: str = ""  # image folder
    run_dir: str = ""  # output folder


def build(config: Config) -> Experiment:
    data = load_source(config.data, SourceOptions(image_size=16, channels=3))
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(len(data.class_names))(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    return Experiment(model=model, train=None, x_test=scale(data.x_test), y_test=data.y_test,
                      class_names=data.class_names, representative=scale(data.x_train[:20]),
                      export_formats=("float16",), artifacts={"notes.txt": "bars"},
                      input_spec={"shape": [16, 16, 3], "dtype": "float32", "range": [0, 1],
                                  "layout": "NHWC", "preprocessing": "pixels / 255"})


def main(config: Config) -> dict:
    raise NotImplementedError("the test writes the run folder itself")
'''


def test_run_folder_is_verified_on_its_recipe_test_set(saved, tmp_path, capsys):
    from trainer.config import save_config

    root, folder = saved
    recipe = tmp_path / "bars_recipe.py"
    recipe.write_text(textwrap.dedent(RECIPE))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    keras.models.load_model(root / "mine.keras").save(run_dir / "model.keras")
    sys.path.insert(0, str(tmp_path))
    try:
        import bars_recipe

        save_config(
            bars_recipe.Config(data=str(folder), run_dir=str(run_dir)), run_dir / "config.yaml"
        )
    finally:
        sys.path.remove(str(tmp_path))
    (run_dir / "run.json").write_text(
        json.dumps({"recipe": "bars_recipe", "recipe_file": str(recipe)})
    )
    assert run([str(run_dir)]) == 0, capsys.readouterr()
    assert "test set of the run's recipe" in capsys.readouterr().out
    sidecar = _sidecar(run_dir / "export" / "model_float16.json")  # the recipe's format
    assert sidecar["input"]["preprocessing"] == "pixels / 255"  # the recipe's own input spec
    assert sidecar["files"] == ["notes.txt"]
    assert sidecar["class_names"] == list(CLASSES)
    assert sidecar["verification"]["examples"] == 12  # the folder's 20% test split only
    assert sidecar["verification"]["keras_accuracy"] > 0.9  # the run's model, not build's


NOISE = (
    "absl",
    "W0000",
    "I0000",
    "UserWarning",
    "oneDNN",
    "XNNPACK",
    "tensorflow/",
    "Estimated count",
    "WARNING",
    "fully_quantize",
)


def test_command_output_is_clean(saved, tmp_path):
    root, folder = saved
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer.cli",
            "export",
            str(root / "mine.keras"),
            f"--data={folder}",
            f"--out={tmp_path}",
            "--format=float32,dynamic,int8",
            "--representative=20",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={
            key: value
            for key, value in os.environ.items()
            if key not in ("TRAINER_DEBUG", "TF_CPP_MIN_LOG_LEVEL")
        },
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| TFLite int8 |" in result.stdout
    for marker in NOISE:
        assert marker not in result.stderr, result.stderr[-2000:]
        assert marker not in result.stdout, result.stdout[-2000:]


def test_split_chooses_the_examples_and_a_bad_split_is_named(saved, tmp_path, capsys):
    root, folder = saved
    arguments = [
        str(root / "mine.keras"),
        f"--data={folder}",
        "--format=float32",
        f"--out={tmp_path}",
    ]
    assert run([*arguments, "--split=test"]) == 0
    assert "12 images from" in capsys.readouterr().out  # the flat folder's 20% test split
    assert _sidecar(tmp_path / "model_float32.json")["verification"]["examples"] == 12
    assert run([*arguments, "--split=validation"]) == 1
    assert "received 'validation'" in capsys.readouterr().err


def test_a_keras3_file_is_named_as_such(tmp_path, capsys):
    import keras as keras3

    model = keras3.Sequential([keras3.Input((4,)), keras3.layers.Dense(2)])
    model.save(tmp_path / "keras3.keras")
    assert run([str(tmp_path / "keras3.keras"), f"--data={tmp_path}"]) == 1
    error = capsys.readouterr().err
    assert f"{tmp_path / 'keras3.keras'} was saved by Keras 3." in error
    assert "to_tf_keras(model)" in error and "the tf_keras loader said:" in error


def test_an_unregistered_custom_layer_is_named_with_its_module(tmp_path, capsys):
    class Doubler(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    Doubler.__module__ = "my_layers"
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Doubler()(inputs)))
    model.save(tmp_path / "custom.keras")
    assert run([str(tmp_path / "custom.keras"), f"--data={tmp_path}"]) == 1
    error = capsys.readouterr().err
    assert "holds custom objects that are not registered in this process: Doubler (module " in error
    assert "register_keras_serializable" in error and "Keras 3" not in error


def test_io_and_outputs_reach_the_files(saved, tmp_path, capsys):
    root, folder = saved
    arguments = [str(root / "mine.keras"), f"--data={folder}", f"--out={tmp_path}"]
    assert run([*arguments, "--format=int8", "--io=uint8", "--outputs=logits"]) == 0
    sidecar = _sidecar(tmp_path / "model_int8.json")
    assert sidecar["tflite_input"]["dtype"] == "uint8" and sidecar["output"]["kind"] == "logits"
    assert run([*arguments, "--format=int8", "--io=int16"]) == 1
    assert "io must be one of float32, uint8, int8, received 'int16'" in capsys.readouterr().err
