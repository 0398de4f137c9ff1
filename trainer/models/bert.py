"""BERT from its original TensorFlow checkpoint, with WordPiece tokenization, on tf_keras.

Reads the folder Google publishes for every BERT (github.com/google-research/bert, e.g.
`uncased_L-4_H-256_A-4.zip`, one of the small BERTs that fine-tune on a CPU):
`bert_config.json`, `vocab.txt` and `bert_model.ckpt.index` + `bert_model.ckpt.data-*`. The
encoder is built from tf_keras layers (embeddings, post-norm self-attention blocks with GELU,
the pooler) so the one model object goes through fit, TF-MOT and the TFLite converter; the
weights are copied from the checkpoint by their original names. keras-hub needs Keras 3 and
tf-models-official pins its own TensorFlow, so neither is used. The tokenizer is BERT's own
algorithm in Python (basic split + greedy longest-match WordPiece over vocab.txt), run in the
data pipeline, so the model needs no string ops; its exported file takes BERT's three int32
inputs (word ids, mask, type ids) with the WordPiece vocabulary in its metadata, which is what
MediaPipe Tasks' TextClassifier feeds (`trainer.export.text`). MediaPipe lower-cases ASCII
letters only and keeps accents, so a text with accented or non-ASCII capital letters can get
other pieces in an app than here. This module must not compile, train or export.

Example:

    from trainer.models.bert import WordPieceTokenizer, bert_classifier
    tokenizer = WordPieceTokenizer("models/bert/uncased_L-4_H-256_A-4/vocab.txt")
    ids = tokenizer(["a good film"], sequence_length=128)  # float32 (1, 128)
    model = bert_classifier("models/bert/uncased_L-4_H-256_A-4", 128, num_classes=2)
"""

import dataclasses
import json
import unicodedata
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.config import check_number
from trainer.models.text import MaskedMeanPooling, PaddingMask  # noqa: F401  (registered)

layers = keras.layers
serializable = keras.saving.register_keras_serializable(package="trainer")
CHECKPOINT = "bert_model.ckpt"
WHERE_TO_GET = (
    "Download a BERT from https://github.com/google-research/bert (for a CPU, one of the "
    "small BERTs such as uncased_L-4_H-256_A-4.zip), unzip it and pass the folder as "
    "--bert_dir=FOLDER (suggested place: models/bert/<name>/). The folder must hold "
    "bert_config.json, vocab.txt and bert_model.ckpt.index + bert_model.ckpt.data-*."
)


@dataclasses.dataclass
class BertConfig:
    """The fields of `bert_config.json` this encoder uses (names as Google wrote them)."""

    vocab_size: int
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2

    @classmethod
    def from_json(cls, path: str | Path) -> "BertConfig":
        values = json.loads(Path(path).read_text())
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def check_bert_folder(folder: str | Path) -> Path:
    """Returns the folder if it holds a BERT checkpoint; otherwise says what is missing and
    where to get it (nothing is ever downloaded)."""
    folder = Path(folder).expanduser() if str(folder) else Path("")
    if not str(folder) or str(folder) == ".":
        raise FileNotFoundError(f"--model=bert needs a pretrained BERT folder. {WHERE_TO_GET}")
    wanted = ["bert_config.json", "vocab.txt", f"{CHECKPOINT}.index"]
    missing = [name for name in wanted if not (folder / name).is_file()]
    if not missing and not list(folder.glob(f"{CHECKPOINT}.data-*")):
        missing.append(f"{CHECKPOINT}.data-00000-of-00001")
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a BERT folder: {', '.join(missing)} missing. {WHERE_TO_GET}"
        )
    return folder


# ----------------------------------------------------------------------------- tokenizer


def _is_punctuation(character: str) -> bool:
    code = ord(character)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(character).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


