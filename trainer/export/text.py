"""Text files the mobile runtimes load: token ids in, probabilities out, the tokenizer inside.

MediaPipe Tasks' `TextClassifier` (and the TFLite Task Library, which applies the same rules)
takes a string, tokenizes it with the tokenizer described in the file's metadata and feeds the
ids to the model: one int32 input of shape 1 x sequence_length for a regex tokenizer, three
(word ids, mask, type ids) for BERT's WordPiece. It reads the labels from the metadata and
treats the scores as probabilities. Our text models take float32 ids from the data pipeline
(`trainer.data.text.Vectorizer`, `trainer.models.bert.WordPieceTokenizer`) and return logits.
This module owns the difference:

- `text_input` reads from a recipe's `input_spec` which tokenizer made the ids, and whether
  MediaPipe can make the same ones (`TextInput.refused` says why not);
- `text_graph` wraps a model so the file takes int32 ids (cast inside the graph) and returns
  probabilities; recurrent layers are unrolled, because MediaPipe runs single-subgraph files
  only and a recurrent loop is a second subgraph;
- `regex_vocabulary` writes the regex tokenizer's vocabulary (`word id` per line, with
  `<PAD>` and `<UNKNOWN>`): MediaPipe splits on the same delimiter as training
  (`trainer.data.text.WORD_DELIMITER`) but never lower-cases, so every spelling that training
  mapped to an id is listed (`Vectorizer.spellings`); a spelling never seen in training and
  neither lower-case, Capitalized nor UPPER (e.g. "gNu") becomes unknown in the app;
- `text_classifier_metadata` packs the tokenizer, its vocabulary and the labels into the file;
- `mediapipe_text_check` classifies the raw test texts through `TextClassifier` and compares
  with LiteRT on the ids of the same texts.

Which model kinds load (measured with mediapipe 1.2.3, tests/test_mobile_text.py): bow, cnn,
lstm, gru, transformer (regex tokenizer) and bert (WordPiece; MediaPipe lower-cases ASCII and
does not strip accents, so a text with accented or non-ASCII capital letters can get other
pieces than training gave it). Not loadable: ids made with Keras's
`lower_and_strip_punctuation` (no regex tokenizer joins "don't" into "dont"), a cased BERT
vocabulary (MediaPipe lower-cases every text), and int8 files (the ids would be quantized).

It must not train models; verification and sidecars live in `trainer.export.verify`.

Example:

    from trainer.export.text import text_graph, text_input
    text = text_input(model, input_spec, out_dir="runs/demo")   # from the recipe's input_spec
    exported = text_graph(model, text)   # int32 ids (1 x length) in, probabilities out
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# What MediaPipe's regex preprocessor looks up for padding and out-of-vocabulary words; our
# Vectorizer gives them ids 0 and 1. Without a <START> line no start token is added.
PAD, UNKNOWN = "<PAD>", "<UNKNOWN>"
TOKENIZERS = ("regex", "wordpiece")
# The input names MediaPipe's metadata writer matches BERT's three tensors by (Model Maker's).
BERT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
_RECURRENT = ("LSTM", "GRU", "SimpleRNN")


@dataclasses.dataclass(frozen=True)
class TextInput:
    """How a text model's ids were made, and what the exported file packs to make them again.

    `refused` is empty when MediaPipe's tokenizer makes the ids training made; otherwise it
    says why not, and the file is exported for LiteRT (int32 ids, probabilities) without
    tokenizer metadata.
    """

    tokenizer: str  # regex (words; the Vectorizer) or wordpiece (BERT)
    sequence_length: int
    vocabulary_file: Path | None  # the file packed into the metadata
    delimiter: str = ""  # the regex tokenizer's RE2 delimiter pattern
    refused: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The numbers an app needs, for the sidecar JSON."""
        described: dict[str, Any] = {
            "tokenizer": self.tokenizer,
            "sequence_length": self.sequence_length,
            "dtype": "int32",
            "vocabulary_file": None if self.vocabulary_file is None else self.vocabulary_file.name,
            "mediapipe": self.refused or "loads",
        }
        if self.tokenizer == "regex":
            described.update(delimiter=self.delimiter, padding_id=0, unknown_id=1)
        return described


