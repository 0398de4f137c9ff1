"""The data side of bench/real_data.py: folders built right, texts real, splits clean."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bench.datasets import (
    DEBIAN_SECTIONS,
    TextSet,
    count_files,
    debian_descriptions,
    folder_digest,
    read_image_folder,
    read_text_folder,
    write_digits_folder,
    write_image_folder,
    write_text_folder,
)


def test_digits_folder_has_every_image_once_in_a_stratified_split(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    per_class = Counter(int(label) for label in load_digits().target)
    root = write_digits_folder(tmp_path / "digits")
    counts = count_files(root)
    assert set(counts) == {"train", "test"}
    for label, total in per_class.items():
        assert counts["train"][str(label)] + counts["test"][str(label)] == total
        assert counts["test"][str(label)] == round(0.2 * total)
    x_train, y_train, x_test, y_test, names = read_image_folder(root)
    assert names == [str(label) for label in range(10)]
    assert x_train.shape == (sum(counts["train"].values()), 64)
    assert len(x_test) == len(y_test) == sum(counts["test"].values())
    assert 0.0 <= x_train.min() and x_train.max() == 1.0  # 16 grey levels spread over 0-255
    # Deterministic: a second build is byte for byte the same folder.
    assert folder_digest(write_digits_folder(tmp_path / "again")) == folder_digest(root)


def test_image_folder_drops_duplicates_and_training_copies_of_test_images(tmp_path: Path) -> None:
    images = np.zeros((5, 4, 4), np.uint8)
    images[1] = images[2] = 50  # the same image twice in train
    images[3] = images[4] = 99  # one in train, its copy in test
    labels = np.array([0, 1, 1, 0, 0])
    splits = ["train", "train", "train", "train", "test"]
    root = write_image_folder(tmp_path / "set", images, labels, splits, ["a/b", "c"], list("vwxyz"))
    assert count_files(root) == {"test": {"a-b": 1}, "train": {"a-b": 1, "c": 1}}
    assert sorted(path.stem for path in root.rglob("*.png")) == ["v", "w", "z"]


def test_text_folder_keeps_each_group_in_one_split(tmp_path: Path) -> None:
    groups = [f"source{index // 3}" for index in range(60)]  # 20 groups of 3 texts
    texts = TextSet(
        texts=[f"text number {index}" for index in range(60)],
        labels=["games" if index % 2 else "mail" for index in range(60)],
        groups=groups,
        ids=[f"package{index}" for index in range(60)],
        source="generated",
    )
    root = write_text_folder(tmp_path / "texts", texts)
    texts_train, _, texts_test, _, names = read_text_folder(root)
    assert names == ["games", "mail"]
    group_of = dict(zip(texts.texts, groups, strict=True))
    train_groups = {group_of[text] for text in texts_train}
    test_groups = {group_of[text] for text in texts_test}
    assert not train_groups & test_groups
    assert len(test_groups) == 4  # 20% of 20 groups
    assert len(texts_train) + len(texts_test) == 60


def test_debian_descriptions_are_real_multiclass_and_deduplicated() -> None:
    try:
        texts = debian_descriptions()
    except FileNotFoundError as error:
        pytest.skip(f"needs apt's English long descriptions: {error}")
    counts = Counter(texts.labels)
    assert set(counts) == set(DEBIAN_SECTIONS)
    assert min(counts.values()) >= 100 and len(texts.texts) >= 3000
    normalised = [" ".join(text.lower().split()) for text in texts.texts]
    assert len(set(normalised)) == len(normalised)
    assert len(set(texts.ids)) == len(texts.ids)
    # Short description, then the long one: every text has at least two lines of words.
    assert all(len(text.splitlines()) >= 2 and text.strip() for text in texts.texts)
    assert not any(line.strip() == "." for text in texts.texts[:500] for line in text.splitlines())


def test_man_page_text_keeps_words_and_drops_the_section() -> None:
    from bench.real_data import man_page_text

    source = "\n".join(
        [
            '.TH LS 1 "2023" "GNU coreutils"',
            ".SH NAME",
            r"ls \- list directory contents",
            r".B \-a",
            r"do not ignore entries starting with \fB.\fR, see \fIdir\fP(1)",
            ".PP",
            r"\(bu one more line",
        ]
    )
    text = man_page_text(source)
    assert (
        text
        == "NAME ls - list directory contents -a do not ignore entries starting with ., see dir one more line"
    )
    assert "1" not in text and "TH" not in text  # the section is the label


def test_text_groups_follow_the_folder_order(tmp_path: Path) -> None:
    from bench.real_data import _write_texts, text_groups

    texts = TextSet(
        texts=[f"text {index} about {'games' if index % 2 else 'mail'}" for index in range(30)],
        labels=["games" if index % 2 else "mail" for index in range(30)],
        groups=[f"source{index // 3}" for index in range(30)],
        ids=[f"package{index:02d}" for index in range(30)],
        source="generated",
    )
    root = tmp_path / "set"
    _write_texts(root, texts, quick=False)
    texts_train, _, _, _, _ = read_text_folder(root)
    group_of = dict(zip(texts.texts, texts.groups, strict=True))
    assert text_groups(root) == [group_of[text] for text in texts_train]
    assert text_groups(tmp_path / "no-groups") is None
