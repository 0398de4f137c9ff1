"""Where commands write (issue 26): one guard for every command, and readers that skip what is
not data.

Each command is called in-process (`trainer.cli.main.main`) with an output that must be
refused, and fails at the guard before any data is read or any model trained; the data
folder (and any file that would have been replaced) is compared byte for byte before and
after. The reader tests load folders that hold what trainer itself writes (a run, a `runs`
folder, a tuning folder, a compression folder), symbolic links back into the data, and files
that are not what their extension says.
"""

import hashlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from datagen import write_image_folder
from trainer.cli.main import main
from trainer.data.sources import SourceOptions, load_source


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` (links not followed): its kind and content hash or target."""
    found = {}
    for current, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(current, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                found[str(path.relative_to(root))] = "link " + os.readlink(path)
            elif stat.S_ISREG(mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[str(path.relative_to(root))] = "file " + digest
            else:
                found[str(path.relative_to(root))] = f"mode {stat.S_IFMT(mode):o}"
    return found


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/a, photos/b, photos/c: 6 small bar PNGs each."""
    return write_image_folder(tmp_path / "photos", per_class=6, size=8)


def _refused(capsys, arguments: list[str], *expected: str) -> str:
    code = main(arguments)
    error = capsys.readouterr().err
    assert code == 1, error
    for text in expected:
        assert text in error, error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1, error
    return error


def _fake_run(folder: Path, data: Path, recipe: str = "image_classifier") -> Path:
    """A run folder as `trainer train` leaves it (config.yaml naming its data, run.json,
    model.keras, metrics.json, report.md); compress checks these before loading anything."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"data: {data}\nrun_dir: {folder}\n")
    (folder / "run.json").write_text(json.dumps({"recipe": recipe, "training_seconds": 1.0}))
    (folder / "model.keras").write_bytes(b"not loaded before the guard")
    (folder / "metrics.json").write_text('{"test_accuracy": 0.9}\n')
    (folder / "report.md").write_text("# the run's own report\n")
    return folder


def _device_or_fifo(path: Path) -> str:
    """A character device like /dev/null at `path` (a FIFO where mknod is not allowed)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        return "a character device"
    except (PermissionError, OSError):
        os.mkfifo(path)
        return "a FIFO (named pipe)"


# ------------------------------------------------------------ writes into the data


def test_data_preview_out_inside_the_data_is_refused(photos, capsys):
    before = _snapshot(photos)
    out = photos / "a" / "preview.png"
    _refused(capsys, ["data", "preview", str(photos), f"--out={out}"], "inside the data source")
    assert _snapshot(photos) == before


def test_data_check_out_inside_the_data_is_refused(photos, capsys):
    before = _snapshot(photos)
    _refused(capsys, ["data", "check", str(photos), f"--out={photos / 'b'}"], "inside the data")
    assert _snapshot(photos) == before


def test_lr_find_out_inside_the_data_is_refused(photos, capsys):
    before = _snapshot(photos)
    arguments = ["lr-find", "image_classifier", f"--data={photos}", f"--out={photos}/a/lr.png"]
    _refused(capsys, arguments, f"--out={photos}/a/lr.png is inside the data source --data=")
    assert _snapshot(photos) == before


def test_tune_dir_inside_the_data_is_refused(photos, capsys):
    before = _snapshot(photos)
    arguments = ["tune", "image_classifier", f"--data={photos}", f"--tune_dir={photos / 't'}"]
    _refused(capsys, [*arguments, "--max_trials=1"], "--tune_dir=", "inside the data source")
    assert _snapshot(photos) == before


def test_export_out_inside_the_data_is_refused(photos, tmp_path, capsys):
    from trainer import keras

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "mine.keras")
    before = _snapshot(photos)
    arguments = ["export", str(tmp_path / "mine.keras"), f"--data={photos}"]
    _refused(capsys, [*arguments, f"--out={photos / 'c'}"], "inside the data source --data=")
    # Without --out the files would go beside the model: here, into the data folder itself.
    model.save(photos / "inside.keras")
    before = _snapshot(photos)
    _refused(capsys, ["export", str(photos / "inside.keras"), f"--data={photos}"], "inside_export")
    assert _snapshot(photos) == before


def test_auto_run_dir_inside_the_data_is_refused(photos, capsys):
    before = _snapshot(photos)
    arguments = ["auto", f"--data={photos}", f"--run_dir={photos / 'auto'}"]
    _refused(capsys, arguments, "--run_dir=", "inside the data source --data=")
    assert _snapshot(photos) == before


def test_compress_out_dir_in_a_class_folder_of_the_runs_data_is_refused(photos, tmp_path, capsys):
    run = _fake_run(tmp_path / "run", photos)
    before = _snapshot(photos)
    arguments = ["compress", str(run), f"--out_dir={photos / 'a'}"]
    _refused(capsys, arguments, "inside the data source --data=")
    assert _snapshot(photos) == before


# ------------------------------------------------------------ writes over runs and files


def test_compress_out_dir_over_its_own_run_or_another_run_is_refused(photos, tmp_path, capsys):
    run = _fake_run(tmp_path / "run", photos)
    other = _fake_run(tmp_path / "other", photos)
    for target in (run, other):
        before = _snapshot(target)
        arguments = ["compress", str(run), f"--out_dir={target}"]
        _refused(capsys, arguments, "is a run folder made by trainer (run.json)", "replaced")
        assert _snapshot(target) == before  # its metrics.json and report.md untouched


def test_compress_out_dir_inside_another_run_is_refused_inside_its_own_run_accepted(
    photos, tmp_path, capsys
):
    from trainer.compress.options import CompressConfig, check_compress_options

    run = _fake_run(tmp_path / "run", photos)
    other = _fake_run(tmp_path / "other", photos)
    before = _snapshot(other)
    arguments = ["compress", str(run), f"--out_dir={other / 'compression'}"]
    _refused(capsys, arguments, f"is inside the run folder {other} (the run this command works")
    assert _snapshot(other) == before
    check_compress_options(run, CompressConfig())  # the default, RUN/compression
    check_compress_options(run, CompressConfig(out_dir=str(run / "smaller")))


def test_train_into_a_folder_of_the_users_own_files_is_refused(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("model.keras", "report.md", "history.csv"):
        (mine / name).write_text(f"the user's own {name}\n")
    before = _snapshot(mine)
    arguments = ["train", "image_classifier", f"--run_dir={mine}", "--epochs=1"]
    _refused(capsys, arguments, "holds files trainer did not make", "history.csv, model.keras")
    assert _snapshot(mine) == before


def test_compress_into_a_folder_of_the_users_own_files_is_refused(photos, tmp_path, capsys):
    run = _fake_run(tmp_path / "run", photos)
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("model.keras", "report.md", "history.csv"):
        (mine / name).write_text(f"the user's own {name}\n")
    before = _snapshot(mine)
    _refused(capsys, ["compress", str(run), f"--out_dir={mine}"], "trainer did not make (report.md")
    assert _snapshot(mine) == before


def test_out_as_a_device_is_refused_and_left_as_it_is(photos, tmp_path, capsys):
    device = tmp_path / "null"
    kind = _device_or_fifo(device)
    mode = os.lstat(device).st_mode
    _refused(capsys, ["data", "preview", str(photos), f"--out={device}"], f"is {kind}, not a")
    _refused(capsys, ["data", "check", str(photos), f"--out={device}"], f"is {kind}, not a folder")
    arguments = ["train", "image_classifier", f"--run_dir={device}"]
    _refused(capsys, arguments, f"is {kind}, not a folder")
    assert os.lstat(device).st_mode == mode  # not replaced by a regular file or a folder


def test_a_file_trainer_did_not_write_is_not_replaced_by_a_plot(photos, tmp_path, capsys):
    photo = tmp_path / "holiday.png"
    photo.write_bytes((photos / "a" / "000.png").read_bytes())  # a PNG, but not a plot
    link = tmp_path / "link.png"
    link.symlink_to(photo)
    _refused(capsys, ["data", "preview", str(photos), f"--out={photo}"], "not written by trainer")
    _refused(capsys, ["data", "preview", str(photos), f"--out={link}"], "is a symbolic link")
    assert photo.read_bytes() == (photos / "a" / "000.png").read_bytes() and link.is_symlink()


def test_export_and_tune_refuse_a_run_folder_and_a_foreign_folder(photos, tmp_path, capsys):
    run = _fake_run(tmp_path / "run", photos)
    before = _snapshot(run)
    arguments = ["tune", "image_classifier", f"--data={photos}", f"--tune_dir={run}"]
    _refused(capsys, [*arguments, "--max_trials=1"], "is a run folder made by trainer")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine\n")
    arguments = ["tune", "image_classifier", f"--data={photos}", f"--tune_dir={notes}"]
    _refused(capsys, [*arguments, "--max_trials=1"], "holds files trainer did not make (todo.txt")
    assert _snapshot(run) == before and (notes / "todo.txt").read_text() == "mine\n"


def test_guard_accepts_new_empty_and_own_earlier_output(photos, tmp_path):
    from trainer.data.check import check_report_folder
    from trainer.outputs import check_output_file, check_output_folder

    out = tmp_path / "report"
    check_report_folder(str(photos), out)  # new
    out.mkdir()
    check_report_folder(str(photos), out)  # empty
    (out / "data_report.json").write_text("{}")
    (out / "data_report.md").write_text("# report\n")
    check_report_folder(str(photos), out)  # its own earlier report, written again
    (out / "notes.txt").write_text("mine\n")  # beside it now: a file trainer did not make
    with pytest.raises(ValueError, match=r"did not make \(data_report.json, data_report.md, notes"):
        check_report_folder(str(photos), out)
    with pytest.raises(ValueError, match=r"holds files trainer did not make \(photos, report\)"):
        check_output_folder(tmp_path, "--out", [("--data", str(photos))], ("model_*.tflite",))
    from trainer.plots import pyplot, save_figure

    plot = save_figure(pyplot().figure(figsize=(1, 1)), tmp_path / "plot.png")
    assert check_output_file(plot, "--out", []) == plot  # a plot trainer wrote is replaced


# ------------------------------------------------------------ readers skip what is not data


def _classes_and_problems(source: Path, **options) -> tuple[list[str], dict[str, str]]:
    data = load_source(str(source), SourceOptions(**options))
    return data.class_names, {problem.item: problem.check for problem in data.problems}


def test_run_tuning_and_result_folders_in_the_data_are_skipped_not_classes(photos, tmp_path):
    plot = (photos / "a" / "000.png").read_bytes()  # stands in for a run's plots
    _fake_run(photos / "myrun", photos)
    (photos / "myrun" / "learning_curves.png").write_bytes(plot)
    _fake_run(photos / "runs" / "image_classifier-1", photos)
    (photos / "runs" / "image_classifier-1" / "confusion_matrix.png").write_bytes(plot)
    (photos / "search").mkdir()
    (photos / "search" / "tune.yaml").write_text("recipe: image_classifier\n")
    (photos / "search" / "objective_vs_trial.png").write_bytes(plot)
    (photos / "auto-1").mkdir()
    (photos / "auto-1" / "auto.yaml").write_text("data: photos\n")
    (photos / "auto-1" / "accuracy_size_latency.png").write_bytes(plot)
    compression = photos / "a" / "compression"  # compress --out_dir=a class folder, before
    compression.mkdir()
    for name in ("report.md", "metrics.json"):
        (compression / name).write_text("{}")
    (compression / "accuracy_vs_size.png").write_bytes(plot)
    before = _snapshot(photos)
    classes, problems = _classes_and_problems(photos)
    assert classes == ["a", "b", "c"]
    for folder in ("myrun", "runs", "search", "auto-1", "a/compression"):
        assert problems[str(photos / folder)] == "not_data", problems
    data = load_source(str(photos), SourceOptions())
    assert len(data.x_train) + len(data.x_test) == 18  # 6 per class, no plot among them
    assert _snapshot(photos) == before


def test_symbolic_links_back_into_the_data_are_skipped(photos, tmp_path):
    (photos / "everything").symlink_to(photos, target_is_directory=True)
    (photos / "parent").symlink_to(photos.parent, target_is_directory=True)
    (photos / "alias").symlink_to(photos / "a", target_is_directory=True)
    (photos / "b" / "again").symlink_to(photos / "b", target_is_directory=True)
    (photos / "c" / "x").mkdir()
    (photos / "c" / "x" / "up").symlink_to(photos / "c", target_is_directory=True)
    (photos / "c" / "x" / "as_a").symlink_to(photos / "a", target_is_directory=True)
    outside = write_image_folder(tmp_path / "more", classes=("c",), per_class=3, size=8)
    (photos / "c" / "more").symlink_to(outside / "c", target_is_directory=True)  # followed
    classes, problems = _classes_and_problems(photos)
    assert classes == ["a", "b", "c"]
    for link in ("everything", "parent", "alias", "b/again", "c/x/up", "c/x/as_a"):
        assert problems[str(photos / link)] == "symlink_loop", problems
    data = load_source(str(photos), SourceOptions())
    assert sorted(np.bincount(np.concatenate([data.y_train, data.y_test]))) == [6, 6, 9]


def test_a_data_source_that_is_a_run_folder_is_refused(photos, tmp_path):
    run = _fake_run(tmp_path / "run", photos)
    with pytest.raises(ValueError, match="is a run folder made by trainer .run.json., not data"):
        load_source(str(run))


def test_random_bytes_named_txt_are_skipped_and_latin1_text_is_still_read(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        for index in range(5):
            (tmp_path / label / f"{index}.txt").write_text(f"a {label} review number {index}")
    (tmp_path / "pos" / "noise.txt").write_bytes(rng.integers(0, 256, 3000, np.uint8).tobytes())
    controls = bytes(rng.integers(1, 9, 3000, np.uint8))  # no NUL byte, only control bytes
    (tmp_path / "neg" / "controls.txt").write_bytes(controls)
    (tmp_path / "neg" / "cafe.txt").write_bytes("un caf\xe9 \x93cr\xe8me\x94".encode("latin-1"))
    (tmp_path / "pos" / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really an image")
    data = load_source(str(tmp_path))
    problems = {Path(problem.item).name: problem for problem in data.problems}
    assert (
        problems["noise.txt"].check == "undecodable" and "NUL bytes" in problems["noise.txt"].detail
    )
    assert (
        problems["controls.txt"].action == "skipped"
        and "control bytes" in problems["controls.txt"].detail
    )
    assert problems["cafe.txt"].check == "encoding" and problems["cafe.txt"].action == "fixed"
    texts = [*data.x_train, *data.x_test]
    assert len(texts) == 11 and not any("\x00" in text for text in texts)


def test_an_image_that_does_not_decode_is_skipped(photos):
    (photos / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (photos / "b" / "text.jpg").write_text("a text file named .jpg")
    _, problems = _classes_and_problems(photos)
    assert problems[str(photos / "a" / "broken.png")] == "undecodable"
    assert problems[str(photos / "b" / "text.jpg")] == "undecodable"
