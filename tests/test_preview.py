"""`trainer data preview`: the PNG grid of augmented samples and its command line."""

import numpy as np
import pytest

from conftest import make_class_images
from trainer.augment import augmentations_from_config
from trainer.cli import main as cli_main
from trainer.data.preview import augmented_samples, label_text, preview_grid

CLASSES = [f"class {index}" for index in range(10)]


def _png_size(path):
    import matplotlib.image

    return matplotlib.image.imread(path).shape


def test_label_text_names_one_class_or_the_two_mixed_ones():
    assert label_text(np.eye(10)[3], CLASSES) == "class 3"
    mixed = np.zeros(10)
    mixed[[2, 7]] = [0.3, 0.7]
    assert label_text(mixed, CLASSES) == "class 7 0.70 / class 2 0.30"


def test_samples_come_from_the_training_pipeline_with_its_augmentation():
    x, y = make_class_images(40, seed=3)
    plain_images, plain_labels = augmented_samples(
        x, y, num_classes=10, augment=None, count=12, seed=1
    )
    assert plain_images.shape == (12, 28, 28, 1) and plain_labels.shape == (12, 10)
    # Without augmentation every shown image is one of the source images, scaled to [0, 1].
    source = x[..., None].astype(np.float32) / 255.0
    for image, label in zip(plain_images, plain_labels, strict=True):
        matches = [i for i in range(40) if np.allclose(source[i], image)]
        assert matches and y[matches[0]] == label.argmax()
    mixup = augmentations_from_config("mixup:1.0")
    images, labels = augmented_samples(x, y, num_classes=10, augment=mixup, count=12, seed=1)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert (labels.max(axis=1) < 0.99).sum() >= 3  # MixUp mixed labels are what gets shown
    again, _ = augmented_samples(x, y, num_classes=10, augment=mixup, count=12, seed=1)
    np.testing.assert_array_equal(images, again)
    assert (
        len(augmented_samples(x, y, num_classes=10, augment=None, count=100)[0]) == 40
    )  # no more than there are


def test_preview_grid_writes_a_png_sized_by_count(tmp_path):
    x, y = make_class_images(50, seed=4)
    augment = augmentations_from_config("crop:2,flip,rotate:15")
    small = preview_grid(
        x, y, class_names=CLASSES, augment=augment, path=tmp_path / "small.png", count=4
    )
    large = preview_grid(
        x, y, class_names=CLASSES, augment=augment, path=tmp_path / "large.png", count=16, title="t"
    )
    assert small.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_size(large)[0] > _png_size(small)[0] and _png_size(large)[1] > _png_size(small)[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["large.png", "small.png"]  # no temps
    with pytest.raises(ValueError, match="count must be at least 1, received 0"):
        preview_grid(
            x, y, class_names=CLASSES, augment=augment, path=tmp_path / "none.png", count=0
        )


FULL_SPEC = (
    "crop:2,flip,rotate:15,zoom:0.1,translate:0.1,erase:0.25,mixup:0.2,cutmix:1,randaugment:2:9"
)


def test_command_previews_an_idx_folder_and_an_npz(fashion_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = cli_main(
        ["data", "preview", str(fashion_dir), f"--augment={FULL_SPEC}", f"--out={out}", "--count=6"]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert out.is_file() and f"wrote {out} (6 augmented" in printed
    # The line says what the spec built, argument by argument.
    assert "RandomCropWithPadding(padding=2)" in printed and "RandAugment(num_ops=2" in printed

    x, y = make_class_images(30, seed=5)
    archive = tmp_path / "data.npz"
    np.savez(archive, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    before = archive.read_bytes()
    out = tmp_path / "npz.png"
    assert cli_main(["data", "preview", str(archive), f"--out={out}", "--count=4"]) == 0
    assert out.is_file() and archive.read_bytes() == before


def test_command_errors_are_clear(fashion_dir, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = cli_main(["data", "preview", str(fashion_dir), "--augment=crop,warp", f"--out={out}"])
    error = capsys.readouterr().err
    assert code == 2 and "unknown augmentation 'warp'" in error and "randaugment" in error
    assert "Traceback" not in error
    # A bad path is a data error (exit 1), named in the message.
    assert cli_main(["data", "preview", str(tmp_path / "missing"), f"--out={out}"]) == 1
    assert "does not exist" in capsys.readouterr().err
    table = tmp_path / "table.csv"
    table.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    assert cli_main(["data", "preview", str(table), f"--out={out}"]) == 1
    assert "holds tabular data" in capsys.readouterr().err
    assert cli_main(["data", "preview", str(fashion_dir), "--count=0", f"--out={out}"]) == 2
    assert "count" in capsys.readouterr().err
    assert not out.exists()


def test_preview_help_lists_its_options(capsys):
    assert cli_main(["data", "preview", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: trainer data preview SOURCE")
    for option in ("--augment=STR", "--out=STR", "--count=INT", "--seed=INT", "--image_size"):
        assert option in out
    assert "randaugment" in out  # the augmentation names are listed with the option
