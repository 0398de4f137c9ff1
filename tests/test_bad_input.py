"""Bad input and faults (issue 11): each ends as the right behaviour or one paragraph, no traceback.

A tiny recipe (tests/recipes_for_tests/tiny_regression.py), copied into each test's folder,
trains a two-layer regression model in a fraction of a second; `--stop_after_batches=N` raises
KeyboardInterrupt mid-epoch to leave a run folder as a killed run leaves it (config.yaml,
run.json, history and a backup).
"""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import RECIPES_FOR_TESTS, train_command
from trainer import cli
from trainer.runs import BACKUP_DIR, CONFIG_FILE, read_history, read_run_info


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    """The recipe as a user's own file in the test's folder (a run records its path)."""
    return Path(shutil.copy(RECIPES_FOR_TESTS / "tiny_regression.py", tmp_path / "tiny_recipe.py"))


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("TRAINER_DEBUG", raising=False)


def _killed_run(capsys, recipe: Path, run_dir: Path) -> None:
    """A run folder as `kill -9` in epoch 2 leaves it: config, run.json, history, backup."""
    code, output = train_command(capsys, recipe, f"--run_dir={run_dir}", "--stop_after_batches=6")
    assert code == 130 and f"trainer train --resume={run_dir}" in output, output
    assert not (run_dir / "metrics.json").exists() and (run_dir / BACKUP_DIR).is_dir()


@pytest.mark.parametrize(
    ("option", "phrase"),
    [
        ("--epochs=0", "epochs must be >= 1, received 0"),
        ("--epochs=-1", "epochs must be >= 1, received -1"),
        ("--epochs=abc", "epochs expects int, received 'abc'"),
        ("--width=-5", "width must be >= 1"),
        ("--dropout=1.5", "dropout must be in [0, 1], received 1.5"),
        ("--dropout=nan", "dropout must be a finite number, received nan"),
        ("--train_limit=-5", "train_limit must be >= 0, received -5"),
        ("--export=float32,int4", "export must be comma-separated, each one of float32, int8"),
        ("--config=", "names no file"),
        ("--config={tmp}", "is a folder; pass a YAML or JSON file"),
        ("--config={tmp}/latin1.yaml", "is not UTF-8 text"),
        ("--config={tmp}/missing.yaml", "does not exist"),
    ],
)
def test_bad_option_exits_2_before_any_work(recipe, tmp_path, capsys, option, phrase):
    (tmp_path / "latin1.yaml").write_bytes("epochs: 2  # caf\xe9\n".encode("latin-1"))
    run_dir = tmp_path / "run"
    code, output = train_command(
        capsys, recipe, option.format(tmp=tmp_path), f"--run_dir={run_dir}"
    )
    assert code == 2 and phrase in output, output
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("recipe.txt", "hello", "is not a .py file"),
        ("broken.py", "def main(:\n", "has a syntax error at line 1"),
        ("missing.py", None, "does not exist"),
        ("no_config.py", "def main(config):\n    return {}\n", "has no `Config`"),
    ],
)
def test_bad_recipe_file_exits_2(tmp_path, capsys, name, content, phrase):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, output = train_command(capsys, path)
    assert code == 2 and phrase in output, output


def _fail_writing(error):
    def save_config(config, path):
        raise error

    return save_config


@pytest.mark.parametrize(
    ("fault", "phrase"),
    [
        ("under_file", "is a file, not a folder"),
        ("is_file", "is a file, not a folder"),
        ("read_only", "cannot write"),
        ("disk_full", "the disk is full"),
        ("tf_disk_full", "out of memory or disk space"),
    ],
)
def test_run_dir_faults_exit_1_with_the_path(recipe, tmp_path, capsys, monkeypatch, fault, phrase):
    import tensorflow as tf

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run_dir = {"under_file": blocker / "run", "is_file": blocker}.get(fault, tmp_path / "run")
    faults = {
        "read_only": OSError(errno.EROFS, "Read-only file system", str(run_dir / CONFIG_FILE)),
        "disk_full": OSError(errno.ENOSPC, "No space left on device", str(run_dir / CONFIG_FILE)),
        "tf_disk_full": tf.errors.ResourceExhaustedError(None, None, "no space left writing x"),
    }
    if fault in faults:
        monkeypatch.setattr("trainer.runs.save_config", _fail_writing(faults[fault]))
    code, output = train_command(capsys, recipe, f"--run_dir={run_dir}")
    assert code == 1 and phrase in output, output
    assert str(blocker if fault in ("under_file", "is_file") else run_dir) in output
    assert blocker.read_text() == "not a folder"
    if fault in faults:
        assert not run_dir.exists()  # the half-made folder was removed


