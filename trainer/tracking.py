"""Experiment tracking: `--tracking=mlflow` logs what a command wrote to an MLflow server.

`trainer train`, `trainer tune` and `trainer compress` take `--tracking=mlflow` (default
`none`). The command runs as it always does; its folder is then logged as one MLflow run:
the resolved config as params, each epoch of `history.csv` as a metric step, the numbers of
`metrics.json` as metrics (nested entries flattened to `exports/float32/accuracy`), tags (the
recipe, the git commit of the working directory when it is a git work tree, the trainer
version, the folder) and, as artifacts, the files a person opens: `report.md`,
`model_card.md`, `metrics.json`, `config.yaml`, the PNG plots, the `.tflite` files and their
sidecar JSON. A search is a parent run (its options, `trials.csv`, report and plots) with one
nested run per trial (the trial's values, its per-epoch metrics from keras-tuner's
`trial.json`) and one for the `--final` run. A run that fails after its folder was made is
logged with status FAILED.

Where to: MLflow's own settings, `MLFLOW_TRACKING_URI` (a server such as
`http://localhost:5000`, or a local store), else MLflow's default local store in the working
directory; `MLFLOW_EXPERIMENT_NAME` or `MLFLOW_EXPERIMENT_ID`, else the Default experiment.
Everything is checked before any work: an unknown backend, MLflow not installed ("pip install
'trainer[mlflow]'") or a tracking server that does not answer is a `ConfigError`.

MLflow is an optional extra and is imported only inside this module's logging functions, so
`import trainer` and commands without `--tracking` never load it. Logging reads the folders a
command wrote; it must not train, evaluate or change them.

Example (not run: needs a trained run folder):

    from trainer.tracking import log_run
    run_id = log_run("runs/fashion_mnist-20261125-131500")
    import mlflow
    print(mlflow.search_runs(filter_string=f"attributes.run_id = '{run_id}'"))
"""

import dataclasses
import getpass
import importlib.util
import json
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainer.config import ConfigError

BACKENDS = ("none", "mlflow")
INSTALL_HINT = "pip install 'trainer[mlflow]'"
# The line each command's --help adds for the option.
TRACKING_HELP = (
    "  --tracking=none|mlflow  log what the command wrote to MLflow (MLFLOW_TRACKING_URI, else "
    "MLflow's local store in this folder; docs/tracking.md) [none]"
)
# Files logged as artifacts, by name pattern, from the top of a folder (not its
# subfolders: compress's candidates/ and a search's keras_tuner/ stay out).
ARTIFACT_PATTERNS = (
    "report.md",
    "model_card.md",
    "metrics.json",
    "config.yaml",
    "data_report.md",
    "label_issues.csv",
    "trials.csv",
    "trials.md",
    "best.yaml",
    "tune.yaml",
    "auto.yaml",
    "*.png",
    "*.tflite",
    "model_*.json",
)
# MLflow's log_batch limits per request.
_BATCH = {"metrics": 1000, "params": 100, "tags": 100}
_MAX_PARAM_LENGTH = 6000


def split_tracking_option(argv: list[str]) -> tuple[str, list[str]]:
    """Takes `--tracking=BACKEND` out of a command's arguments and checks it before any work.

    Returns (backend, the other arguments). `mlflow` needs MLflow installed and, when
    `MLFLOW_TRACKING_URI` names an http(s) server, that server answering.

    Example:
        >>> split_tracking_option(["tiny", "--epochs=2"])
        ('none', ['tiny', '--epochs=2'])
    """
    values = [arg.partition("=")[2] for arg in argv if arg.startswith("--tracking=")]
    rest = [arg for arg in argv if not arg.startswith("--tracking=")]
    if "--tracking" in rest:
        raise ConfigError("--tracking takes a value: --tracking=mlflow (or none)")
    if len(values) > 1:
        raise ConfigError(f"--tracking is given {len(values)} times: {', '.join(values)}")
    backend = values[0] if values else "none"
    if backend not in BACKENDS:
        raise ConfigError(f"--tracking must be one of {', '.join(BACKENDS)}, received {backend!r}")
    if backend == "mlflow":
        check_mlflow()
    return backend, rest


