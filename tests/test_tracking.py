"""`--tracking=mlflow`: train, tune and compress log to a real `mlflow server` on localhost and
to MLflow's default local store, and the runs are found with `mlflow.search_runs` with their
params, metrics (those of metrics.json and history.csv) and artifacts.

CPU, measured in one process that had TensorFlow loaded: the server's start and stop about
9-10 s (its own processes); the tiny training run and its logging 3-5 s (it also imports
MLflow), logged once more to the local store; the 2-trial search 3 s; the PTQ compression 2 s.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import RECIPES_FOR_TESTS
from trainer import cli
from trainer.runs import read_history

RECIPE = str(RECIPES_FOR_TESTS / "tiny_tracked.py")


class LazyMlflow:
    """MLflow (the test extra installs it), imported on first use so that collecting this
    file costs nothing."""

    def __getattr__(self, name: str):
        import mlflow as module

        return getattr(module, name)


mlflow = LazyMlflow()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """A real `mlflow server` on a free localhost port with its own sqlite store and artifact
    folder; yields its URI once /health answers, and stops it after the module."""
    from trainer.processes import free_port

    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    log = open(folder / "server.log", "w")
    # Without MLflow's job runner (GenAI jobs): it starts a dozen worker processes.
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        command, cwd=folder, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        # Wait for the event (the server answering), bounded; a dead server fails at once.
        for _ in range(600):
            if _answers(f"{uri}/health"):
                break
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited {process.returncode}: {log_tail(folder)}")
            try:
                process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        else:
            pytest.fail(f"mlflow server did not answer /health: {log_tail(folder)}")
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def log_tail(folder: Path) -> str:
    return (folder / "server.log").read_text()[-2000:]


@pytest.fixture
def tracking_uri(server, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    return server


@pytest.fixture(scope="module")
def server_run(server, tmp_path_factory) -> Path:
    """The tiny recipe trained once with --tracking=mlflow against the server."""
    run_dir = tmp_path_factory.mktemp("server_run") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", server)
        assert cli.main(["train", RECIPE, f"--run_dir={run_dir}", "--tracking=mlflow"]) == 0
    return run_dir


def find_run(folder: Path):
    """The one MLflow run whose trainer.folder tag is `folder`, as a search_runs row."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`trainer.folder` = '{folder.resolve()}'",
    )
    assert len(runs) == 1, runs
    return runs.iloc[0]


def artifact_names(run_id: str) -> set[str]:
    return {item.path for item in mlflow.MlflowClient().list_artifacts(run_id)}


def check_logged_run(run_dir: Path) -> None:
    """The run of `run_dir`: its config as params, metrics.json's numbers and each epoch of
    history.csv as metrics, its tags and artifacts."""
    row = find_run(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert row["status"] == "FINISHED"
    assert row["params.epochs"] == "2" and row["params.learning_rate"] == "0.01"
    for key in ("test_accuracy", "val_accuracy", "parameters", "epochs", "train_seconds"):
        assert row[f"metrics.{key}"] == pytest.approx(metrics[key]), key
    export = metrics["exports"][0]
    assert row["metrics.exports/float32/accuracy"] == pytest.approx(export["accuracy"])
    history = read_history(run_dir / "history.csv")
    logged = mlflow.MlflowClient().get_metric_history(row["run_id"], "loss")
    assert [(point.step, point.value) for point in logged] == [
        (epoch, pytest.approx(value)) for epoch, value in enumerate(history["loss"], start=1)
    ]
    assert row["tags.recipe"] == "tiny_tracked" and row["tags.trainer.version"]
    names = artifact_names(row["run_id"])
    expected = {"report.md", "model_card.md", "metrics.json", "config.yaml"}
    expected |= {"learning_curves.png", "confusion_matrix.png", "model_float32.tflite"}
    assert expected <= names, names
    report = mlflow.artifacts.download_artifacts(run_id=row["run_id"], artifact_path="report.md")
    assert Path(report).read_text() == (run_dir / "report.md").read_text()


@pytest.mark.e2e
def test_train_logs_to_a_localhost_server(server_run, tracking_uri):
    check_logged_run(server_run)


@pytest.mark.e2e
def test_local_default_store_in_the_working_directory(server_run, tmp_path, monkeypatch):
    """Without MLFLOW_TRACKING_URI a run goes to MLflow's default store in the working folder.
    The shared run is logged there by `log_run`, what `--tracking=mlflow` calls once a run
    ends (the test above shows the command's wiring); a run of its own would cost 3-5 s."""
    from trainer.tracking import log_run

    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    log_run(server_run)
    assert (tmp_path / "mlflow.db").is_file()  # MLflow's default store, in the cwd
    check_logged_run(server_run)


@pytest.mark.e2e
def test_tune_logs_one_nested_run_per_trial(tracking_uri, tmp_path):
    tune_dir = tmp_path / "tune"
    arguments = ["tune", RECIPE, "--tuner=grid", "--max_trials=2", "--max_epochs=1"]
    assert cli.main([*arguments, f"--tune_dir={tune_dir}", "--tracking=mlflow"]) == 0
    parent = find_run(tune_dir)
    assert parent["params.tuner"] == "grid" and parent["metrics.trials"] == 2
    assert {"trials.csv", "report.md"} <= artifact_names(parent["run_id"])
    children = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'",
    )
    assert sorted(children["params.learning_rate"]) == ["0.003", "0.03"]
    assert children["metrics.val_accuracy"].notna().all()
    assert parent["metrics.best_val_accuracy"] == pytest.approx(children["metrics.score"].max())


@pytest.mark.e2e
def test_compress_logs_its_folder(server_run, tracking_uri, tmp_path):
    out_dir = tmp_path / "compressed"
    arguments = ["compress", str(server_run), "--method=ptq", f"--out_dir={out_dir}"]
    assert cli.main([*arguments, "--tracking=mlflow"]) == 0
    row = find_run(out_dir)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert row["params.method"] == "ptq" and row["params.run_dir"] == str(server_run)
    reference = row["metrics.reference_test_accuracy"]
    assert reference == pytest.approx(metrics["reference_test_accuracy"])
    assert {"report.md", "model_compressed.tflite"} <= artifact_names(row["run_id"])


def test_without_mlflow_the_option_fails_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what find_spec reports when missing
    run_dir = tmp_path / "run"
    assert cli.main(["train", RECIPE, f"--run_dir={run_dir}", "--tracking=mlflow"]) == 2
    assert "pip install 'trainer[mlflow]'" in capsys.readouterr().err
    assert not run_dir.exists()


def test_a_server_that_does_not_answer_fails_before_any_work(tmp_path, monkeypatch, capsys):
    from trainer.processes import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    assert cli.main(["tune", RECIPE, f"--tune_dir={tmp_path}/t", "--tracking=mlflow"]) == 2
    assert "does not answer" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_an_unknown_backend_is_refused(capsys):
    assert cli.main(["compress", "runs/x", "--tracking=wandb"]) == 2
    assert "--tracking must be one of none, mlflow" in capsys.readouterr().err