def text_input(model, input_spec: dict[str, Any] | None, out_dir: str | Path) -> TextInput | None:
    """The model's text input as `input_spec` describes it, or None when the spec names no
    `tokenizer` (not a text model of ours: exported as it is).

    The spec (written by recipes/text_classifier.py) holds `tokenizer` (regex or wordpiece),
    `standardize` and `delimiter` (regex), `lowercase` (wordpiece), and the names of the files
    in `out_dir` the tokenizer reads: `tokenizer_vocabulary` (regex) or `vocabulary`
    (wordpiece).
    """
    spec = input_spec or {}
    tokenizer = spec.get("tokenizer")
    if not tokenizer:
        return None
    if tokenizer not in TOKENIZERS:
        raise ValueError(
            f"input_spec tokenizer must be one of {', '.join(TOKENIZERS)}, received {tokenizer!r}"
        )
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 2 or not shape[1]:
        raise ValueError(
            f"input_spec names a {tokenizer} tokenizer but the model takes {shape}: a text "
            "model takes one row of token ids, shape (batch, sequence_length)"
        )
    length = int(shape[1])
    if tokenizer == "wordpiece":
        if spec.get("lowercase") is False:
            return TextInput(
                tokenizer,
                length,
                None,
                refused="the BERT vocabulary is cased, and MediaPipe lower-cases every text "
                "before WordPiece; fine-tune an uncased BERT for a file MediaPipe loads",
            )
        vocabulary = _existing(out_dir, spec.get("vocabulary"), "vocabulary")
        if "" in vocabulary.read_text(encoding="utf-8").splitlines():
            return TextInput(
                tokenizer,
                length,
                None,
                refused=f"{vocabulary.name} has an empty line, which MediaPipe skips, so "
                "every later piece would get another id than in training",
            )
        return TextInput(tokenizer, length, vocabulary)
    standardize = spec.get("standardize", "lower_and_strip_punctuation")
    if standardize != "lower_and_split_punctuation":
        return TextInput(
            tokenizer,
            length,
            None,
            refused=f"its words were made with standardize={standardize!r}, which joins the "
            'pieces of a word around punctuation ("don\'t" -> "dont"); MediaPipe\'s regex '
            "tokenizer can only split there. Retrain with "
            "--standardize=lower_and_split_punctuation (the default) for a file MediaPipe loads",
        )
    vocabulary = _existing(out_dir, spec.get("tokenizer_vocabulary"), "tokenizer_vocabulary")
    return TextInput(tokenizer, length, vocabulary, delimiter=str(spec["delimiter"]))


def _existing(out_dir: str | Path, name: str | None, key: str) -> Path:
    if not name:
        raise ValueError(f"input_spec has no {key!r}: name the tokenizer's vocabulary file")
    path = Path(out_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the recipe's artifacts hold it ({key} in input_spec); write "
            "the artifacts into the export folder before exporting"
        )
    return path


def regex_vocabulary(spellings: dict[str, int]) -> str:
    """The regex tokenizer's vocabulary file: `<PAD> 0`, `<UNKNOWN> 1`, then `spelling id` per
    line for every spelling of `spellings` (from `Vectorizer.spellings`), by id.

    Example:

        >>> print(regex_vocabulary({"good": 2, "Good": 2, "film": 3}), end="")
        <PAD> 0
        <UNKNOWN> 1
        good 2
        Good 2
        film 3
    """
    for spelling in spellings:
        if not spelling or any(character.isspace() for character in spelling):
            raise ValueError(
                f"a vocabulary spelling must be one word without spaces, received {spelling!r}"
            )
    ordered = sorted(spellings.items(), key=lambda item: item[1])
    lines = [f"{PAD} 0", f"{UNKNOWN} 1", *(f"{word} {index}" for word, index in ordered)]
    return "\n".join(lines) + "\n"


def _unrolled(model):
    """`model` with every LSTM/GRU layer unrolled (same weights): a loop-free graph, which
    converts to one TFLite subgraph. The file grows with sequence_length steps of ops, not
    weights."""
    import tf_keras as keras

    config = model.get_config()
    found = []

    def unroll(node) -> None:
        if isinstance(node, dict):
            if node.get("class_name") in _RECURRENT and isinstance(node.get("config"), dict):
                node["config"]["unroll"] = True
                found.append(node["class_name"])
            for value in node.values():
                unroll(value)
        elif isinstance(node, list):
            for value in node:
                unroll(value)

    unroll(config)
    if not found:
        return model
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _layers():
    """The wrapper's two small layers, defined on first use so importing this module loads no
    TensorFlow."""
    import tensorflow as tf
    import tf_keras as keras

    class TokenIds(keras.layers.Layer):
        """int32 ids -> the float32 ids the model was trained on (exact below 2**24)."""

        def call(self, ids):
            return tf.cast(ids, tf.float32)

    class BertIds(keras.layers.Layer):
        """(word ids, mask, type ids) -> float32 ids of the first segment's real tokens; the
        model itself treats id 0 as padding and uses type 0 only."""

        def call(self, inputs):
            ids, mask, types = inputs
            kept = tf.logical_and(tf.not_equal(mask, 0), tf.equal(types, 0))
            return tf.cast(tf.where(kept, ids, tf.zeros_like(ids)), tf.float32)

    return TokenIds, BertIds


