"""TensorBoard logs of a run, read back as TensorBoard reads them: HParams (the resolved config
and the final metrics of metrics.json), the plots as images, weight histograms only when
asked, and the graph of the saved float32 model, not the bfloat16 training graph.

One tiny mixed_bfloat16 run (tests/recipes_for_tests/tiny_tensorboard.py, 3 epochs, histograms every
2 epochs) is shared by the module; the search's trials are checked in tests/test_tuning.py.
"""

import json

import numpy as np
import pytest
import tf_keras as keras
import yaml
from tensorboard_events import Events

from conftest import RECIPES_FOR_TESTS
from trainer.config import parse_args
from trainer.recipe_loader import load_recipe
from trainer.runs import run_callbacks
from trainer.tensorboard_logging import histograms_every, hparam_value, run_metrics


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    recipe = load_recipe(str(RECIPES_FOR_TESTS / "tiny_tensorboard.py"))
    run_dir = tmp_path_factory.mktemp("tensorboard") / "run"
    config = parse_args(recipe.Config, [f"--run_dir={run_dir}", "--epochs=3"])
    try:
        with histograms_every(2):
            recipe.main(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return run_dir


@pytest.mark.e2e
def test_hparams_are_the_resolved_config_and_metrics_are_metrics_json(bf16_run):
    events = Events(bf16_run / "logs")
    config = yaml.safe_load((bf16_run / "config.yaml").read_text())
    metrics = json.loads((bf16_run / "metrics.json").read_text())
    hparams = events.hparams()
    assert sorted(hparams) == sorted(config) and "precision" in hparams
    for name, value in config.items():
        assert hparams[name] == pytest.approx(hparam_value(value)), name
    assert hparams["precision"] == "mixed_bfloat16" and hparams["epochs"] == 3
    logged = events.scalars()
    expected = run_metrics(metrics)
    assert {"test_accuracy", "val_accuracy", "test_accuracy_float32"} <= set(expected)
    assert logged == pytest.approx(expected, rel=1e-6)
    assert all(step == 3 for name in expected for step, _ in events.values(name))


@pytest.mark.e2e
def test_the_runs_plots_are_images(bf16_run):
    images = Events(bf16_run / "logs").tags("images")
    assert images == sorted(path.stem for path in bf16_run.glob("*.png"))
    assert {"confusion_matrix", "learning_curves", "per_class_accuracy"} <= set(images)
    step, image = Events(bf16_run / "logs").values("confusion_matrix")[0]
    assert step == 3 and image.shape == (3,)  # width, height, PNG bytes of one image
    assert image[2].startswith(b"\x89PNG")


@pytest.mark.e2e
def test_weight_histograms_every_two_epochs(bf16_run):
    train = Events(bf16_run / "logs" / "train")
    histograms = train.tags("histograms")
    kernels = [tag for tag in histograms if "conv2d" in tag and "kernel" in tag]
    assert kernels, histograms
    assert [step for step, _ in train.values(kernels[0])] == [0, 2]  # epochs 1 and 3
    assert not Events(bf16_run / "logs" / "validation").tags("histograms")


@pytest.mark.e2e
def test_the_graph_is_the_saved_float32_models(bf16_run):
    logs = Events(bf16_run / "logs")
    assert logs.has_graph()
    dtypes = logs.graph_dtypes()
    assert "DT_FLOAT" in dtypes and "DT_BFLOAT16" not in dtypes, dtypes
    conceptual = json.loads(logs.values("keras")[0][1].item())  # the Keras config graph
    policies = {
        json.dumps(layer["config"].get("dtype")) for layer in conceptual["config"]["layers"]
    }
    assert "mixed_bfloat16" not in str(policies) and "float32" in str(policies), policies
    # The training graph (bfloat16 here) is not logged.
    assert not Events(bf16_run / "logs" / "train").has_graph()


def test_histograms_only_when_asked_and_never_the_training_graph(tmp_path):
    def tensorboard(callbacks):
        (found,) = [c for c in callbacks if isinstance(c, keras.callbacks.TensorBoard)]
        return found

    default = tensorboard(run_callbacks(tmp_path))
    assert default.histogram_freq == 0 and not default.write_graph
    assert tensorboard(run_callbacks(tmp_path, histogram_freq=3)).histogram_freq == 3
    with pytest.raises(ValueError, match="histograms must be a number of epochs >= 0, received -1"):
        with histograms_every(-1):
            pass


def test_a_resumed_search_logs_each_trial_once(tmp_path):
    from trainer.tensorboard_logging import log_trials
    from trainer.tuning.results import TrialRecord

    first = [TrialRecord("0", {"width": 8, "rate": 0.01}, 0.75, 2, 1.0, "COMPLETED")]
    log_trials(tmp_path / "logs", first)
    failed = TrialRecord("1", {"width": 16, "rate": 0.1}, None, 1, 1.0, "FAILED", "nan")
    log_trials(tmp_path / "logs", [*first, failed])  # the search went on after a resume
    assert sorted(path.name for path in (tmp_path / "logs").iterdir() if path.is_dir()) == [
        "trial_0",
        "trial_1",
    ]
    assert len(list((tmp_path / "logs" / "trial_0").iterdir())) == 1  # one event file
    trial = Events(tmp_path / "logs" / "trial_0")
    assert trial.hparams() == {"width": 8, "rate": pytest.approx(0.01)}
    assert trial.scalars() == pytest.approx({"val_accuracy": 0.75, "epochs": 2})
    assert Events(tmp_path / "logs" / "trial_1").scalars() == {}


def test_trainer_train_takes_histograms_as_its_own_option():
    from trainer.cli.train import HELP, _train_options

    options, rest = _train_options(["digits", "--histograms=2", "--epochs=3"])
    assert options.histograms == 2 and rest == ["digits", "--epochs=3"]
    assert "--histograms=N" in HELP


def test_log_run_takes_a_subclassed_model_and_a_model_with_two_inputs(tmp_path):
    from trainer.tensorboard_logging import log_run

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    subclassed = Subclassed()
    subclassed(np.zeros((1, 3), np.float32))
    metrics = {"test_accuracy": 0.5, "val_accuracy": float("nan"), "epochs": 2}
    log_run(tmp_path / "subclassed", {"width": 8}, metrics, [], subclassed)
    logged = Events(tmp_path / "subclassed")
    assert not logged.has_graph() and logged.scalars() == {"test_accuracy": 0.5}

    first, second = keras.Input((3,), name="first"), keras.Input((2,), name="second")
    joined = keras.layers.Concatenate()([first, second])
    model = keras.Model({"first": first, "second": second}, keras.layers.Dense(2)(joined))
    log_run(tmp_path / "two", {"width": 8}, metrics, [], model)
    assert Events(tmp_path / "two").has_graph()
