"""Data files and saved models that are damaged or odd (issue 26): each gives the right
behaviour or one paragraph naming the file, never a traceback or a silently different result.
"""

import csv
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from trainer.data.sources import SourceOptions, load_source


def test_an_npz_with_a_nan_pixel_is_cleaned_and_every_split_scaled_alike(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.random((40, 6, 6)).astype(np.float32)
    x_test = rng.random((20, 6, 6)).astype(np.float32)
    x_train[0, 0, 0] = x_test[0, 0, 0] = 0.5
    x_train[3, 2, 2] = x_train[3, 2, 3] = np.nan
    x_test[5, 1, 1] = np.inf
    labels = np.arange(60) % 2
    path = tmp_path / "pixels.npz"
    np.savez(path, x_train=x_train, y_train=labels[:40], x_test=x_test, y_test=labels[40:])
    data = load_source(path)
    # Before: the NaN made the training split's maximum NaN, so train stayed in [0, 1] while
    # test was scaled to [0, 255].
    assert data.x_train[0, 0, 0, 0] == data.x_test[0, 0, 0, 0] == 128
    assert data.x_train[3, 2, 2, 0] == data.x_test[5, 1, 1, 0] == 0
    found = {(p.check, p.item, p.detail) for p in data.problems}
    assert found == {
        ("non_finite_pixels", f"{path}:x_train[3]", "2 NaN or infinite pixel value(s); set to 0"),
        ("non_finite_pixels", f"{path}:x_test[5]", "1 NaN or infinite pixel value(s); set to 0"),
    }


def test_a_csv_with_a_200_kb_text_cell_loads(tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows([f"good film {i}" if i % 2 else f"bad film {i}", i % 2] for i in range(20))
        writer.writerow(["word " * 40_000, 1])  # 200,000 characters, over csv's 131,072 limit
        writer.writerow(["two\nlines", 0])  # a quoted newline stays inside its cell
    data = load_source(path)
    texts = [*data.x_train, *data.x_test]
    assert len(texts) == 22 and max(map(len, texts)) == 200_000 and "two\nlines" in texts


def _closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]  # nothing listens once it is closed


def test_an_unreachable_download_host_fails_at_once():
    from trainer.data.tfds_source import _check_reachable

    with pytest.raises(FileNotFoundError, match="reaches none of its download hosts"):
        _check_reachable("mnist", [("127.0.0.1", _closed_port())], "/nowhere")


def test_tfds_download_offline_fails_before_tfds_retries(tmp_path, monkeypatch):
    """`--download=true` on a machine without network: before, TFDS retried each file for
    about 150 s with urllib3 warnings."""
    pytest.importorskip(
        "tensorflow_datasets",
        reason="needs tensorflow-datasets (setup.cfg pins 4.9.10): `make setup`, or "
        "`pip install tensorflow-datasets==4.9.10`",
    )
    import tensorflow_datasets as tfds

    def offline(address, *args, **kwargs):
        raise OSError(-2, "Name or service not known")

    def must_not_run(self, *args, **kwargs):
        raise AssertionError("download_and_prepare ran although no host answers")

    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", must_not_run)
    options = SourceOptions(download=True, tfds_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError) as raised:
        load_source("tfds:mnist", options)
    message = str(raised.value)
    assert "storage.googleapis.com:443: Name or service not known" in message
    assert "tfds build mnist" in message and "--tfds_dir=DIR" in message
    with pytest.raises(ValueError, match="TFDS cannot build the dataset 'mnist:9.9.9'"):
        load_source("tfds:mnist:9.9.9", options)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    import tf_keras as keras

    path = tmp_path_factory.mktemp("model") / "model.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    return path


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        (lambda raw: b"", "is empty (0 bytes)"),
        (lambda raw: raw[: len(raw) // 2], "is truncated: a .keras file is a zip archive"),
        (lambda raw: b"hello, not a model", "is not a Keras model file"),
    ],
    ids=["empty", "truncated", "text"],
)
def test_export_and_compress_name_a_damaged_keras_file(saved_model, tmp_path, damage, phrase):
    from trainer.compress.rebuild import load_original
    from trainer.export.saved import load_model, model_file_problem

    path = tmp_path / "model.keras"
    path.write_bytes(damage(saved_model.read_bytes()))
    assert phrase in model_file_problem(path)
    for load in (load_model, load_original):
        with pytest.raises(ValueError) as raised:
            load(path)
        assert str(raised.value).startswith(f"{path} ") and phrase in str(raised.value)
        assert "Keras 3" not in str(raised.value)
    assert model_file_problem(saved_model) == ""


def test_a_keras_file_with_a_damaged_member_is_named(saved_model, tmp_path):
    from trainer.export.saved import model_file_problem

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(saved_model) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info.filename), zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    offset = raw.index(b'"keras_version"')  # inside metadata.json's stored bytes
    raw[offset + 1] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert (
        model_file_problem(path) == f"{path} is damaged: metadata.json inside it fails its checksum"
    )


def test_a_write_over_the_file_size_limit_names_its_path(tmp_path):
    """`ulimit -f` (or a file system's largest file) makes a write fail with "File too large",
    which named no file; run in a child process, whose limit is lowered."""
    script = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from trainer.cli.errors import describe
from trainer.files import atomic_write_bytes
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    atomic_write_bytes({str(tmp_path / "big.bin")!r}, bytes(5000))
except OSError as error:
    print(describe(error))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert f"cannot write {tmp_path / 'big.bin'}: the file would be larger" in result.stdout
    assert "ulimit -f" in result.stdout and ", 1)" in result.stdout
    assert list(tmp_path.iterdir()) == []  # the temporary file is removed


def test_file_too_large_from_a_library_write_names_the_run_folder(monkeypatch):
    """A log or checkpoint written by Keras or TensorFlow fails without a file name."""
    import errno

    import trainer.runs
    from trainer.cli.errors import describe

    error = OSError(errno.EFBIG, "File too large")
    monkeypatch.setattr(trainer.runs, "last_created_run_dir", lambda: Path("runs/big"))
    text, code = describe(error)
    assert code == 1 and text.startswith("cannot write a file in runs/big: the file would be")
