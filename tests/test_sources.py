import tarfile
from pathlib import Path

import numpy as np
import pytest

from datagen import bar_image, encode, write_cifar_tarball, write_image_folder, write_imdb
from trainer.data.cifar import md5_of
from trainer.data.sources import SourceOptions, load_source

# --- image folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("extension", [".png", ".jpg", ".bmp", ".gif"])
def test_image_folder_each_format_with_seeded_stratified_split(tmp_path, extension):
    root = write_image_folder(tmp_path / "pics", per_class=10, extension=extension)
    data = load_source(root, SourceOptions(test_fraction=0.2, seed=3))
    assert data.kind == "image" and data.class_names == ["a", "b", "c"]
    assert data.x_train.shape == (24, 16, 16, 3) and data.x_train.dtype == np.uint8
    assert np.bincount(data.y_test).tolist() == [2, 2, 2]  # stratified
    # The bar survives encoding: row band k is bright for class k.
    band_brightness = data.x_train[:, :, 4:12, :].mean(axis=(2, 3)).reshape(-1, 4, 4).mean(-1)
    assert np.all(band_brightness.argmax(axis=1) == data.y_train)
    again = load_source(root, SourceOptions(test_fraction=0.2, seed=3))
    assert again.ids["test"] == data.ids["test"]
    other = load_source(root, SourceOptions(test_fraction=0.2, seed=4))
    assert other.ids["test"] != data.ids["test"]


def test_train_test_val_folders_are_read_as_splits_and_resized(tmp_path):
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        write_image_folder(tmp_path / "d" / split, per_class=count, seed=len(split), size=20)
    data = load_source(tmp_path / "d", SourceOptions(image_size=8))
    assert data.split_names() == ["train", "val", "test"]
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (18, 6, 9)
    assert data.x_val.shape[1:] == (8, 8, 3)
    assert all("/val/" in name for name in data.ids["val"])
    assert data.problems == []  # one size throughout: resizing is not a problem


def test_mixed_sizes_and_grayscale_rgba_are_converted_and_reported(tmp_path):
    root = write_image_folder(tmp_path / "m", per_class=5)
    rng = np.random.default_rng(0)
    (root / "a" / "big.png").write_bytes(encode(bar_image(0, rng, size=32), ".png"))
    (root / "b" / "gray.png").write_bytes(encode(bar_image(1, rng, channels=1), ".png"))
    (root / "c" / "alpha.png").write_bytes(encode(bar_image(2, rng, channels=4), ".png"))
    data = load_source(root)
    found = {(p.check, Path(p.item).name, p.action) for p in data.problems}
    assert found == {
        ("image_size", "big.png", "fixed"),
        ("image_channels", "gray.png", "fixed"),
        ("image_channels", "alpha.png", "fixed"),
    }
    assert data.x_train.shape[1:] == (16, 16, 3)
    gray = load_source(root, SourceOptions(channels=1))
    assert gray.x_train.shape[1:] == (16, 16, 1)


