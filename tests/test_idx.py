import gzip

import numpy as np
import pytest

from trainer.data.idx import IdxFormatError, load_fashion_mnist, read_idx, write_idx


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    loaded = read_idx(tmp_path / name)
    assert loaded.dtype == np.uint8 and loaded.shape == (2, 3, 4)
    np.testing.assert_array_equal(loaded, array)


def test_header_is_idx(tmp_path):
    write_idx(tmp_path / "labels.idx", np.array([1, 2, 3], np.uint8))
    raw = (tmp_path / "labels.idx").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x01" and raw[4:8] == b"\x00\x00\x00\x03"


def test_truncated_plain_file(tmp_path):
    write_idx(tmp_path / "x.idx", np.zeros((10, 28, 28), np.uint8))
    raw = (tmp_path / "x.idx").read_bytes()
    (tmp_path / "x.idx").write_bytes(raw[:-100])
    with pytest.raises(IdxFormatError, match="truncated or corrupt"):
        read_idx(tmp_path / "x.idx")


def test_truncated_gzip_file(tmp_path):
    write_idx(
        tmp_path / "x.idx.gz", np.random.default_rng(0).integers(0, 255, (50, 28, 28), np.uint8)
    )
    raw = (tmp_path / "x.idx.gz").read_bytes()
    (tmp_path / "x.idx.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IdxFormatError, match="truncated or corrupt gzip"):
        read_idx(tmp_path / "x.idx.gz")


def test_bad_magic(tmp_path):
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(IdxFormatError, match="not an IDX file"):
        read_idx(tmp_path / "x.idx.gz")


def test_missing_directory_says_how_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_missing_file(fashion_dir):
    (fashion_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_fashion_mnist(fashion_dir, check_counts=False)


def test_loads_generated_files(fashion_dir):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(fashion_dir, check_counts=False)
    assert x_train.shape == (600, 28, 28) and x_test.shape == (200, 28, 28)
    assert set(np.unique(y_train)) == set(range(10))


def test_official_counts_checked(fashion_dir):
    with pytest.raises(IdxFormatError, match="has 600 images, expected 60000"):
        load_fashion_mnist(fashion_dir)


def test_mismatched_counts(fashion_dir):
    write_idx(fashion_dir / "train-labels-idx1-ubyte.gz", np.zeros(599, np.uint8))
    with pytest.raises(IdxFormatError, match="600 images but .* has 599 labels"):
        load_fashion_mnist(fashion_dir, check_counts=False)


def test_label_out_of_range(fashion_dir):
    labels = np.zeros(200, np.uint8)
    labels[5] = 12
    write_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(IdxFormatError, match=r"outside 0..9 \(e.g. 12\)"):
        load_fashion_mnist(fashion_dir, check_counts=False)


def test_wrong_image_size(fashion_dir):
    write_idx(fashion_dir / "t10k-images-idx3-ubyte.gz", np.zeros((200, 32, 32), np.uint8))
    with pytest.raises(IdxFormatError, match=r"\(32, 32\), expected 28x28"):
        load_fashion_mnist(fashion_dir, check_counts=False)
