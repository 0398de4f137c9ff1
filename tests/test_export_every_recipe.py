"""`trainer export RUN` on a run of each of the six recipes: the files of the recipe's formats,
verified on its test set. (Each run's model.keras loaded in a fresh process with nothing but
`import trainer` is tests/test_custom_objects.py.)

The runs are the session's shared tiny runs (conftest.py: fashion_mnist, image_classifier,
text_classifier's CNN, digits, imdb's bag of n-grams), trained on generated data in each
recipe's real format (IDX files, an image folder, the aclImdb tree; digits is scikit-learn's
own, cifar10_resnet's the CIFAR python batches) with settings that learn above chance, so the
export's chance-level refusal is not what passes.
"""

import json

import pytest

from conftest import RECIPE_RUNS, copy_run
from trainer import cli


@pytest.mark.e2e
@pytest.mark.parametrize("recipe", list(RECIPE_RUNS))
def test_trainer_export_succeeds_on_a_run_of_every_recipe(recipe, request, tmp_path, capsys):
    """A copy of the run exports through its recipe's own build(): the recipe's formats, input
    spec, labels and artifacts (the text recipes' vocabulary) beside the files, verified on
    the recipe's test set by LiteRT and MediaPipe Tasks."""
    from trainer.recipe_loader import load_run_recipe

    run_dir = copy_run(request.getfixturevalue(RECIPE_RUNS[recipe]), tmp_path / "run")
    capsys.readouterr()
    code = cli.main(["export", str(run_dir)])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    assert f"test set of the run's recipe recipes.{recipe}" in captured.out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    recipe_module, config = load_run_recipe(run_dir, "test")
    experiment = recipe_module.build(config)
    assert experiment.export_formats
    for format in experiment.export_formats:
        sidecar = json.loads((run_dir / "export" / f"model_{format}.json").read_text())
        assert sidecar["class_names"] == metrics["class_names"]
        assert sidecar["input"] == json.loads(json.dumps(experiment.input_spec))
        assert sidecar["files"] == list(experiment.artifacts)
        verification = sidecar["verification"]
        assert verification["examples"] == len(experiment.x_test)
        # The exported run scores what training measured: the same model on the same test set.
        assert verification["keras_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
        assert verification["agreement"] >= 0.99
        assert verification["mediapipe"]["loaded"], verification["mediapipe"]
        assert verification["mediapipe"]["agreement"] >= 0.99
        assert (run_dir / "export" / f"model_{format}.tflite").stat().st_size > 0
    for name, text in experiment.artifacts.items():
        assert (run_dir / "export" / name).read_text() == text
    assert "↳ MediaPipe Tasks" in captured.out and "with LiteRT" in captured.out