def check_mlflow() -> None:
    """Raises ConfigError unless MLflow is installed and its tracking server (if any) answers."""
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError(
            f"--tracking=mlflow needs MLflow, which is not installed here: {INSTALL_HINT} "
            "(or drop --tracking)"
        )
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        _check_server(uri)


def _check_server(uri: str) -> None:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=10).close()
    except urllib.error.HTTPError:
        return  # it answered (a proxy or an authenticating server may refuse /health)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ConfigError(
            f"the MLflow tracking server MLFLOW_TRACKING_URI={uri} does not answer ({reason}); "
            "start it (`mlflow server --port PORT`), fix the variable, or unset it to log to "
            "MLflow's local store in this folder"
        ) from None


def track_train(command: Callable[[], int]) -> int:
    """Runs a `trainer train` command, then logs the run folder it made (FAILED if it raised).

    A process that made no run folder (a non-chief worker of a cluster) logs nothing.
    """
    from trainer.runs import last_created_run_dir

    started = _now_ms()
    try:
        code = command()
    except BaseException:
        run_dir = last_created_run_dir()
        if run_dir is not None and run_dir.is_dir():
            print(f"mlflow: logging the failed run {run_dir}", flush=True)
            log_run(run_dir, status="FAILED", start_ms=started)
        raise
    run_dir = last_created_run_dir()
    if run_dir is not None and run_dir.is_dir():
        announce(log_run(run_dir, status="FINISHED" if code == 0 else "FAILED", start_ms=started))
    return code


def log_run(
    run_dir: str | Path,
    *,
    command: str = "train",
    status: str = "FINISHED",
    parent_run_id: str | None = None,
    start_ms: int | None = None,
) -> str:
    """Logs a run folder (config, history, metrics, tags, artifacts) as one MLflow run.

    Returns the MLflow run id. Works on any finished or failed run folder, also afterwards.
    """
    from trainer.runs import read_run_info

    run_dir = Path(run_dir)
    info = read_run_info(run_dir) if (run_dir / "run.json").is_file() else {}
    recipe = str(info.get("recipe") or "")
    content = FolderContent(
        params=_read_yaml(run_dir / "config.yaml"),
        history=_history(run_dir),
        metrics=_read_json(run_dir / "metrics.json"),
        tags={"recipe": recipe, "trainer.command": command},
        source=f"trainer {command} {recipe}".strip(),
    )
    return _log_folder(run_dir, content, status, parent_run_id, start_ms)


def log_compression(out_dir: str | Path, run_dir: str | Path, start_ms: int | None = None) -> str:
    """Logs a compression folder (`trainer compress`): its options as params, the candidates'
    scores as metrics, report, plot and `model_compressed.tflite` as artifacts."""
    from trainer.runs import read_run_info

    out_dir, run_dir = Path(out_dir), Path(run_dir)
    metrics = _read_json(out_dir / "metrics.json")
    params = dict(metrics.pop("config", {}) or {})
    params["run_dir"] = str(run_dir)
    info = read_run_info(run_dir) if (run_dir / "run.json").is_file() else {}
    recipe = str(info.get("recipe") or "")
    content = FolderContent(
        params=params,
        metrics=metrics,
        tags={"recipe": recipe, "trainer.command": "compress", "best": str(metrics.get("best"))},
        source=f"trainer compress {run_dir}",
    )
    return _log_folder(out_dir, content, "FINISHED", None, start_ms)


