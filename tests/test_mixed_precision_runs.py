"""A run trained in mixed_bfloat16 is scored, saved and exported as its float32 copy, and
compresses in float32 (TF-MOT's quantization and clustering ops take float32 only): nothing is
skipped because of the run's precision. The run is tests/recipes_for_tests/tiny_bars.py with
`--precision=mixed_bfloat16`: one convolution with batch norm on 160 images (this CPU emulates
bfloat16, so every image costs), which still learns the bars far above chance."""

import json

import pytest
import tf_keras as keras

from conftest import RECIPES_FOR_TESTS
from trainer.cli import main as trainer_main

BF16_RUN = ["--precision=mixed_bfloat16", "--convs=1", "--width=4", "--learning_rate=0.01"]
BF16_RUN += ["--train=160", "--validation=40", "--test=60", "--epochs=3"]


@pytest.mark.e2e
def test_a_bfloat16_run_exports_and_compresses_in_float32(tmp_path, capsys):
    recipe, run, out = RECIPES_FOR_TESTS / "tiny_bars.py", tmp_path / "run", tmp_path / "out"
    try:
        assert trainer_main(["train", str(recipe), f"--run_dir={run}", *BF16_RUN]) == 0
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["test_accuracy"] > 0.5  # it learned, in bfloat16 (chance: 0.1)
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