def test_debug_shows_the_traceback(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINER_DEBUG", "1")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError):
        cli.main(["train", str(recipe), f"--run_dir={blocker / 'run'}"])


def test_failure_before_training_leaves_no_folder(recipe, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, output = train_command(capsys, recipe, f"--run_dir={run_dir}", "--fail_before_training")
    assert code == 1 and "failing on purpose before training" in output
    assert not run_dir.exists()


def test_failure_after_training_keeps_the_run_and_says_how_to_resume(recipe, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, output = train_command(capsys, recipe, f"--run_dir={run_dir}", "--fail_after_training")
    assert code == 1 and "failing on purpose after training" in output
    assert f"continue with `trainer train --resume={run_dir}`" in output
    code, output = train_command(capsys, f"--resume={run_dir}", "--fail_after_training=false")
    assert code == 0, output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["iterations"] == 12  # nothing trained twice


def test_run_dir_inside_the_data_is_refused(recipe, tmp_path, capsys):
    data = tmp_path / "images"
    (data / "cat").mkdir(parents=True)
    code, output = train_command(capsys, recipe, f"--data={data}", f"--run_dir={data / 'myrun'}")
    assert code == 1 and "is inside the data source --data=" in output, output
    assert sorted(path.name for path in data.iterdir()) == ["cat"]


def test_new_run_into_a_killed_runs_folder_is_refused_and_resume_finishes_it(
    recipe, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    _killed_run(capsys, recipe, run_dir)
    saved = (run_dir / CONFIG_FILE).read_text()

    code, output = train_command(capsys, recipe, f"--run_dir={run_dir}", "--width=16")
    assert code == 1 and "holds another run" in output and f"--resume={run_dir}" in output
    assert (run_dir / CONFIG_FILE).read_text() == saved

    code, output = train_command(capsys, f"--resume={run_dir}", "--width=16", "--export=int8")
    assert code == 2 and "--resume cannot change width" in output, output
    assert "export, backup_every, stop_after_batches, fail_after_training" in output
    assert (run_dir / CONFIG_FILE).read_text() == saved

    code, output = train_command(
        capsys, f"--resume={run_dir}", "--export=int8", "--stop_after_batches=0"
    )
    assert code == 0, output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # 3 epochs of 4 batches: the interrupted run's steps are kept, none repeated.
    assert metrics["epochs"] == 3 and metrics["iterations"] == 12 and metrics["export"] == "int8"
    assert "export: int8" in (run_dir / CONFIG_FILE).read_text()
    assert len(read_history(run_dir / "history.csv")["loss"]) == 3


def test_a_run_saved_with_a_bad_export_format_can_be_finished(recipe, tmp_path, capsys):
    # Before the rules, `--export=float32,int4` was refused only after training, and a resume
    # took no overrides, so such a run could never finish.
    run_dir = tmp_path / "run"
    _killed_run(capsys, recipe, run_dir)
    config = run_dir / CONFIG_FILE
    config.write_text(config.read_text().replace("export: float32", "export: float32,int4"))
    code, output = train_command(capsys, f"--resume={run_dir}", "--stop_after_batches=0")
    assert code == 2 and "export must be comma-separated" in output, output
    code, output = train_command(
        capsys, f"--resume={run_dir}", "--stop_after_batches=0", "--export=int8"
    )
    assert code == 0, output
    assert json.loads((run_dir / "metrics.json").read_text())["iterations"] == 12


def _truncate_data(pointer: Path) -> None:
    data = sorted(pointer.parent.glob("*.data-*"))[-1]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        (_truncate_data, "reading"),
        (lambda pointer: [path.unlink() for path in pointer.parent.glob("*.data-*")], "reading"),
        (lambda pointer: [path.unlink() for path in pointer.parent.glob("*.index")], "missing"),
        (lambda pointer: pointer.write_text("garbage !!"), "checkpoint"),
        (lambda pointer: pointer.unlink(), "pointer file is missing"),
    ],
    ids=["truncated", "data_missing", "index_missing", "garbage_pointer", "pointer_missing"],
)
def test_broken_backup_is_reported_and_restart_trains_again(
    recipe, tmp_path, capsys, damage, phrase
):
    run_dir = tmp_path / "run"
    _killed_run(capsys, recipe, run_dir)
    damage(next((run_dir / BACKUP_DIR).rglob("checkpoint")))
    code, output = train_command(capsys, f"--resume={run_dir}", "--stop_after_batches=0")
    assert code == 1 and "is broken" in output and phrase in output, output
    assert f"trainer train --resume={run_dir} --restart" in output

    code, output = train_command(
        capsys, f"--resume={run_dir}", "--restart", "--stop_after_batches=0"
    )
    assert code == 0 and "restarting" in output, output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["iterations"] == 12
    history = (run_dir / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]  # one run, not two


def test_training_seconds_add_up_across_sessions(recipe, tmp_path, capsys):
    run_dir = tmp_path / "run"
    _killed_run(capsys, recipe, run_dir)
    from trainer.runs import add_training_seconds

    assert add_training_seconds(run_dir, 2.0) == 2.0  # the killed session's time
    assert train_command(capsys, f"--resume={run_dir}", "--stop_after_batches=0")[0] == 0
    assert json.loads((run_dir / "metrics.json").read_text())["training_seconds"] == 3.5
    assert read_run_info(run_dir)["training_seconds"] == 3.5


def test_written_files_get_normal_permissions(tmp_path):
    from trainer.files import atomic_save, atomic_write_text

    previous = os.umask(0o022)
    try:
        text = atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
        saved = atomic_save(tmp_path / "model.bin", lambda path: path.write_bytes(b"x"))
    finally:
        os.umask(previous)
    assert oct(text.stat().st_mode & 0o777) == oct(0o644)
    assert oct(saved.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.yaml", "model.bin"]


def _tf_error(kind: str):
    import tensorflow as tf

    return getattr(tf.errors, kind)(None, None, "could not open /data/x.tfrecord: truncated")


@pytest.mark.parametrize(
    ("make_error", "code", "phrase"),
    [
        (
            lambda: OSError(errno.EROFS, "Read-only file system", "/ro/run"),
            1,
            "cannot write /ro/run",
        ),
        (
            lambda: OSError(errno.ENOSPC, "No space left on device", "/full/m.keras"),
            1,
            "the disk is full (writing /full/m.keras)",
        ),
        (
            lambda: NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/run"),
            1,
            "/f/run: a part of this path is a file",
        ),
        (lambda: OSError("Unable to open file (truncated file: eof = 10)"), 1, "may be truncated"),
        (
            lambda: UnicodeDecodeError("utf-8", b"caf\xe9", 3, 4, "invalid byte"),
            1,
            "not valid UTF-8",
        ),
        (lambda: _tf_error("ResourceExhaustedError"), 1, "out of memory or disk space"),
        (lambda: _tf_error("DataLossError"), 1, "could not open /data/x.tfrecord"),
        (lambda: ValueError("bad IDX header in /d/x.gz"), 1, "bad IDX header in /d/x.gz"),
        (lambda: KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=[
        "read_only",
        "disk_full",
        "not_a_dir",
        "h5py_truncated",
        "unicode",
        "tf_exhausted",
        "tf_op_error",
        "value_error",
        "ctrl_c",
    ],
)
def test_every_command_prints_one_paragraph(capsys, monkeypatch, make_error, code, phrase):
    """The boundary in `trainer.cli.main` covers every command, present and future."""
    import trainer.cli.export  # noqa: F401  (patched below)

    def run(argv):
        raise make_error()

    monkeypatch.setattr("trainer.cli.export.run", run)
    assert cli.main(["export", "anything"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and phrase in err and err.startswith("trainer export: error:")
    assert len(err.strip().splitlines()) == 1  # one paragraph
    monkeypatch.setenv("TRAINER_DEBUG", "1")
    with pytest.raises(BaseException) as raised:
        cli.main(["export", "anything"])
    assert type(raised.value) is type(make_error())


def test_an_unexpected_error_keeps_its_traceback(monkeypatch):
    import trainer.cli.export  # noqa: F401  (patched below)

    monkeypatch.setattr("trainer.cli.export.run", lambda argv: [][1])
    with pytest.raises(IndexError):
        cli.main(["export", "anything"])  # a bug, not a user's mistake: shown in full
