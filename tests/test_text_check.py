"""The data check's text report (trainer.data.text_check) and text augmentation
(trainer.data.text_augment), on tiny generated texts; the real-text test is under `slow`."""

import json

import numpy as np
import pytest

from trainer import cli
from trainer.data.check import check_data, clean_data
from trainer.data.text_augment import augment_texts
from trainer.data.text_check import (
    NEAR_DUPLICATE_SIMILARITY,
    model_text,
    model_words,
    similar_pairs,
)
from trainer.data.types import LoadedData

VOCABULARY = [f"w{index}" for index in range(3000)]


def _texts(rng: np.random.Generator, count: int, words: int = 30) -> list[str]:
    """Texts of distinct random words: any two share almost none."""
    return [" ".join(rng.choice(VOCABULARY, words, replace=False)) for _ in range(count)]


def _data(train: list[str], test: list[str], train_labels=None, test_labels=None) -> LoadedData:
    def labels(texts, given):
        return np.array(given if given is not None else [i % 2 for i in range(len(texts))])

    return LoadedData(
        "text",
        ["neg", "pos"],
        np.array(train, dtype=object),
        labels(train, train_labels),
        np.array(test, dtype=object),
        labels(test, test_labels),
        source="generated",
        ids={
            "train": [f"train/{i}.txt" for i in range(len(train))],
            "test": [f"test/{i}.txt" for i in range(len(test))],
        },
    )


def _found(report) -> set[tuple[str, str]]:
    return {(problem.check, problem.item) for problem in report.problems}


def test_model_words_are_the_words_the_text_models_read():
    from trainer.data.text import lower_and_split_punctuation  # TensorFlow's regex ops

    texts = [
        "Café_au lait, GNU/Linux's best-known editor",
        "e\u0301te\u0301 (combining accents) and ①② and ١٢٣",
        "日本語のテキスト x\u0903y emoji😀ok",
        "Straße ΣΑΣ tab\tnew\nline --- !!!",
        "",
    ]
    expected = [
        b" ".join(row.split()).decode() for row in lower_and_split_punctuation(texts).numpy()
    ]
    assert [model_text(text) for text in texts] == expected
    assert model_words("A_B-c") == ["a", "b", "c"]  # the underscore separates words too


def test_exact_duplicates_and_leaks_compare_the_models_words():
    rng = np.random.default_rng(0)
    train = _texts(rng, 6) + ["Great film, really!", "great FILM really", "great films really"]
    test = _texts(rng, 4) + ["GREAT film... really"]
    data = _data(train, test)
    report = check_data(data, label_errors=False)
    assert _found(report) == {("duplicate", "train/7.txt"), ("leak", "test/4.txt")}
    duplicate = next(p for p in report.problems if p.check == "duplicate")
    assert "train/6.txt" in duplicate.detail and "'great FILM really'" in duplicate.detail
    cleaned = clean_data(data, report)
    # the extra copy and the training copies of the leaked text go; "films" is another text
    assert cleaned.x_train.tolist() == train[:6] + ["great films really"]
    assert len(cleaned.x_test) == len(test)


def test_near_duplicates_and_near_leaks_are_found_with_their_closest_text():
    rng = np.random.default_rng(1)
    train = _texts(rng, 20)
    words = train[3].split()
    one_word_changed = " ".join([*words[:-1], "brandnew"])  # cosine about 0.97
    half_changed = " ".join(words[:15] + _texts(rng, 1, 15)[0].split())  # cosine 0.41
    train += [one_word_changed, half_changed]
    test = _texts(rng, 5) + [" ".join([*train[8].split()[1:], "other"])]
    data = _data(train, test, test_labels=[0, 0, 0, 0, 0, 1 - 8 % 2])
    report = check_data(data, label_errors=False)
    assert _found(report) == {("near_duplicate", "train/20.txt"), ("near_leak", "test/5.txt")}
    near = next(p for p in report.problems if p.check == "near_duplicate")
    assert (
        near.detail.startswith("cosine 0.9")
        and "with train/3.txt, labelled 'neg' here" in near.detail
    )
    assert f"'{one_word_changed[:20]}" in near.detail  # a snippet of each text
    leak = next(p for p in report.problems if p.check == "near_leak")
    assert "with train/8.txt [train], labelled 'pos' here and 'neg' there" in leak.detail
    # the threshold is the one named: at 0.4 the half-changed text (cosine 0.41) is one too
    looser = check_data(data, label_errors=False, near_duplicate_similarity=0.4)
    assert ("near_duplicate", "train/21.txt") in _found(looser)