def test_unreadable_and_zero_byte_images_are_skipped_by_path(tmp_path):
    root = write_image_folder(tmp_path / "p", per_class=5)
    (root / "a" / "zero.png").write_bytes(b"")
    good = (root / "b" / "000.png").read_bytes()
    (root / "b" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (root / "c" / "notes.csv").write_text("not an image")
    data = load_source(root)
    found = {(p.check, Path(p.item).name, p.action) for p in data.problems}
    assert found == {
        ("empty_file", "zero.png", "skipped"),
        ("undecodable", "truncated.jpg", "skipped"),
        ("unsupported_file", "notes.csv", "skipped"),
    }
    assert len(data.x_train) + len(data.x_test) == 15
    assert (root / "b" / "000.png").read_bytes() == good


def test_empty_folder_single_class_and_empty_class_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class subfolders with files"):
        load_source(tmp_path / "empty")
    write_image_folder(tmp_path / "one", classes=("cats",), per_class=4)
    with pytest.raises(ValueError, match=r"1 class\(es\) with data \(only 'cats'\)"):
        load_source(tmp_path / "one")
    root = write_image_folder(tmp_path / "three", per_class=4)
    (root / "dogs").mkdir()
    data = load_source(root)
    assert data.class_names == ["a", "b", "c"]
    assert [(p.check, Path(p.item).name) for p in data.problems] == [("empty_class", "dogs")]
    with pytest.raises(FileNotFoundError, match="does not exist. Pass a folder"):
        load_source(tmp_path / "nowhere")


# --- text folders ------------------------------------------------------------------------------


def test_aclimdb_layout_ignores_unsup_and_top_level_files(tmp_path):
    root = write_imdb(tmp_path / "aclImdb", per_class=7)
    data = load_source(root)
    assert data.kind == "text" and data.class_names == ["neg", "pos"]
    assert (len(data.x_train), len(data.x_test)) == (14, 14)
    assert all(isinstance(text, str) and text for text in data.x_train)
    assert not any("unsup" in name for name in data.ids["train"])
    assert data.problems == []
    first = data.ids["train"].index(str(root / "train" / "pos" / "0_8.txt"))
    assert data.x_train[first] == (root / "train/pos/0_8.txt").read_text()


def test_non_utf8_text_is_read_as_latin1_and_reported(tmp_path):
    root = tmp_path / "t"
    for label in ("x", "y"):
        (root / label).mkdir(parents=True)
        for index in range(4):
            (root / label / f"{index}.txt").write_text(f"{label} sample {index}")
    (root / "x" / "cafe.txt").write_bytes("un caf\xe9 noir".encode("cp1252"))
    data = load_source(root, SourceOptions(test_fraction=0.25))
    texts = list(data.x_train) + list(data.x_test)
    assert "un café noir" in texts
    (problem,) = data.problems
    assert problem.check == "encoding" and problem.action == "fixed" and "0xe9" in problem.detail


# --- CSV and npz -------------------------------------------------------------------------------


def test_csv_numeric_features_with_split_column(tmp_path):
    lines = ["f1,f2,label,split"]
    lines += [
        f"{i},{i * 0.5},{'cat' if i % 2 else 'dog'},{'test' if i % 4 == 0 else 'train'}"
        for i in range(20)
    ]
    (tmp_path / "t.csv").write_text("\n".join(lines))
    data = load_source(tmp_path / "t.csv")
    assert data.kind == "tabular" and data.class_names == ["cat", "dog"]
    assert data.x_train.shape == (15, 2) and data.x_test.shape == (5, 2)
    assert data.x_test[:, 0].tolist() == [0, 4, 8, 12, 16]
    assert data.y_test.tolist() == [1, 1, 1, 1, 1]  # even rows are dogs


def test_csv_text_column_and_bad_csvs(tmp_path):
    rows = ["review,stars"] + [
        f'"{"good fun" if i % 2 else "dull bad"} {i}",{i % 2}' for i in range(10)
    ]
    (tmp_path / "r.csv").write_text("\n".join(rows))
    data = load_source(
        tmp_path / "r.csv", SourceOptions(text_column="review", label_column="stars")
    )
    assert data.kind == "text" and len(data.x_train) + len(data.x_test) == 10
    with pytest.raises(ValueError, match=r"no label column 'label'; its columns are review, stars"):
        load_source(tmp_path / "r.csv")
    (tmp_path / "n.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n")
    with pytest.raises(ValueError, match=r"row 3, column 'b': 'oops' is not a number"):
        load_source(tmp_path / "n.csv")


def test_csv_missing_value_is_filled_with_training_median(tmp_path):
    lines = ["a,label"] + [f"{i},{i % 2}" for i in range(10)] + [",1", "NA,0"]
    (tmp_path / "m.csv").write_text("\n".join(lines))
    data = load_source(tmp_path / "m.csv", SourceOptions(test_fraction=0.25))
    (problem,) = data.problems
    assert problem.check == "missing_values" and "2 empty cell(s)" in problem.detail
    assert not np.isnan(data.x_train).any() and not np.isnan(data.x_test).any()


def test_npz_image_and_labels_outside_range(tmp_path):
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(12) % 3, np.array([0, 1, 2, 5])
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.integers(0, 255, (12, 8, 8), np.uint8),
        y_train=y_train,
        x_test=rng.integers(0, 255, (4, 8, 8), np.uint8),
        y_test=y_test,
        class_names=np.array(["r", "g", "b"]),
    )
    data = load_source(tmp_path / "d.npz")
    assert data.kind == "image" and data.x_train.shape == (12, 8, 8, 1)
    assert data.class_names == ["r", "g", "b"] and len(data.x_test) == 3
    (problem,) = data.problems
    assert problem.check == "label_out_of_range" and problem.item.endswith("y_test[3]")
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 3)), y_train=np.zeros(2))
    with pytest.raises(ValueError, match="lacks x_test, y_test"):
        load_source(tmp_path / "bad.npz")


def test_idx_folder(fashion_dir):
    data = load_source(fashion_dir)
    assert data.x_train.shape == (600, 28, 28, 1) and data.num_classes == 10
    assert data.split_ids("test")[3] == "test[3]"