class WordPieceTokenizer:
    """BERT's tokenizer: clean, lower-case and strip accents (uncased models), split on
    whitespace, punctuation and CJK characters, then greedy longest-match WordPiece with
    `##` continuations over `vocab.txt` (line number = id).

    Example:

        tokenizer = WordPieceTokenizer("vocab.txt")
        tokenizer.tokenize("Unaffable!")        # ['una', '##ffa', '##ble', '!']
        tokenizer(["Unaffable!"], sequence_length=8)  # [[CLS] ... [SEP] 0 0] as float32
    """

    def __init__(self, vocab_path: str | Path, lower_case: bool = True, max_word_chars: int = 100):
        lines = Path(vocab_path).read_text(encoding="utf-8").splitlines()
        self.vocabulary = {token: index for index, token in enumerate(lines) if token}
        for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
            if special not in self.vocabulary:
                raise ValueError(
                    f"{vocab_path} has no {special} token; it is not a BERT vocabulary"
                )
        self.lower_case, self.max_word_chars = lower_case, max_word_chars

    def _words(self, text: str) -> list[str]:
        characters = []
        for character in unicodedata.normalize("NFC", text):
            code = ord(character)
            if code == 0 or code == 0xFFFD or unicodedata.category(character) in ("Cc", "Cf"):
                if character not in "\t\n\r":
                    continue
            characters.append(f" {character} " if _is_cjk(code) else character)
        words = []
        for word in "".join(characters).split():
            if self.lower_case:
                word = unicodedata.normalize("NFD", word.lower())
                word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            current = ""
            for character in word:
                if _is_punctuation(character):
                    words += [current, character] if current else [character]
                    current = ""
                else:
                    current += character
            if current:
                words.append(current)
        return words

    def tokenize(self, text: str) -> list[str]:
        pieces = []
        for word in self._words(text):
            if len(word) > self.max_word_chars:
                pieces.append("[UNK]")
                continue
            start, word_pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocabulary:
                        break
                    end -= 1
                if end == start:
                    word_pieces = ["[UNK]"]
                    break
                word_pieces.append(piece)
                start = end
            pieces += word_pieces
        return pieces

    def __call__(self, texts, sequence_length: int) -> np.ndarray:
        """float32 ids (len(texts), sequence_length): [CLS] pieces [SEP], cut, padded with 0."""
        sequence_length = check_number("sequence_length", sequence_length, minimum=3, integer=True)
        rows = np.zeros((len(texts), sequence_length), np.float32)
        vocabulary = self.vocabulary
        for row, text in enumerate(texts):
            pieces = self.tokenize(str(text))[: sequence_length - 2]
            ids = [vocabulary["[CLS]"], *(vocabulary[p] for p in pieces), vocabulary["[SEP]"]]
            rows[row, : len(ids)] = ids
        return rows


# ----------------------------------------------------------------------------- encoder


@serializable
class BertEmbeddings(layers.Layer):
    """Word + position + token-type (type 0, single-segment input) embeddings, then layer
    normalization; weights named as in the original checkpoint."""

    def __init__(self, vocab_size: int, hidden_size: int, max_positions: int, types: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.max_positions, self.types = max_positions, types
        self.norm = layers.LayerNormalization(epsilon=1e-12, name="LayerNorm")

    def build(self, input_shape):
        def init():
            return keras.initializers.TruncatedNormal(stddev=0.02)

        size = self.hidden_size
        self.word = self.add_weight("word_embeddings", (self.vocab_size, size), initializer=init())
        self.position = self.add_weight(
            "position_embeddings", (self.max_positions, size), initializer=init()
        )
        self.token_type = self.add_weight(
            "token_type_embeddings", (self.types, size), initializer=init()
        )
        self.norm.build((None, None, size))
        super().build(input_shape)

    def call(self, ids):
        length = tf.shape(ids)[1]
        x = tf.gather(self.word, tf.cast(ids, tf.int32))
        x = x + self.position[None, :length, :] + self.token_type[None, None, 0, :]
        return self.norm(x)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "max_positions": self.max_positions,
            "types": self.types,
        }


@keras.saving.register_keras_serializable(package="trainer")
def bert_gelu(x):
    """GELU in the tanh form the original BERT was trained with."""
    return keras.activations.gelu(x, approximate=True)


def _bert_layer(x, attention_mask, config: BertConfig, index: int, dropout: float):
    size, heads = config.hidden_size, config.num_attention_heads
    name = f"layer_{index}"
    attended = layers.MultiHeadAttention(
        heads, size // heads, dropout=config.attention_probs_dropout_prob, name=f"{name}_attention"
    )(x, x, attention_mask=attention_mask)
    attended = layers.Dropout(dropout)(attended)
    x = layers.LayerNormalization(epsilon=1e-12, name=f"{name}_attention_norm")(
        layers.Add()([x, attended])
    )
    y = layers.Dense(
        config.intermediate_size,
        activation=bert_gelu if config.hidden_act != "relu" else "relu",
        name=f"{name}_intermediate",
    )(x)
    y = layers.Dropout(dropout)(layers.Dense(size, name=f"{name}_output")(y))
    return layers.LayerNormalization(epsilon=1e-12, name=f"{name}_output_norm")(
        layers.Add()([x, y])
    )


def bert_encoder(config: BertConfig, sequence_length: int) -> keras.Model:
    """The BERT encoder over float32 token ids (0 = [PAD]): outputs the pooled [CLS] vector
    (dense + tanh, BERT's pooler), shape (batch, hidden_size). Random weights; see
    `load_bert_checkpoint`."""
    if sequence_length > config.max_position_embeddings:
        raise ValueError(
            f"sequence_length {sequence_length} is longer than this BERT's "
            f"max_position_embeddings {config.max_position_embeddings}; lower --sequence_length"
        )
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"hidden_size {config.hidden_size} is not a multiple of num_attention_heads "
            f"{config.num_attention_heads}: bert_config.json is inconsistent"
        )
    inputs = keras.Input(shape=(sequence_length,), dtype="float32", name="token_ids")
    mask = PaddingMask(name="padding_mask")(inputs)
    attention_mask = layers.Reshape((1, sequence_length), name="attention_mask")(mask)
    x = BertEmbeddings(
        config.vocab_size,
        config.hidden_size,
        config.max_position_embeddings,
        config.type_vocab_size,
        name="embeddings",
    )(inputs)
    x = layers.Dropout(config.hidden_dropout_prob)(x)
    for index in range(config.num_hidden_layers):
        x = _bert_layer(x, attention_mask, config, index, config.hidden_dropout_prob)
    first = layers.Cropping1D((0, sequence_length - 1), name="first_token")(x)
    first = layers.Flatten(name="cls")(first)
    pooled = layers.Dense(config.hidden_size, activation="tanh", name="pooler")(first)
    return keras.Model(inputs, pooled, name="bert_encoder")


