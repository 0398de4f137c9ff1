"""A run trained in mixed_bfloat16 is scored, saved and exported as its float32 copy, and
compresses in float32 (TF-MOT's quantization and clustering ops take float32 only): nothing is
skipped because of the run's precision."""

import json

import tf_keras as keras

from trainer.cli import main as trainer_main

RECIPE = '''"""Tiny bars in bfloat16 (test recipe)."""

from dataclasses import dataclass

import numpy as np

import trainer  # noqa: F401
from trainer import keras
from trainer.data.pipeline import image_dataset
from trainer.experiment import Experiment, finish, fit, start_run
from trainer.precision import float32_outputs, set_precision


@dataclass
class Config:
    run_dir: str = ""  # output folder
    epochs: int = 4  # passes over the training set
    width: int = 8  # filters of the convolution
    precision: str = "mixed_bfloat16"  # Keras dtype policy
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
    set_precision(config.precision)
    x_train, y_train = bars(400, 1)
    x_test, y_test = bars(200, 2)
    x_val, y_val = bars(100, 3)
    train = image_dataset(x_train, y_train, num_classes=10, batch_size=32, training=True,
                          seed=config.seed)
    inputs = keras.Input((20, 20, 1))
    x = keras.layers.Conv2D(config.width, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    model = float32_outputs(keras.Model(inputs, outputs))
    model.compile(keras.optimizers.Adam(0.01),
                  keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    scale = lambda images: images.astype(np.float32) / 255.0  # noqa: E731
    return Experiment(
        model=model, train=train, x_test=scale(x_test), y_test=y_test,
        class_names=[str(k) for k in range(10)], representative=scale(x_train[:100]),
        x_val=scale(x_val), y_val=y_val, epochs=config.epochs, batch_size=32,
        learning_rate=0.01, export_formats=("float32", "int8"),
    )


def main(config):
    experiment = build(config)
    run_dir = start_run("tiny_bf16", config, config.run_dir)
    return finish(experiment, run_dir, fit(experiment, run_dir, backup_every=0))
'''


def test_a_bfloat16_run_exports_and_compresses_in_float32(tmp_path, capsys):
    recipe, run, out = tmp_path / "tiny_bf16.py", tmp_path / "run", tmp_path / "out"
    recipe.write_text(RECIPE)
    try:
        assert trainer_main(["train", str(recipe), f"--run_dir={run}"]) == 0
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["test_accuracy"] > 0.5  # it learned, in bfloat16
        # Scored, saved and exported as its float32 copy: the float32 file matches it exactly.
        model = keras.models.load_model(run / "model.keras", compile=False)
        assert model.layers[1].compute_dtype == "float32"
        exports = {row["format"]: row for row in metrics["exports"]}
        assert exports["float32"]["accuracy"] == metrics["test_accuracy"]
        assert exports["float32"]["agreement"] == 1.0
        assert (run / "model_int8.tflite").stat().st_size > 0

        arguments = ["compress", str(run), "--method=qat,cluster", "--finetune_epochs=0.5"]
        arguments += [f"--out_dir={out}", "--max_accuracy_drop=50", "--clusters=4"]
        assert trainer_main(arguments) == 0
        printed = capsys.readouterr().out
        assert "compress fine-tunes in float32 (the run's precision: mixed_bfloat16)" in printed
        assert "skipped" not in printed
        names = [c["name"] for c in json.loads((out / "metrics.json").read_text())["candidates"]]
        assert "qat-int8" in names and "cluster+ptq-clusters4-int8" in names, names
    finally:
        keras.mixed_precision.set_global_policy("float32")
