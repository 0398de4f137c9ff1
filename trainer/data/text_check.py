"""The data check's text part: texts as the models read them, near-duplicates, lengths.

`trainer.data.check` calls this module for text data. It owns:
- `model_words`: a text's words exactly as the text models see them (ASCII lower-case, then
  every run of characters that are not letters, digits or combining marks is a word boundary:
  `trainer.data.text.lower_and_split_punctuation`, in plain Python so the check needs no
  TensorFlow). Exact duplicates and leaks of texts are found on these words, so "Great film!"
  and "great film" are one text, as they are to the model.
- `find_near_duplicates`: texts that differ by a few words. Each text is a TF-IDF vector of
  its words (scikit-learn's `TfidfVectorizer`, sublinear term frequency, L2 norm, idf from
  every split); two texts are near-duplicates when their cosine similarity is at least
  `NEAR_DUPLICATE_SIMILARITY` (0.9: on Debian's package descriptions and manual pages, pairs
  above it are one template with a name or a version changed; below 0.85 they are siblings
  that share a paragraph). The search is exact, not sampled: every pair at or above the
  threshold is found (see `similar_pairs`), unless the texts share so many words that it
  would score over `SEARCH_BUDGET` pairs (about 9 s of CPU here); then it stops, after the test
  texts, and says so (`near_duplicate_search`).
- `text_problems` and `text_statistics`: texts without a word, texts far longer than the rest,
  and the numbers the report prints (length percentiles, the longest texts, the share longer
  than what the models read, the majority class).
This module must not import TensorFlow or change the data.

Example:

    >>> from trainer.data.text_check import model_words, similar_pairs
    >>> model_words("GNU/Linux's best-known editor_2")
    ['gnu', 'linux', 's', 'best', 'known', 'editor', '2']
    >>> texts = ["a fast text editor for the console", "a fast text editor for the terminal",
    ...          "an arcade game with ducks"]
    >>> [(i, j, round(s, 2)) for i, j, s in similar_pairs(texts, 0.5)]
    [(0, 1, 0.78)]
"""

import functools
import re
import unicodedata

import numpy as np

from trainer.data.types import LoadedData, Problem

NEAR_DUPLICATE_SIMILARITY = 0.9  # TF-IDF cosine at or above which two texts are near-duplicates
# The text models read this many tokens per text by default (text_classifier: linear 400, the
# others 200); the report gives the share of texts longer than each.
MODEL_TOKENS = (200, 400)
# A text is huge when it has more words than both of these: far longer than the rest of the
# data and than any model reads.
HUGE_TEXT_WORDS = 1000
HUGE_TEXT_TIMES_MEDIAN = 10
SNIPPET_CHARACTERS = 70
# Words in more than this share of the texts are left out of the candidate search (their
# weight is bounded separately, so no pair is missed); it keeps the sparse product small.
_COMMON_WORD_SHARE = 0.01
_ROWS_PER_CHUNK = 1000
_TOLERANCE = 1e-6  # float32 sums: a pair at the threshold counts
_ENTRIES_PER_BLOCK = 5_000_000  # product entries per block of later texts (memory)
# Pairs scored before the near-duplicate search stops (about 9 s of CPU here): reached
# only by data whose texts share most of their words, where nearly every pair is a candidate.
SEARCH_BUDGET = 200_000_000
_LOWER_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", "abcdefghijklmnopqrstuvwxyz ")
_ASCII_WORD = re.compile(r"[^\W_]+")


@functools.cache
def _word_pattern() -> re.Pattern:
    """Runs of letters, digits and combining marks. Python's `\\w` is letters, digits and the
    underscore (turned into a space before matching); the marks (categories Mn, Mc, Me, in
    the planes that hold any) are added as ranges."""
    ranges, start, previous = [], None, -2
    for code in [*range(0x20000), *range(0xE0000, 0xE1000)]:
        if unicodedata.category(chr(code))[0] != "M":
            continue
        if code != previous + 1:
            if start is not None:
                ranges.append((start, previous))
            start = code
        previous = code
    if start is not None:
        ranges.append((start, previous))
    marks = "".join(
        re.escape(chr(low)) + ("" if low == high else "-" + re.escape(chr(high)))
        for low, high in ranges
    )
    return re.compile(f"[\\w{marks}]+")