def load_bert_checkpoint(encoder: keras.Model, checkpoint: str | Path, config: BertConfig) -> int:
    """Copies the weights of an original BERT checkpoint (`.../bert_model.ckpt`) into a
    `bert_encoder`; returns how many tensors were copied. Names and shapes are checked."""
    reader = tf.train.load_checkpoint(str(checkpoint))
    available = reader.get_variable_to_shape_map()
    size, heads = config.hidden_size, config.num_attention_heads
    copied = 0

    def read(name: str) -> np.ndarray:
        nonlocal copied
        if name not in available:
            raise ValueError(
                f"{checkpoint} has no variable {name}: it is not an original BERT checkpoint "
                f"(found e.g. {sorted(available)[:3]}). {WHERE_TO_GET}"
            )
        copied += 1
        return reader.get_tensor(name)

    def assign(variable, value: np.ndarray, name: str) -> None:
        if tuple(variable.shape) != value.shape:
            value = value.reshape(tuple(variable.shape))
        variable.assign(value)

    embeddings = encoder.get_layer("embeddings")
    prefix = "bert/embeddings/"
    for variable, name in [
        (embeddings.word, "word_embeddings"),
        (embeddings.position, "position_embeddings"),
        (embeddings.token_type, "token_type_embeddings"),
        (embeddings.norm.gamma, "LayerNorm/gamma"),
        (embeddings.norm.beta, "LayerNorm/beta"),
    ]:
        assign(variable, read(prefix + name), name)
    for index in range(config.num_hidden_layers):
        prefix = f"bert/encoder/layer_{index}/"
        attention = encoder.get_layer(f"layer_{index}_attention")
        parts = {
            "query": attention._query_dense,
            "key": attention._key_dense,
            "value": attention._value_dense,
        }
        for part, dense in parts.items():
            kernel = read(f"{prefix}attention/self/{part}/kernel")
            assign(dense.kernel, kernel.reshape(size, heads, size // heads), part)
            bias = read(f"{prefix}attention/self/{part}/bias")
            assign(dense.bias, bias.reshape(heads, size // heads), part)
        output = attention._output_dense
        kernel = read(f"{prefix}attention/output/dense/kernel")
        assign(output.kernel, kernel.reshape(heads, size // heads, size), "output")
        assign(output.bias, read(f"{prefix}attention/output/dense/bias"), "output")
        for layer_name, checkpoint_name in [
            (f"layer_{index}_attention_norm", "attention/output/LayerNorm"),
            (f"layer_{index}_output_norm", "output/LayerNorm"),
        ]:
            norm = encoder.get_layer(layer_name)
            assign(norm.gamma, read(f"{prefix}{checkpoint_name}/gamma"), layer_name)
            assign(norm.beta, read(f"{prefix}{checkpoint_name}/beta"), layer_name)
        for layer_name, checkpoint_name in [
            (f"layer_{index}_intermediate", "intermediate/dense"),
            (f"layer_{index}_output", "output/dense"),
        ]:
            dense = encoder.get_layer(layer_name)
            assign(dense.kernel, read(f"{prefix}{checkpoint_name}/kernel"), layer_name)
            assign(dense.bias, read(f"{prefix}{checkpoint_name}/bias"), layer_name)
    pooler = encoder.get_layer("pooler")
    assign(pooler.kernel, read("bert/pooler/dense/kernel"), "pooler")
    assign(pooler.bias, read("bert/pooler/dense/bias"), "pooler")
    return copied


def bert_classifier(
    folder: str | Path,
    sequence_length: int = 128,
    num_classes: int = 2,
    dropout: float = 0.1,
) -> keras.Model:
    """A pretrained BERT from `folder` (checked first) with a dropout + linear head on the
    pooled [CLS] vector (`--model=bert`). Fine-tune all of it with a small learning rate
    (2e-5 to 5e-5 for base models, 1e-4 or so for the small BERTs), warmup + linear decay.

    Example:

        model = bert_classifier("models/bert/uncased_L-2_H-128_A-2", 128, num_classes=2)
    """
    folder = check_bert_folder(folder)
    dropout = check_number("dropout", dropout, minimum=0, maximum=1, exclusive_maximum=True)
    num_classes = check_number("num_classes", num_classes, minimum=1, integer=True)
    sequence_length = check_number("sequence_length", sequence_length, minimum=3, integer=True)
    config = BertConfig.from_json(folder / "bert_config.json")
    encoder = bert_encoder(config, sequence_length)
    load_bert_checkpoint(encoder, folder / CHECKPOINT, config)
    x = layers.Dropout(dropout, name="head_dropout")(encoder.output)
    outputs = layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        name="logits",
    )(x)
    return keras.Model(encoder.input, outputs, name="bert_classifier")