# --- CIFAR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["cifar-10", "cifar-100"])
def test_cifar_tarball_and_extracted_folder(tmp_path, variant):
    path = write_cifar_tarball(tmp_path / f"{variant}-python.tar.gz", variant)
    data = load_source(path, SourceOptions(md5=md5_of(path)))
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_test.shape == (10, 32, 32, 3)
    assert data.num_classes == (10 if variant == "cifar-10" else 100)
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "out", filter="data")
    from_folder = load_source(tmp_path / "out")
    np.testing.assert_array_equal(from_folder.x_train, data.x_train)
    np.testing.assert_array_equal(from_folder.y_test, data.y_test)


def test_cifar_channel_layout_matches_the_format(tmp_path):
    from datagen import cifar_batches

    batch = cifar_batches("cifar-10")
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, data in batch.items():
        (folder / name).write_bytes(data)
    import pickle

    raw = pickle.loads(batch["test_batch"], encoding="bytes")[b"data"][0]
    image = load_source(tmp_path).x_test[0]
    assert (
        image[0, 1, 0] == raw[1]
        and image[0, 0, 1] == raw[1024]
        and image[2, 0, 2] == raw[2048 + 64]
    )


def test_cifar_wrong_checksum_and_unsafe_members(tmp_path):
    path = write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(ValueError, match=r"has md5 [0-9a-f]{32}, expected c58f30108f718f92721a"):
        load_source(path)
    with pytest.raises(ValueError, match="expected 0123.* as given by --md5"):
        load_source(path, SourceOptions(md5="0123456789abcdef0123456789abcdef"))
    evil = write_cifar_tarball(tmp_path / "evil.tar.gz", extra={"../../escape.txt": b"x"})
    with pytest.raises(ValueError, match=r"unsafe member '../../escape.txt'"):
        load_source(evil, SourceOptions(md5=md5_of(evil)))
    assert not (tmp_path.parent / "escape.txt").exists()
    import pickle

    hostile = {"cifar-10-batches-py/batches.meta": pickle.dumps(__import__("os").system)}
    crafted = write_cifar_tarball(tmp_path / "crafted.tar.gz", extra=hostile)
    with pytest.raises(ValueError, match="refusing to load posix.system"):
        load_source(crafted, SourceOptions(md5=md5_of(crafted)))


# --- TFDS --------------------------------------------------------------------------------------


def test_tfds_not_prepared_never_downloads_or_touches_the_network(tmp_path, monkeypatch):
    import socket

    import tensorflow_datasets as tfds

    attempts = []

    def refuse_connection(*args, **kwargs):
        attempts.append(("connect", args))
        raise OSError("the test forbids network access")

    def record_download(self, *args, **kwargs):
        attempts.append(("download_and_prepare", self.name))

    monkeypatch.setattr(socket.socket, "connect", refuse_connection)
    monkeypatch.setattr(socket, "create_connection", refuse_connection)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", record_download)
    searched = tmp_path / "tfds"
    with pytest.raises(FileNotFoundError) as raised:
        load_source("tfds:mnist", SourceOptions(tfds_dir=str(searched)))
    assert attempts == []  # no download was started and no connection was tried
    message = str(raised.value)
    assert "'mnist' is not prepared in" in message and str(searched) in message
    assert "--download=true" in message and "tfds build mnist" in message
    with pytest.raises(ValueError, match="TFDS has no dataset named 'no_such_set_xyz'"):
        load_source("tfds:no_such_set_xyz", SourceOptions(tfds_dir=str(tmp_path)))


def test_tfds_prepared_dataset_loads(tmp_path):
    import tensorflow_datasets as tfds

    class TinyBars(tfds.core.GeneratorBasedBuilder):
        # TFDS looks for resources (checksums) beside the builder's module, which must be a
        # package; tests/ is not one.
        __module__ = "trainer.data"
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(16, 16, 3)),
                        "label": tfds.features.ClassLabel(names=["a", "b"]),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(12, 0), "test": self._generate_examples(4, 1)}

        def _generate_examples(self, count, seed):
            rng = np.random.default_rng(seed)
            for index in range(count):
                yield index, {"image": bar_image(index % 2, rng), "label": index % 2}

    TinyBars(data_dir=str(tmp_path)).download_and_prepare()
    data = load_source("tfds:tiny_bars", SourceOptions(tfds_dir=str(tmp_path)))
    assert data.class_names == ["a", "b"] and data.x_train.shape == (12, 16, 16, 3)
    assert sorted(data.y_test.tolist()) == [0, 0, 1, 1]
    bands = data.x_train[:, :4].mean(axis=(1, 2, 3)) > data.x_train[:, 4:8].mean(axis=(1, 2, 3))
    assert np.array_equal(bands, data.y_train == 0)  # each image kept its own label