def test_similar_pairs_finds_every_pair_a_brute_force_search_finds():
    # Common words everywhere (pruned from the sparse product), some texts made only of
    # them (the "heavy" path), planted copies with a word changed or the order shuffled.
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(2)
    common = [f"c{index}" for index in range(12)]
    texts = []
    for _ in range(150):
        rare = list(rng.choice(VOCABULARY[:400], int(rng.integers(3, 12))))
        texts.append(" ".join(rng.permutation(rare + list(rng.choice(common, 8)))))
    for _ in range(30):
        texts.append(" ".join(rng.choice(common, int(rng.integers(4, 10)))))
    for index in rng.choice(len(texts), 40, replace=False):
        words = texts[index].split()
        words[int(rng.integers(len(words)))] = str(rng.choice(common))
        texts.append(" ".join(rng.permutation(words)))
    vectors = TfidfVectorizer(
        tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True
    ).fit_transform(texts)
    cosine = (vectors @ vectors.T).toarray()
    for threshold in (0.5, 0.8, NEAR_DUPLICATE_SIMILARITY):
        upper = np.triu(cosine >= threshold - 1e-6, k=1)
        expected = set(zip(*np.nonzero(upper), strict=True))
        found = {(i, j) for i, j, _ in similar_pairs(texts, threshold)}
        assert found == {(int(i), int(j)) for i, j in expected}
        assert len(found) > 20  # the case is not empty
    scores = {(i, j): score for i, j, score in similar_pairs(texts, 0.5)}
    assert all(abs(score - cosine[i, j]) < 1e-4 for (i, j), score in scores.items())


def test_texts_without_words_and_huge_texts():
    rng = np.random.default_rng(3)
    train = _texts(rng, 10, 20) + ["!!! --- ???", " ".join(VOCABULARY[:2500])]
    test = _texts(rng, 3, 20) + [" ".join(VOCABULARY[:900])]  # long, but under 1,000 words
    report = check_data(_data(train, test), label_errors=False)
    assert _found(report) == {("no_words", "train/10.txt"), ("huge_text", "train/11.txt")}
    huge = next(p for p in report.problems if p.check == "huge_text")
    assert huge.detail.startswith("2,500 words (")


def test_text_statistics_in_summary_markdown_and_json(tmp_path):
    train = [" ".join(["w"] * count) for count in range(1, 101)]  # 1..100 words
    labels = [0] * 70 + [1] * 30
    report = check_data(_data(train, ["a b", "c d e"], labels, [0, 1]), label_errors=False)
    words = report.texts["words"]
    assert words["train"]["median"] == 50 and words["train"]["max"] == 100
    assert report.texts["longest"][0]["item"] == "train/99.txt"
    assert report.texts["majority_class"] == "neg" and report.texts["majority_share"] == 0.7
    summary = report.summary()
    assert "words per text: median 50" in summary and "max 100 (train/99.txt)" in summary
    assert "majority class 'neg': 70.0% of train" in summary
    assert "TF-IDF cosine >= 0.9" in summary
    markdown = report.to_markdown()
    assert "## Texts" in markdown and "| train | 100 | 1 | 50 |" in markdown
    assert json.loads(json.dumps(report.to_dict()))["texts"]["longer_than"] == {
        "200": 0.0,
        "400": 0.0,
    }


def test_data_check_command_prints_text_problems_with_snippets(tmp_path, capsys):
    rng = np.random.default_rng(4)
    root = tmp_path / "texts"
    for split, count in (("train", 12), ("test", 4)):
        for label in ("neg", "pos"):
            (root / split / label).mkdir(parents=True)
            for index, text in enumerate(_texts(rng, count)):
                (root / split / label / f"{index}.txt").write_text(text)
    original = (root / "train/pos/0.txt").read_text()
    (root / "train/pos/copy.txt").write_text(original.upper() + "!")
    (root / "test/neg/near.txt").write_text(original + " extra")
    out = tmp_path / "report"
    assert cli.main(["data", "check", str(root), f"--out={out}", "--fast"]) == 0
    printed = capsys.readouterr().out
    assert "duplicate (1)" in printed and "near_leak (1)" in printed
    assert (
        "test/neg/near.txt [test]: cosine 0.9" in printed and "train/pos/0.txt [train]" in printed
    )
    assert f"'{original[:30]}" in printed  # the texts themselves, not only their paths
    assert "words per text: median 30" in printed
    assert "## Texts" in (out / "data_report.md").read_text()