def text_graph(model, text: TextInput, outputs: str = "probabilities"):
    """`model` behind int32 token-id input(s) of shape 1 x sequence_length, with softmax at the
    output unless `outputs="logits"`: what MediaPipe's TextClassifier feeds and expects.

    A wordpiece model takes BERT's three inputs (`BERT_INPUTS`); others one row of ids.
    Recurrent layers are unrolled. The wrapper shares the model's weights (the recurrent ones
    are copied) and computes in float32.
    """
    import tf_keras as keras

    from trainer.export.mobile import check_outputs, ends_in_softmax
    from trainer.precision import float32_copy

    check_outputs(outputs)
    model = _unrolled(float32_copy(model))
    if outputs == "logits" and ends_in_softmax(model):
        raise ValueError(
            f"outputs='logits' was asked for, but {model.name} ends in a softmax: export "
            "probabilities, or remove the softmax"
        )
    token_ids, bert_ids = _layers()
    length = text.sequence_length
    if text.tokenizer == "wordpiece":
        inputs = [keras.Input((length,), dtype="int32", name=name) for name in BERT_INPUTS]
        ids = bert_ids(name="first_segment_ids")(inputs)
    else:
        inputs = keras.Input((length,), dtype="int32", name="token_ids")
        ids = token_ids(name="float_ids")(inputs)
    x = model(ids)
    if outputs == "probabilities" and not ends_in_softmax(model):
        x = keras.layers.Softmax(name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, x, name=model.name)


def text_description(text: TextInput, labels: Sequence[str], outputs: str) -> str:
    """The metadata's description of a text file."""
    tokens = "WordPiece tokens" if text.tokenizer == "wordpiece" else "words"
    return (
        f"Classifies a text (its first {text.sequence_length} {tokens}) into {len(labels)} "
        f"classes ({', '.join(labels)}); returns {outputs}. Made with trainer."
    )


def text_classifier_metadata(
    model_content: bytes, text: TextInput, labels: Sequence[str], general: tuple[str, str, str]
) -> bytes:
    """`model_content` with text-classifier metadata packed in: `general` (name, description,
    version), the tokenizer (regex: delimiter and vocabulary; wordpiece: vocabulary) with its
    vocabulary file, and the output's TENSOR_AXIS_LABELS file listing `labels` in order."""
    from trainer.export.metadata import writers

    if text.refused or text.vocabulary_file is None:
        raise ValueError(f"no tokenizer metadata for this file: {text.refused}")
    found = writers()

    class Writer(found.metadata_writer.MetadataWriter):
        # MediaPipe's writer removes its temporary folder in __del__; the BERT writer lives
        # until interpreter exit, where that fails noisily. The folder is removed below.
        def __del__(self) -> None:
            pass

    name, description, version = general
    writer = Writer.create(bytearray(model_content))
    try:
        writer.add_general_info(name, description)
        # GeneralMd and the schema have a version; add_general_info has no argument for it.
        writer._general_md.version = version
        vocabulary = str(text.vocabulary_file)
        if text.tokenizer == "regex":
            tokenizer = found.metadata_writer.RegexTokenizer(text.delimiter, vocabulary)
            writer.add_regex_text_input(tokenizer)
        else:
            names = _bert_tensor_names(model_content)
            tokenizer = found.metadata_writer.BertTokenizer(vocabulary)
            writer.add_bert_text_input(tokenizer, *names)
        writer.add_classification_output(found.metadata_writer.Labels().add(list(labels)))
        content, _ = writer.populate()
    finally:
        writer._temp_folder.cleanup()
    return bytes(content)


def _bert_tensor_names(model_content: bytes) -> tuple[str, str, str]:
    """The file's tensor names of BERT's word ids, mask and type ids, in that order."""
    from trainer.export.tflite import _interpreter

    names = [detail["name"] for detail in _interpreter(model_content, 1).get_input_details()]
    ordered = []
    for wanted in BERT_INPUTS:
        matches = [name for name in names if wanted in name]
        if len(matches) != 1:
            raise ValueError(
                f"the BERT file's inputs are {names}; expected one named like {wanted!r}"
            )
        ordered.append(matches[0])
    return ordered[0], ordered[1], ordered[2]


def mediapipe_text_check(
    path: str | Path, texts: Sequence[str], y: np.ndarray, litert_scores: np.ndarray
):
    """Classifies every text with MediaPipe Tasks' `TextClassifier` loaded from the file at
    `path` (all categories per text) and compares with `litert_scores`, LiteRT's outputs on
    the ids our pipeline made from the same texts (N x classes). Returns a
    `trainer.export.runtimes.RuntimeCheck`; a file the runtime refuses gives `loaded=False`
    with its message."""
    from trainer.export.runtimes import MEDIAPIPE, RuntimeCheck, mediapipe_check

    try:
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.text import TextClassifier, TextClassifierOptions
    except ImportError as error:
        return RuntimeCheck(
            MEDIAPIPE,
            False,
            error=f"mediapipe is not installed ({error}): pip install mediapipe==1.2.3",
        )
    if len(texts) != len(litert_scores):
        raise ValueError(
            f"{len(texts)} texts but {len(litert_scores)} rows of LiteRT scores; pass the texts "
            "the test ids were made from, in the same order"
        )
    options = TextClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)))
    return mediapipe_check(
        lambda: TextClassifier.create_from_options(options),
        lambda classifier, text: classifier.classify(str(text)).classifications[0].categories,
        texts,
        y,
        litert_scores,
    )
