"""Runs that make no usable model fail (issue 26, item 4), and a user's recipe fails as one
paragraph naming its file and line (item 5); resuming never uses another recipe or config.

One diverged run (tests/recipes_for_tests/tiny_bars.py, 1 epoch at learning rate 1e30: NaN
weights) is shared by the tests that read its folder; everything else calls functions on tiny
models, or runs a tiny regression recipe for a fraction of a second.
"""

import contextlib
import io
import json
import math
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from conftest import RECIPES_FOR_TESTS, train_command
from trainer import cli
from trainer.runs import CONFIG_FILE, METRICS_FILE, RUN_INFO_FILE


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("TRAINER_DEBUG", raising=False)


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """A run whose weights became NaN in its only epoch (about 3 s of CPU): (folder, code,
    output)."""
    run_dir = tmp_path_factory.mktemp("diverged") / "run"
    recipe = RECIPES_FOR_TESTS / "tiny_bars.py"
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = cli.main(
            ["train", str(recipe), "--learning_rate=1e30", "--epochs=1", f"--run_dir={run_dir}"]
        )
    return run_dir, code, output.getvalue()


def test_a_diverged_run_exits_1_keeps_its_folder_and_says_how_to_continue(diverged):
    run_dir, code, output = diverged
    assert code == 1, output
    assert "Traceback" not in output
    assert "the run failed: the model diverged" in output and "NaN or infinite" in output
    assert "Lower --learning_rate (this run used 1e+30" in output
    assert f"trainer train --resume={run_dir} --restart --learning_rate=..." in output
    assert "--allow_chance" not in output  # divergence cannot be waved through
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert metrics["failed"].startswith("the model diverged") and metrics["exports"] == []
    assert "## RUN FAILED" in (run_dir / "report.md").read_text()
    assert (run_dir / "model.keras").is_file()
    assert not list(run_dir.glob("*.tflite"))  # nothing that could be shipped


def test_a_failed_run_resumes_only_with_restart(diverged, capsys):
    run_dir = diverged[0]
    info = (run_dir / RUN_INFO_FILE).read_bytes()
    code, output = train_command(capsys, f"--resume={run_dir}")
    assert code == 2 and "failed (the model diverged" in output, output
    assert f"trainer train --resume={run_dir} --restart" in output
    assert (run_dir / RUN_INFO_FILE).read_bytes() == info


def test_restart_of_a_failed_run_discards_its_outcome_and_may_change_options(diverged, tmp_path):
    from trainer.runs import discard_training_state, failed_run, resume_arguments

    run_dir = Path(shutil.copytree(diverged[0], tmp_path / "run"))
    assert failed_run(run_dir).startswith("the model diverged")
    recipe, options = resume_arguments(run_dir, restart=True)
    assert recipe == str((RECIPES_FOR_TESTS / "tiny_bars.py").resolve())
    assert options == [f"--config={run_dir / CONFIG_FILE}", f"--run_dir={run_dir}"]
    discard_training_state(run_dir)
    left = {path.name for path in run_dir.iterdir()}
    assert {CONFIG_FILE, RUN_INFO_FILE} <= left
    assert not left & {METRICS_FILE, "report.md", "model.keras", "history.csv"}
    assert failed_run(run_dir) == ""


def _untrained(inputs: int = 4):
    """Every class scores the same: at chance level, every answer a tie."""
    model = keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(3, kernel_initializer="zeros")]
    )
    model.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


def _experiment(model):
    from trainer.experiment import Experiment

    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    return Experiment(
        model=model,
        train=None,
        x_test=x,
        y_test=y,
        class_names=["a", "b", "c"],
        representative=x[:10],
        export_formats=("float32",),
    )