def test_csv_label_only_in_test_is_unknown_and_skipped(tmp_path):
    lines = ["x,label,split"] + [f"{i},{'ab'[i % 2]},train" for i in range(8)]
    lines += ["1,a,test", "2,b,test", "3,zebra,test", "4,b,holdout"]
    (tmp_path / "u.csv").write_text("\n".join(lines))
    data = load_source(tmp_path / "u.csv")
    assert data.class_names == ["a", "b"] and len(data.x_test) == 2
    found = {(p.check, p.item.rsplit(":", 1)[1]) for p in data.problems}
    assert found == {("unknown_label", "row 12"), ("unknown_split", "row 13")}


# --- labels: integers, missing values ----------------------------------------------------------


def test_csv_integer_labels_are_the_values_seen_in_numeric_order(tmp_path):
    # Star ratings 2, 7, 10: three classes named by their values, not 11 with 8 empty ones.
    stars = [2, 7, 10] * 8
    lines = ["x,stars"] + [f"{i},{label}" for i, label in enumerate(stars)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    data = load_source(tmp_path / "s.csv", SourceOptions(label_column="stars"))
    assert data.class_names == ["2", "7", "10"]  # numeric order, not text order
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        np.testing.assert_array_equal(
            [data.class_names[label] for label in y], [str(stars[int(row)]) for row in x[:, 0]]
        )
    assert data.problems == []
    # A declared class count keeps integer labels as class ids 0..N-1.
    declared = load_source(tmp_path / "s.csv", SourceOptions(label_column="stars", num_classes=11))
    assert declared.class_names == [str(i) for i in range(11)]
    assert sorted(set(declared.y_train.tolist())) == [2, 7, 10]


MISSING_MARKERS = ["nan", "NaN", "null", "None", "NA", "N/A", "", "  "]


@pytest.mark.parametrize("labels", [("cat", "dog"), ("1", "3")])
def test_csv_missing_labels_are_reported_and_dropped_never_a_class(tmp_path, labels):
    lines = ["x,label"] + [f"{i},{labels[i % 2]}" for i in range(20)]
    lines += [f"{100 + i},{marker}" for i, marker in enumerate(MISSING_MARKERS)]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    data = load_source(tmp_path / "m.csv")
    assert data.class_names == sorted(labels, key=lambda v: int(v) if v.isdigit() else v)
    missing = [problem for problem in data.problems if problem.check == "missing_label"]
    assert len(missing) == len(MISSING_MARKERS)
    assert {problem.action for problem in missing} == {"skipped"}
    assert missing[0].item.endswith("m.csv:row 22") and "'nan'" in missing[0].detail
    kept = np.concatenate([data.x_train[:, 0], data.x_test[:, 0]])
    assert len(kept) == 20 and kept.max() < 100  # every row without a label was dropped


def test_npz_nan_labels_are_missing_and_dropped(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    y_train = np.array([0, 1, np.nan, 1, 0, 1, 0, np.nan, 1, 0, 1, 0])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y_train, x_test=x[:4], y_test=[0, 1, 0, np.nan])
    data = load_source(tmp_path / "d.npz")
    assert data.class_names == ["0", "1"]
    assert len(data.x_train) == 10 and len(data.x_test) == 3
    found = sorted(p.item.rsplit(":", 1)[1] for p in data.problems if p.check == "missing_label")
    assert found == ["y_test[3]", "y_train[2]", "y_train[7]"]
    np.testing.assert_array_equal(data.x_train[:, 0], np.delete(x[:, 0], [2, 7]))


def test_folder_file_names_that_are_not_utf8_are_escaped(tmp_path):
    import os

    root = write_image_folder(tmp_path / "photos", per_class=6, seed=4)
    bad_name = os.fsdecode(bytes(root / "a") + b"/caf\xe9.png")  # Latin-1 bytes on disk
    Path(bad_name).write_bytes((root / "a/000.png").read_bytes())
    data = load_source(root)
    names = data.ids["train"] + data.ids["test"]
    assert any(name.endswith("caf\\xe9.png") for name in names)
    for name in names:
        name.encode("utf-8")  # printable and writable: no surrogate escapes left


def test_data_modules_import_one_way_without_cycles():
    # types <- images/split <- loaders (idx, folders, tabular, cifar, tfds_source) <- sources
    # <- check <- prepare: a loader never imports sources, and no import cycle exists.
    import ast

    import trainer.data as package

    folder = Path(package.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainer.data."):
                imported.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = imported
    for loader in ("types", "images", "idx", "folders", "tabular", "cifar", "tfds_source"):
        assert "sources" not in graph[loader], loader
    assert graph["types"] <= {"split"} and graph["split"] == set()

    def visit(module, trail):
        assert module not in trail, " -> ".join([*trail, module])
        for target in graph.get(module, ()):
            visit(target, [*trail, module])

    for module in graph:
        visit(module, [])