def log_auto(directory: str | Path, start_ms: int | None = None) -> str:
    """Logs a `trainer auto` folder as a parent run (its options as params, the winner's
    numbers as metrics; report, model card, picture and the chosen .tflite as artifacts) with
    one nested run per finalist's run folder. Returns the parent's run id."""
    directory = Path(directory)
    content = FolderContent(
        params=_read_yaml(directory / "auto.yaml"),
        metrics=_read_json(directory / "metrics.json"),
        tags={"trainer.command": "auto"},
        source=f"trainer auto {directory}",
    )
    parent = _log_folder(directory, content, "FINISHED", None, start_ms)
    for run_dir in sorted((directory / "candidates").glob("*")):
        if (run_dir / "run.json").is_file():
            failed = (run_dir / "metrics.json").is_file() and "failed" in _read_json(
                run_dir / "metrics.json"
            )
            status = "FAILED" if failed else "FINISHED"
            log_run(run_dir, command="auto", status=status, parent_run_id=parent)
    return parent


def log_search(tune_dir: str | Path, start_ms: int | None = None) -> str:
    """Logs a tuning folder as a parent run with one nested run per trial (and one for the
    `--final` run in `final/`); returns the parent's run id."""
    tune_dir = Path(tune_dir)
    options = _read_yaml(tune_dir / "tune.yaml")
    recipe = str(options.get("recipe") or "")
    params = {
        f"fixed.{key}": value for key, value in _read_yaml(tune_dir / "base_config.yaml").items()
    }
    params.update({key: value for key, value in options.items() if not isinstance(value, dict)})
    trials = list(_trials(tune_dir))
    scores = [trial.score for trial in trials if trial.score is not None]
    metrics = {"trials": len(trials), "completed_trials": len(scores)}
    if scores:
        metrics["best_val_accuracy"] = max(scores)
    content = FolderContent(
        params=params,
        metrics=metrics,
        tags={"recipe": recipe, "trainer.command": "tune"},
        source=f"trainer tune {recipe}".strip(),
    )
    parent = _log_folder(tune_dir, content, "FINISHED", None, start_ms)
    for trial in trials:
        child = FolderContent(
            params=trial.values,
            history=trial.history,
            metrics={} if trial.score is None else {"score": trial.score},
            tags={"recipe": recipe, "trainer.command": "tune", "trial": trial.trial_id},
            source=f"trainer tune {recipe} (trial {trial.trial_id})",
            name=f"{tune_dir.name}-trial-{trial.trial_id}",
        )
        status = "FINISHED" if trial.status == "COMPLETED" else "FAILED"
        _log_folder(None, child, status, parent, start_ms)
    if (tune_dir / "final" / "metrics.json").is_file():
        log_run(tune_dir / "final", command="tune --final", parent_run_id=parent, start_ms=start_ms)
    return parent


@dataclasses.dataclass
class FolderContent:
    """What one MLflow run gets: params, per-epoch history, final metrics, tags, a name."""

    params: dict[str, Any]
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    source: str = "trainer"
    name: str = ""


@dataclasses.dataclass
class _Trial:
    trial_id: str
    values: dict[str, Any]
    history: dict[str, list[float]]
    score: float | None
    status: str