def test_a_model_at_chance_fails_the_run(tmp_path, capsys):
    from trainer.experiment import FitResult, RunFailedError, finish

    fit = FitResult(history={"loss": [1.1, 1.1]}, seconds=0.0, cpu_seconds=0.0)
    with pytest.raises(RunFailedError) as failed:
        finish(_experiment(_untrained()), tmp_path / "failed", fit)
    message = str(failed.value)
    assert "the model did not learn: test accuracy 33.3% is at chance level" in message
    assert "add --allow_chance=true" in message and "--restart" in message
    assert json.loads((tmp_path / "failed" / METRICS_FILE).read_text())["at_chance"] is True
    assert not list((tmp_path / "failed").glob("*.tflite"))
    assert "WARNING" in capsys.readouterr().out
    # allow_chance=True finishes it: tests/test_mobile_export.py, a model at chance.


def test_a_loss_far_above_chance_level_says_lower_the_learning_rate(tmp_path):
    """`trainer train digits --learning_rate=1e3`: the loss jumped to thousands, then came back
    near chance level, and the model ended at chance."""
    from trainer.experiment import FitResult, _failure_message

    experiment = _experiment(_untrained())
    failure = "the model did not learn: test accuracy 33.3% is at chance level"
    jumped = FitResult(history={"loss": [5209.9, 2.46]}, seconds=0.0, cpu_seconds=0.0)
    message = _failure_message(experiment, tmp_path, jumped, failure, allow_chance=False)
    assert "The training loss reached 5210 (a model that knows nothing scores 1.10): lower " in (
        message
    )
    calm = FitResult(history={"loss": [1.2, 1.1]}, seconds=0.0, cpu_seconds=0.0)
    message = _failure_message(experiment, tmp_path, calm, failure, allow_chance=True)
    assert "See the fit diagnosis in the report" in message and "--allow_chance" not in message


def test_allow_chance_is_an_option_of_the_command_not_of_the_recipe(tmp_path, capsys):
    """`--allow_chance=true` reaches `finish` through `trainer train`, whatever the recipe."""
    recipe = tmp_path / "chance_recipe.py"
    recipe.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from trainer.experiment import chance_allowed


            @dataclass
            class Config:
                run_dir: str = ""


            def main(config):
                print(f"chance allowed: {chance_allowed()}")
                return {}
            """
        )
    )
    code, output = train_command(capsys, recipe, "--allow_chance=true")
    assert code == 0 and "chance allowed: True" in output
    code, output = train_command(capsys, recipe)
    assert code == 0 and "chance allowed: False" in output
    code, output = train_command(capsys, recipe, "--allow_chance=maybe")
    assert code == 2 and "allow_chance" in output


def _nan_model():
    model = _untrained()
    model.set_weights([np.full_like(weight, np.nan) for weight in model.get_weights()])
    return model


def test_a_file_with_nan_outputs_is_never_within_budget(tmp_path):
    from trainer.export.verify import ExportResult, export_and_verify

    numbers = dict(path="m.tflite", size_bytes=1, gzip_bytes=1, latency_ms=1.0, latency_threads=1)
    fine = ExportResult(
        "float32", accuracy=0.5, keras_accuracy=0.5, drop_pp=0.0, budget_pp=0.1, **numbers
    )
    assert fine.within_budget
    nan_diff = ExportResult(
        "float32", accuracy=0.5, keras_accuracy=0.5, drop_pp=0.0, budget_pp=0.1,
        max_abs_diff=math.nan, **numbers,
    )  # fmt: skip
    assert not nan_diff.within_budget and nan_diff.to_dict()["within_budget"] is False

    experiment = _experiment(_nan_model())
    (result,) = export_and_verify(
        experiment.model, experiment.x_test, experiment.y_test, 1 / 3, ["float32"], tmp_path
    )
    assert result.finite_outputs is False and result.drop_pp == 0.0
    assert result.within_budget is False
    sidecar = json.loads(Path(result.sidecar_path).read_text())
    assert sidecar["verification"]["within_budget"] is False


def test_a_compress_candidate_with_nan_outputs_is_marked(tmp_path):
    from trainer.compress.files import CandidateFiles

    experiment = _experiment(_nan_model())
    experiment.x_val, experiment.y_val = experiment.x_test, experiment.y_test
    files = CandidateFiles(
        experiment.model,
        experiment,
        "float32",
        tmp_path,
        experiment.model.predict(experiment.x_test, verbose=0),
        references=(1 / 3, 1 / 3),
    )
    candidate = files.measure("original", "", experiment.model, "float32", started=0.0)
    assert candidate.finite_outputs is False


# -- user recipes ---------------------------------------------------------------------------

RECIPE = """\
from dataclasses import dataclass