def test_augment_texts_adds_altered_copies_with_their_labels():
    rng = np.random.default_rng(5)
    texts = np.array(_texts(rng, 50, 40) + ["Hello, World!"], dtype=object)
    labels = np.arange(51) % 3
    new, new_labels = augment_texts(texts, labels, copies=2, word_dropout=0.25, word_swap=0.0)
    assert len(new) == 153 and new_labels.tolist() == labels.tolist() * 3
    assert new[:51].tolist() == texts.tolist()
    dropped = [1 - len(copy.split()) / 40 for copy in new[51:101]]
    assert 0.18 < float(np.mean(dropped)) < 0.32  # each word goes with probability 0.25
    assert all(
        set(copy.split()) <= set(text.split())
        for copy, text in zip(new[51:101], texts, strict=False)
    )
    assert all(model_words(copy) for copy in new[51:])  # one word is always kept
    swapped, _ = augment_texts(texts, labels, copies=1, word_dropout=0.0, word_swap=0.2)
    assert all(
        sorted(copy.split()) == sorted(model_words(text))
        for copy, text in zip(swapped[51:], texts, strict=True)
    )
    assert (
        sum(copy != model_text(text) for copy, text in zip(swapped[51:], texts, strict=True)) >= 49
    )
    again, _ = augment_texts(texts, labels, copies=2, word_dropout=0.25, word_swap=0.0)
    other, _ = augment_texts(texts, labels, copies=2, word_dropout=0.25, word_swap=0.0, seed=1)
    assert again.tolist() == new.tolist() and other.tolist() != new.tolist()


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"copies": -1}, "copies must be a whole number >= 0, received -1"),
        ({"word_dropout": 1.0}, "word_dropout must be in [0, 1)"),
        ({"word_swap": 2.0}, "word_swap must be in [0, 1]"),
    ],
)
def test_augment_texts_refuses_bad_settings(keywords, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        augment_texts(np.array(["a b"], dtype=object), np.array([0]), **keywords)


@pytest.mark.slow
def test_real_manual_pages_near_duplicates_are_real_and_the_search_is_exact():
    # bench/real_data.py's builder: ~2,600 English manual pages of this machine, each with its
    # page family ("git-add" -> "git") as group.
    from sklearn.feature_extraction.text import TfidfVectorizer

    from bench.real_data import man_pages

    try:
        pages = man_pages()
    except FileNotFoundError as error:
        pytest.skip(f"needs this machine's English manual pages: {error}")
    texts = [model_text(text) for text in pages.texts]
    pairs = similar_pairs(texts)
    same_family = [pages.groups[i] == pages.groups[j] for i, j, _ in pairs]
    # Measured: 47 pairs, 40 in one family; the others are one document under two names
    # (subuid/subgid, latin5/iso_8859-9).
    assert len(pairs) >= 20 and np.mean(same_family) >= 0.75
    vectors = TfidfVectorizer(
        tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True
    ).fit_transform(texts)
    cosine = (vectors @ vectors.T).toarray()
    expected = set(
        zip(*np.nonzero(np.triu(cosine >= NEAR_DUPLICATE_SIMILARITY - 1e-6, 1)), strict=True)
    )
    assert {(i, j) for i, j, _ in pairs} == {(int(i), int(j)) for i, j in expected}
    # Planted: 30 pages with one word changed and their case changed are found as such.
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(texts), 30, replace=False)
    variants = []
    for index in chosen:
        words = pages.texts[index].split()
        words[int(rng.integers(len(words)))] = "planted"
        variants.append(" ".join(words).upper())
    data = _data(list(pages.texts), variants)
    report = check_data(data, label_errors=False)
    leaks = {p.item: p.detail for p in report.problems if p.check == "near_leak"}
    assert set(leaks) >= {f"test/{k}.txt" for k in range(30)}


def test_a_search_over_budget_stops_and_says_so_after_the_test_texts(monkeypatch):
    # Texts of a few shared words: nearly every pair is a candidate. The search runs from the
    # last texts back, so the test texts are compared with all of train before it stops.
    import trainer.data.text_check as text_check

    rng = np.random.default_rng(6)
    words = "red green blue dark light".split()
    train = [" ".join(rng.choice(words, 6)) for _ in range(300)]
    test = [" ".join(train[k].split()[::-1]) for k in range(0, 20, 2)]  # same words
    data = _data(train, test)
    complete = check_data(data, label_errors=False)
    assert "near_duplicate_search" not in complete.problem_counts()
    monkeypatch.setattr(text_check, "_ROWS_PER_CHUNK", 20)  # blocks of 20 later texts
    monkeypatch.setattr(text_check, "SEARCH_BUDGET", 60_000)  # about 9 blocks of 310 pairs
    report = check_data(data, label_errors=False)
    (stopped,) = [p for p in report.problems if p.check == "near_duplicate_search"]
    assert "were not compared with the texts before them; the test texts were" in stopped.detail
    leaks = {p.item for p in report.problems if p.check in ("leak", "near_leak")}
    assert leaks == {p.item for p in complete.problems if p.check in ("leak", "near_leak")}
    assert len(leaks) == 10
    assert (
        0 < report.problem_counts()["near_duplicate"] < complete.problem_counts()["near_duplicate"]
    )