def model_words(text: str) -> list[str]:
    """The words of `text` as `lower_and_split_punctuation` gives them to the text models."""
    text = str(text).translate(_LOWER_ASCII)
    # Most texts are ASCII, where the plain pattern is the same and several times faster.
    return (_ASCII_WORD if text.isascii() else _word_pattern()).findall(text)


def model_text(text: str) -> str:
    """`model_words` joined by single spaces: equal for two texts the models cannot tell apart."""
    return " ".join(model_words(text))


def model_texts(data: LoadedData) -> dict[str, list[str]]:
    """`model_text` of every text, by split."""
    return {
        split: [model_text(text) for text in data.arrays(split)[0]] for split in data.split_names()
    }


def snippet(text: str, characters: int = SNIPPET_CHARACTERS) -> str:
    """The start of `text` on one line, quoted, cut at `characters` with an ellipsis."""
    line = " ".join(str(text).split())
    return repr(line if len(line) <= characters else line[: characters - 1].rstrip() + "…")


def _tfidf(texts: list[str]):
    """Row-normalized TF-IDF vectors (float32 CSR) of space-separated words."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True
    )
    return vectorizer.fit_transform(texts).astype(np.float32).tocsr()


def _scored_pairs(
    texts: list[str], similarity: float, progress: dict | None = None, budget: int = 0
):
    """Yields, a block of later texts at a time, arrays (earlier, later, cosine) of every
    pair whose TF-IDF cosine is at least `similarity`; each pair comes once.

    Exact, and cheap on real text: the product that finds candidates runs over the rarer
    words only (a word in over 1% of the texts is common), and a candidate is a pair whose
    similarity on the rare words plus the most the common words could add (the product of the
    two texts' common-word norms) reaches the threshold. Pairs that share no rare word can
    only reach it on common words, which takes both texts' common-word norms at least the
    threshold ("heavy" texts, compared with each other in full). Where candidates are many
    (texts made of a few words), the block is scored in full instead. Memory stays one block's
    product. Blocks run from the last texts to the first, so a search stopped by `budget`
    (scored pairs, 0 = none) has compared the test texts first; `progress["searched"]` counts
    the later texts whose every earlier pair was scored."""
    if not 0 < similarity <= 1:
        raise ValueError(f"similarity must be in (0, 1], received {similarity}")
    progress = {} if progress is None else progress
    progress["searched"] = 0
    if len(texts) < 2 or not any(texts):
        progress["searched"] = len(texts)
        return
    vectors = _tfidf(texts)
    count = len(texts)
    document_counts = np.bincount(vectors.indices, minlength=vectors.shape[1])
    common = document_counts > max(2, _COMMON_WORD_SHARE * count)
    rare = vectors.multiply(~common).tocsr()
    rare.eliminate_zeros()  # the mask leaves stored zeros, which the product would still visit
    rare_transposed = rare.T.tocsr()
    common_norm = np.sqrt(np.asarray(vectors.multiply(common).power(2).sum(axis=1)).ravel())
    heavy = np.flatnonzero(common_norm >= similarity - _TOLERANCE)
    heavy_transposed = vectors[heavy].T.tocsr()
    rows_per_block = max(20, min(_ROWS_PER_CHUNK, _ENTRIES_PER_BLOCK // count))
    scored = 0
    for stop in range(count, 0, -rows_per_block):
        start = max(0, stop - rows_per_block)
        product = (rare[start:stop] @ rare_transposed).tocoo()
        later, earlier = product.row + start, product.col
        keep = earlier < later
        later, earlier, shared = later[keep], earlier[keep], product.data[keep]
        keep = shared + common_norm[later] * common_norm[earlier] >= similarity - _TOLERANCE
        later, earlier = later[keep], earlier[keep]
        block_heavy = heavy[(heavy >= start) & (heavy < stop)]
        if len(later) + len(block_heavy) * len(heavy) > 50 * (stop - start):
            # many candidates (texts made of a few words): score the block in full
            cost = (stop - start) * count
            if budget and scored + cost > budget:
                return
            full = (vectors[start:stop] @ vectors.T).tocoo()
            later, earlier, scores = full.row + start, full.col, full.data
            keep = earlier < later
            later, earlier, scores = later[keep], earlier[keep], scores[keep]
        else:
            if len(block_heavy):
                extra = (vectors[block_heavy] @ heavy_transposed).tocoo()
                later = np.concatenate([later, block_heavy[extra.row]])
                earlier = np.concatenate([earlier, heavy[extra.col]])
                keep = earlier < later
                # each pair once (np.unique sorts; an empty block stays empty)
                key = np.unique(later[keep].astype(np.int64) * count + earlier[keep])
                later, earlier = key // count, key % count
            cost = len(later)
            if budget and scored + cost > budget:
                return
            scores = np.asarray(
                vectors[later].multiply(vectors[earlier]).sum(axis=1), dtype=np.float32
            ).ravel()
        scored += cost
        progress["searched"] += stop - start
        keep = scores >= similarity - _TOLERANCE
        if keep.any():
            yield earlier[keep], later[keep], np.minimum(scores[keep], 1.0)


def similar_pairs(
    texts: list[str], similarity: float = NEAR_DUPLICATE_SIMILARITY
) -> list[tuple[int, int, float]]:
    """Every pair (i, j, cosine) with i < j whose TF-IDF cosine (words, sublinear tf, L2
    norm) is at least `similarity`, sorted. `texts` are compared as given (pass `model_text`
    of each for the models' words). Exact; measured on a shared 2-core CPU: 0.6 s of CPU
    for 9,108 Debian package descriptions, 6.5-10 s for all 60,954 of Debian main (see
    `_scored_pairs` for how). All pairs are returned at once; `find_near_duplicates` keeps
    only each text's closest, and stops at `SEARCH_BUDGET` on texts made of a few words.
    """
    found = [
        (int(i), int(j), float(score))
        for earlier, later, scores in _scored_pairs(texts, similarity)
        for i, j, score in zip(earlier, later, scores, strict=True)
    ]
    return sorted(found)


def _closest_earlier(
    texts: list[str], text_id: np.ndarray, split_of: np.ndarray, similarity: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """For each text, its closest earlier text at `similarity` or more that is not identical
    to it (`text_id` differs), in two columns: within its split, and in an earlier split
    (`split_of`, by rank). Returns (the cosines, the earlier texts' indices or -1 where there
    is none, how many texts the search compared before `SEARCH_BUDGET` stopped it)."""
    best_score = np.zeros((len(texts), 2), np.float32)
    best_text = np.full((len(texts), 2), -1, np.int64)
    progress: dict = {}
    for earlier, later, scores in _scored_pairs(texts, similarity, progress, SEARCH_BUDGET):
        identical = text_id[earlier] == text_id[later]  # exact duplicates or leaks instead
        earlier, later, scores = earlier[~identical], later[~identical], scores[~identical]
        across = (split_of[earlier] != split_of[later]).astype(np.int64)
        order = np.lexsort((earlier, -scores, across, later))  # best, then first, per kind
        earlier, later, scores, across = earlier[order], later[order], scores[order], across[order]
        first = np.ones(len(later), bool)
        first[1:] = (later[1:] != later[:-1]) | (across[1:] != across[:-1])
        for i, j, score, kind in zip(
            earlier[first], later[first], scores[first], across[first], strict=True
        ):
            if score > best_score[j, kind]:
                best_score[j, kind], best_text[j, kind] = score, i
    return best_score, best_text, progress["searched"]


def find_near_duplicates(
    data: LoadedData,
    similarity: float = NEAR_DUPLICATE_SIMILARITY,
    words: dict[str, list[str]] | None = None,
) -> list[Problem]:
    """Near-duplicates within a split (`near_duplicate`: each text with an earlier, not
    identical, text of its split at `similarity` or more, naming the closest) and across
    splits (`near_leak`: a val text close to a train text, a test text close to a train or
    val text; a leak outweighs a copy within the split). Texts the models read as identical
    are exact duplicates or leaks instead. `words`: `model_texts(data)`, when computed."""
    words = words or model_texts(data)
    splits = data.split_names()
    texts, split_of, index_of = [], [], []
    for rank, split in enumerate(splits):
        texts += words[split]
        split_of += [rank] * len(words[split])
        index_of += range(len(words[split]))
    split_of, index_of = np.array(split_of), np.array(index_of)
    first_of: dict[str, int] = {}
    text_id = np.array([first_of.setdefault(text, len(first_of)) for text in texts], np.int64)
    best_score, best_text, searched = _closest_earlier(texts, text_id, split_of, similarity)
    # A text identical to an earlier one is an exact leak or duplicate, reported as such.
    seen_in, seen_before = set(), {}  # (text, split) seen; text -> first split it is in
    exact = np.zeros((len(texts), 2), bool)
    for j, key in enumerate(text_id.tolist()):
        exact[j, 0] = (key, split_of[j]) in seen_in
        exact[j, 1] = seen_before.setdefault(key, split_of[j]) < split_of[j]
        seen_in.add((key, split_of[j]))
    best_text[exact] = -1
    ids = {split: data.split_ids(split) for split in splits}
    problems = []
    if searched < len(texts):
        unsearched = len(texts) - searched
        problems.append(
            Problem(
                "near_duplicate_search",
                "all",
                f"stopped after {SEARCH_BUDGET:,} pairs: the first {unsearched:,} of "
                f"{len(texts):,} texts (in the order train, val, test) were not compared with "
                f"the texts before them; the test texts were. So many candidate pairs mean "
                f"most texts share most of their words",
            )
        )
    for j in np.flatnonzero((best_text >= 0).any(axis=1) & ~exact[:, 1]):
        kind = 1 if best_text[j, 1] >= 0 else 0
        i, score = best_text[j, kind], best_score[j, kind]
        split, other_split = splits[split_of[j]], splits[split_of[i]]
        index, other_index = index_of[j], index_of[i]
        (texts_of_split, labels), (other_texts, other_labels) = (
            data.arrays(split),
            data.arrays(other_split),
        )
        conflict = (
            ""
            if labels[index] == other_labels[other_index]
            else f", labelled {data.class_names[labels[index]]!r} here and "
            f"{data.class_names[other_labels[other_index]]!r} there"
        )
        where = f" [{other_split}]" if kind else ""
        problems.append(
            Problem(
                "near_leak" if kind else "near_duplicate",
                ids[split][index],
                f"cosine {score:.2f} with {ids[other_split][other_index]}{where}"
                f"{conflict}: {snippet(texts_of_split[index])} ~ "
                f"{snippet(other_texts[other_index])}",
                split,
            )
        )
    return problems


def _word_counts(words: dict[str, list[str]]) -> dict[str, np.ndarray]:
    return {
        split: np.array([text.count(" ") + 1 if text else 0 for text in found], np.int64)
        for split, found in words.items()
    }


def huge_text_words(counts: np.ndarray) -> int:
    """The word count above which a text is huge: `HUGE_TEXT_TIMES_MEDIAN` times the median,
    and at least `HUGE_TEXT_WORDS`."""
    median = float(np.median(counts)) if len(counts) else 0.0
    return int(max(HUGE_TEXT_WORDS, HUGE_TEXT_TIMES_MEDIAN * median))


def text_problems(data: LoadedData, words: dict[str, list[str]] | None = None) -> list[Problem]:
    """Texts without a single word the models read (`no_words`: only punctuation, symbols or
    spaces), and huge texts (`huge_text`: see `huge_text_words`). `words`: `model_texts(data)`,
    when already computed."""
    counts = _word_counts(words or model_texts(data))
    limit = huge_text_words(np.concatenate(list(counts.values())))
    problems = []
    for split, words in counts.items():
        texts, ids = data.arrays(split)[0], data.split_ids(split)
        for index in np.flatnonzero(words == 0):
            problems.append(
                Problem(
                    "no_words", ids[index], f"no letter or digit: {snippet(texts[index])}", split
                )
            )
        for index in np.flatnonzero(words > limit):
            problems.append(
                Problem(
                    "huge_text",
                    ids[index],
                    f"{words[index]:,} words ({len(str(texts[index])):,} characters; huge = "
                    f"over {limit:,} words): {snippet(texts[index])}",
                    split,
                )
            )
    return problems


def text_statistics(
    data: LoadedData,
    similarity: float = NEAR_DUPLICATE_SIMILARITY,
    words: dict[str, list[str]] | None = None,
) -> dict:
    """What the report prints about texts: words per text (percentiles per split and over
    all), the share longer than each of `MODEL_TOKENS`, the three longest texts, the majority
    class of train and the near-duplicate rule. `words`: `model_texts(data)`, if computed."""
    counts = _word_counts(words or model_texts(data))
    every = np.concatenate(list(counts.values()))

    def percentiles(words: np.ndarray) -> dict:
        if not len(words):
            return {"texts": 0}
        p50, p90, p99 = np.percentile(words, [50, 90, 99])
        return {
            "texts": int(len(words)),
            "min": int(words.min()),
            "median": round(float(p50)),
            "p90": round(float(p90)),
            "p99": round(float(p99)),
            "max": int(words.max()),
        }

    longest = []
    owners = [(split, index) for split, words in counts.items() for index in range(len(words))]
    for position in np.argsort(-every, kind="stable")[:3]:
        split, index = owners[position]
        text = data.arrays(split)[0][index]
        longest.append(
            {
                "item": data.split_ids(split)[index],
                "split": split,
                "words": int(every[position]),
                "characters": len(str(text)),
                "snippet": snippet(text),
            }
        )
    train_counts = np.bincount(np.asarray(data.y_train, np.int64), minlength=data.num_classes)
    majority = int(np.argmax(train_counts))
    present = train_counts[train_counts > 0]
    return {
        "words": {"all": percentiles(every)} | {s: percentiles(w) for s, w in counts.items()},
        "longer_than": {
            str(tokens): round(float(np.mean(every > tokens)) if len(every) else 0.0, 4)
            for tokens in MODEL_TOKENS
        },
        "huge_above_words": huge_text_words(every),
        "longest": longest,
        "majority_class": data.class_names[majority],
        "majority_share": round(float(train_counts[majority] / max(1, train_counts.sum())), 4),
        "largest_to_smallest": round(float(present.max() / present.min()), 2)
        if len(present)
        else 0.0,
        "near_duplicate_rule": f"TF-IDF cosine >= {similarity:g} (words, sublinear tf)",
    }


def summary_lines(statistics: dict) -> list[str]:
    """The text lines of `DataReport.summary`: lengths, what the models read, balance."""
    words = statistics["words"]["all"]
    if not words.get("texts"):
        return []
    longest = statistics["longest"][0]
    longer = ", ".join(
        f"{share * 100:.1f}% over {tokens}" for tokens, share in statistics["longer_than"].items()
    )
    return [
        f"  words per text: median {words['median']:g}, 90% {words['p90']:g}, 99% "
        f"{words['p99']:g}, max {words['max']:,} ({longest['item']}); {longer} "
        "(the models read the first 400 (linear) or 200 words: --sequence_length)",
        f"  majority class {statistics['majority_class']!r}: "
        f"{statistics['majority_share'] * 100:.1f}% of train (always answering it scores that); "
        f"largest/smallest class {statistics['largest_to_smallest']:g}x",
        f"  near-duplicates: {statistics['near_duplicate_rule']}; exact duplicates and leaks: "
        "the same words after the models' lower-casing",
    ]


def markdown_lines(statistics: dict) -> list[str]:
    """The `## Texts` section of `data_report.md`."""
    lines = [
        "## Texts",
        "",
        "Words as the text models split them (ASCII lower-case, every character that is not a "
        "letter, digit or combining mark separates words).",
        "",
        "| split | texts | min | median | 90% | 99% | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for split, words in statistics["words"].items():
        if words.get("texts"):
            lines.append(
                f"| {split} | {words['texts']:,} | {words['min']:,} | {words['median']:g} | "
                f"{words['p90']:g} | {words['p99']:g} | {words['max']:,} |"
            )
    longer = "; ".join(
        f"{share * 100:.1f}% of the texts are longer than {tokens} words"
        for tokens, share in statistics["longer_than"].items()
    )
    lines += [
        "",
        f"{longer}. `text_classifier` reads the first 400 words with the default `linear` "
        "model and 200 with the others (`--sequence_length`); the rest of a text is ignored. "
        f"A text over {statistics['huge_above_words']:,} words is reported as huge.",
        "",
        "Longest:",
        "",
        *[
            f"- `{entry['item']}` [{entry['split']}]: {entry['words']:,} words, "
            f"{entry['characters']:,} characters: {entry['snippet']}"
            for entry in statistics["longest"]
        ],
        "",
        f"Majority class of train: {statistics['majority_class']!r}, "
        f"{statistics['majority_share'] * 100:.1f}% (a model that always answers it scores "
        f"that); largest/smallest class {statistics['largest_to_smallest']:g}x.",
        "",
        f"Near-duplicates: {statistics['near_duplicate_rule']}, every pair searched. Exact "
        "duplicates and leaks compare the words above, so texts differing only in case or "
        "punctuation count as the same text.",
        "",
    ]
    return lines