@dataclass
class Config:
    run_dir: str = ""


def build(config):
    settings = {{}}
    return settings["model"]


def main(config):
{body}
"""


@pytest.mark.parametrize(
    ("name", "text", "line", "error"),
    [
        ("import_error.py", "import not_a_module_anywhere\n", 1, "ModuleNotFoundError"),
        ("name_error.py", "from dataclasses import dataclass\n\nConfig = Confg\n", 3, "NameError"),
    ],
)
def test_a_recipe_that_fails_to_import_is_named_with_its_line(
    tmp_path, capsys, name, text, line, error
):
    recipe = tmp_path / name
    recipe.write_text(text)
    code, output = train_command(capsys, recipe, f"--run_dir={tmp_path / 'run'}")
    assert code == 2, output
    assert f"recipe {recipe}, line {line} (<module>), raised {error} while it was imported" in (
        output
    )
    assert len(output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("body", "where", "error"),
    [
        ("    return undefined_helper(config)", "line 15 (main)", "NameError"),
        ("    return build(config)", "line 11 (build)", "KeyError: 'model'"),
        ("    raise RuntimeError('no data here')", "line 15 (main)", "RuntimeError"),
    ],
)
def test_a_recipe_whose_main_raises_is_named_with_its_line(tmp_path, capsys, body, where, error):
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text(RECIPE.format(body=body))
    code, output = train_command(capsys, recipe, f"--run_dir={tmp_path / 'run'}")
    assert code == 1, output
    assert f"recipe {recipe}, {where}, raised {error.split(':')[0]}" in output, output
    assert "while running main(config)" in output and "Fix the recipe" in output


def test_an_error_raised_inside_trainer_is_not_blamed_on_the_recipe(tmp_path):
    """An AttributeError from trainer's own code (here `validation_dataset` given None) is
    trainer's to fix: re-raised with its traceback, as before."""
    body = "    from trainer.experiment import validation_dataset\n    validation_dataset(None)"
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text(RECIPE.format(body=body))
    with pytest.raises(AttributeError, match="x_val"):
        cli.main(["train", str(recipe), f"--run_dir={tmp_path / 'run'}"])


def test_a_recipes_own_value_error_keeps_its_message(tmp_path, capsys):
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text(RECIPE.format(body="    raise ValueError('no images in the folder')"))
    code, output = train_command(capsys, recipe, f"--run_dir={tmp_path / 'run'}")
    assert code == 1 and "error: no images in the folder" in output, output
    assert "Fix the recipe" not in output


def test_trainer_debug_shows_the_recipe_traceback(tmp_path, monkeypatch):
    from trainer.recipe_loader import RecipeError

    recipe = tmp_path / "my_recipe.py"
    recipe.write_text(RECIPE.format(body="    return undefined_helper(config)"))
    monkeypatch.setenv("TRAINER_DEBUG", "1")
    with pytest.raises(RecipeError) as raised:
        cli.main(["train", str(recipe), f"--run_dir={tmp_path / 'run'}"])
    assert isinstance(raised.value.__cause__, NameError)


@pytest.mark.parametrize("name", ["json", "trainer", "numpy"])
def test_a_recipe_named_like_a_module_is_refused(tmp_path, capsys, name):
    real = sys.modules.get(name)
    recipe = tmp_path / f"{name}.py"
    recipe.write_text(RECIPE.format(body="    return {}"))
    code, output = train_command(capsys, recipe)
    assert code == 2 and f"is named like the module `{name}`" in output, output
    assert f"rename the file, e.g. to my_{name}.py" in output
    assert sys.modules.get(name) is real