def _trials(tune_dir: Path) -> Iterator[_Trial]:
    """The trials keras-tuner saved (`keras_tuner/search/trial_*/trial.json`), in order."""
    for path in sorted(tune_dir.glob("keras_tuner/*/trial_*/trial.json")):
        state = _read_json(path)
        values = (state.get("hyperparameters") or {}).get("values") or {}
        history = {}
        for name, metric in ((state.get("metrics") or {}).get("metrics") or {}).items():
            observations = sorted(metric.get("observations", []), key=lambda item: item["step"])
            history[name] = [float(_first(item["value"])) for item in observations]
        yield _Trial(
            str(state.get("trial_id", path.parent.name)),
            dict(values),
            history,
            state.get("score"),
            str(state.get("status", "")),
        )


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _log_folder(
    folder: Path | None,
    content: FolderContent,
    status: str,
    parent_run_id: str | None,
    start_ms: int | None,
) -> str:
    """Creates the MLflow run, logs `content` and the folder's artifacts, and ends it."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    now = _now_ms()
    tags = _tags(folder, content, parent_run_id)
    run = client.create_run(
        _experiment_id(client),
        start_time=start_ms or now,
        tags=tags,
        run_name=content.name or (folder.name if folder is not None else None),
    )
    run_id = run.info.run_id
    params = [Param(key, _param_text(value)) for key, value in _flat_params(content.params).items()]
    metrics = [
        Metric(key, value, now, step)
        for key, values in content.history.items()
        for step, value in enumerate(values, start=1)
        if math.isfinite(value)
    ]
    metrics += [
        Metric(key, value, now, 0)
        for key, value in flatten_metrics(content.metrics).items()
        if key not in content.history
    ]
    for chunk in _chunks(params, _BATCH["params"]):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metrics, _BATCH["metrics"]):
        client.log_batch(run_id, metrics=chunk)
    if folder is not None:
        for path in artifact_files(folder):
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status, end_time=_now_ms())
    return run_id


def artifact_files(folder: str | Path) -> list[Path]:
    """The files of `folder` logged as artifacts (`ARTIFACT_PATTERNS`), sorted, without
    duplicates.

    Example:
        >>> artifact_files("a folder that does not exist")
        []
    """
    folder = Path(folder)
    found = {path for pattern in ARTIFACT_PATTERNS for path in folder.glob(pattern)}
    return sorted(path for path in found if path.is_file())


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a `metrics.json` as MLflow metrics: nested keys joined with `/`, list
    items named by their `format`, `name` or `trial` entry (else their index), booleans as
    0/1; texts and missing values left out.

    Example:
        >>> flatten_metrics({"test_accuracy": 0.9, "at_chance": False, "class_names": ["a"],
        ...                  "exports": [{"format": "int8", "accuracy": 0.88, "path": "m.tflite"}]})
        {'test_accuracy': 0.9, 'at_chance': 0.0, 'exports/int8/accuracy': 0.88}
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = _metric_key(f"{prefix}{key}")
        if isinstance(value, bool):
            flat[name] = float(value)
        elif isinstance(value, int | float):
            if math.isfinite(value):
                flat[name] = float(value)
        elif isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    label = item.get("format") or item.get("name") or item.get("trial") or index
                    flat.update(flatten_metrics(item, f"{name}/{label}/"))
    return flat


def _flat_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flat_params(value, f"{prefix}{key}."))
        else:
            flat[_metric_key(f"{prefix}{key}")] = value
    return flat


def _metric_key(key: str) -> str:
    """MLflow keys allow letters, digits, `_ - . / :` and spaces."""
    return re.sub(r"[^\w\-./: ]", "_", key)


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM_LENGTH]


def _tags(folder: Path | None, content: FolderContent, parent_run_id: str | None) -> dict:
    import trainer

    tags = {key: value for key, value in content.tags.items() if value}
    tags.update(
        {
            "trainer.version": trainer.__version__,
            "mlflow.source.name": content.source,
            "mlflow.source.type": "LOCAL",
            "mlflow.user": _user(),
        }
    )
    if folder is not None:
        tags["trainer.folder"] = str(folder.resolve())
    commit = git_commit(Path.cwd())
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return tags


def git_commit(folder: str | Path) -> str:
    """The commit checked out in the git work tree holding `folder`, or "" when there is none
    (no git, not a work tree, no commit yet)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _experiment_id(client: Any) -> str:
    """MLflow's own choice: MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME (made if missing),
    else the Default experiment."""
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "")
    if not name:
        return "0"
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def _history(run_dir: Path) -> dict[str, list[float]]:
    from trainer.runs import HISTORY_FILE, read_history

    return read_history(run_dir / HISTORY_FILE) if (run_dir / HISTORY_FILE).is_file() else {}


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    import yaml

    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now_ms() -> int:
    return int(time.time() * 1000)


def announce(run_id: str) -> None:
    """Prints which MLflow run a command logged, and where."""
    import mlflow

    print(f"mlflow: run {run_id} logged to {mlflow.get_tracking_uri()}", flush=True)