def _user_run(folder: Path, run_dir: Path) -> Path:
    """A run folder made by a user's recipe `folder/digits.py` (named like a built-in)."""
    from trainer.recipe_loader import load_recipe
    from trainer.runs import create_run_dir

    folder.mkdir(parents=True, exist_ok=True)
    recipe = folder / "digits.py"
    recipe.write_text(RECIPE.format(body="    return {}") + "\nUSER_RECIPE = True\n")
    module = load_recipe(str(recipe))
    create_run_dir("digits", module.Config(run_dir=str(run_dir)), run_dir)
    return recipe


def test_a_user_recipe_in_a_folder_named_recipes_is_not_the_built_in_one(tmp_path):
    from trainer.recipe_loader import load_run_recipe
    from trainer.runs import resume_recipe

    recipe = _user_run(tmp_path / "recipes", tmp_path / "run")
    assert resume_recipe(tmp_path / "run") == str(recipe.resolve())
    module, config = load_run_recipe(tmp_path / "run", "export it")
    assert getattr(module, "USER_RECIPE", False) and Path(module.__file__) == recipe
    assert config.run_dir == str(tmp_path / "run")


def test_resume_of_a_run_whose_recipe_file_is_gone_fails_and_keeps_run_json(tmp_path, capsys):
    run_dir = tmp_path / "run"
    recipe = _user_run(tmp_path / "mine", run_dir)
    recipe.unlink()
    info = (run_dir / RUN_INFO_FILE).read_bytes()
    code, output = train_command(capsys, f"--resume={run_dir}")
    assert code == 2 and f"names the recipe file {recipe.resolve()}, which no longer" in output
    assert "never uses another recipe, even a built-in one" in output
    assert "resuming" not in output and (run_dir / RUN_INFO_FILE).read_bytes() == info


def test_resume_after_an_edited_config_names_the_field(tmp_path, capsys):
    recipe = Path(shutil.copy(RECIPES_FOR_TESTS / "tiny_regression.py", tmp_path / "tiny.py"))
    run_dir = tmp_path / "run"
    code, output = train_command(capsys, recipe, f"--run_dir={run_dir}", "--stop_after_batches=6")
    assert code == 130, output
    config = run_dir / CONFIG_FILE
    config.write_text(config.read_text().replace("width: 4", "width: 8"))
    code, output = train_command(capsys, f"--resume={run_dir}", "--stop_after_batches=0")
    assert code == 2 and "was edited after the run started (width was 4, now 8)" in output
    assert f"trainer train --resume={run_dir} --restart" in output
    code, output = train_command(
        capsys, f"--resume={run_dir}", "--restart", "--stop_after_batches=0"
    )
    assert code == 0 and "restarting" in output, output
    assert json.loads((run_dir / METRICS_FILE).read_text())["epochs"] == 3


def test_a_recipe_whose_build_raises_is_named_by_other_commands_too(tmp_path, capsys):
    """lr-find (like compress and export, which rebuild a run) calls `build` itself."""
    recipe = tmp_path / "my_recipe.py"
    recipe.write_text(RECIPE.format(body="    return {}"))
    code = cli.main(["lr-find", str(recipe), f"--out={tmp_path / 'lr.png'}"])
    output = capsys.readouterr().err
    assert code == 1 and "Traceback" not in output, output
    assert f"recipe {recipe}, line 11 (build), raised KeyError in build(config) (to sweep" in output


def test_resume_of_a_run_in_its_default_folder_is_not_an_edited_config(
    tmp_path, capsys, monkeypatch
):
    """config.yaml keeps `run_dir: ''` when the run chose its folder; --resume sets it."""
    recipe = Path(shutil.copy(RECIPES_FOR_TESTS / "tiny_regression.py", tmp_path / "tiny.py"))
    monkeypatch.chdir(tmp_path)
    assert train_command(capsys, recipe, "--stop_after_batches=6")[0] == 130
    (run_dir,) = (tmp_path / "runs").iterdir()
    code, output = train_command(capsys, f"--resume={run_dir}", "--stop_after_batches=0")
    assert code == 0 and "edited" not in output, output
