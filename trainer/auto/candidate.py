"""One `trainer auto` candidate as a recipe: a flat `Config` of what auto searches (the
architecture and the training settings) and the device budget, whose `build` is the image or
text recipe's own `build` behind the cost model.

`trainer auto` hands this module to `trainer.tuning.search` as the recipe, so each trial, in
this process or in a worker process (`--workers`), is `build(config)`: the cost model first
(`trainer.auto.cost`: parameters, FLOPs, the shipped file's size and LiteRT latency), which
refuses an architecture that not even compression could bring within the budget before any
training, then the recipe's data, model and optimizer. `main(config)` is the recipe's own
`main`, so a finalist's run folder is an `image_classifier` or `text_classifier` run that
`trainer compress`, `export` and `predict` read like any other.

The recipes are loaded by name when a candidate is built (`trainer.recipe_loader`), as
commands load them; this module must not import `recipes` nor choose candidates.
"""

import dataclasses
from pathlib import Path
from types import ModuleType
from typing import Any

from trainer.augment import augmentations_from_config
from trainer.auto.cost import (
    IMAGE_REACH,
    TEXT_REACH,
    Budget,
    Cost,
    measure_cost,
    read_costs,
    refuse_unreachable,
    remember_cost,
)
from trainer.config import choice, count, limit, option

KINDS = ("image", "text")
# The text kinds cheap enough for a phone budget; linear (TF-IDF + logistic regression in the
# graph) is text_classifier's default and trains with its own learning rate.
TEXT_MODELS = ("linear", "bow", "cnn", "transformer")
# The recipe each kind of data trains with; the formats the cost model measures a candidate
# in, keeping the faster file (the compress search's quantization makes both for images;
# token ids must not be quantized, so texts ship with int8 weights and float activations);
# and how far over the budget compression can still bring a file of each kind.
RECIPES = {"image": "image_classifier", "text": "text_classifier"}
SHIPPED_FORMATS = {"image": ("int8", "dynamic"), "text": ("dynamic",)}
REACH = {"image": IMAGE_REACH, "text": TEXT_REACH}


@dataclasses.dataclass
class Config:
    data: str = ""  # the data source, as the recipes take it
    kind: str = choice("image", *KINDS)  # which recipe trains: image_classifier or text_classifier
    run_dir: str = ""  # output folder of a finalist's run
    # images
    image_size: int = limit(0)  # images resized to image_size x image_size; 0 = most common size
    width: int = count(16)  # filters in the first conv stage; text: conv filters / units
    stages: int = count(3)  # conv stages of the image CNN
    augment: str = option("crop:2", check=augmentations_from_config)  # image augmentation
    # texts
    model: str = choice("cnn", *TEXT_MODELS)  # linear, bow, cnn or transformer
    embedding_dim: int = count(32)  # width of the word embeddings
    vocab_size: int = count(5000)  # most frequent training words kept
    sequence_length: int = count(128)  # tokens per text
    # training
    learning_rate: float = limit(0.0)  # peak learning rate; 0 = the recipe's default
    epochs: int = count(10)  # passes over the training set
    batch_size: int = limit(0)  # examples per step; 0 = from the data size
    seed: int = 0  # seeds the splits, weights, shuffling and augmentation
    backup_every: int = limit(0)  # steps between backups of a finalist's run; 0 = off
    # the device budget the cost model holds candidates to (0 = none)
    max_kib: float = limit(0.0)  # largest .tflite file in KiB
    max_ms: float = limit(0.0)  # largest median batch-1 latency in ms
    costs: str = ""  # the cost model's file (costs.json); "" = measure nothing
    # the auto folder whose data/image_<size>.npz hold the images at each searched resolution,
    # read instead of `data`; "" = read `data` at `image_size`
    resolutions: str = ""
    # read the search's share of the training images instead (data/search_<size>.npz, written
    # when the training set is large), validated on the finalists' own validation split
    trial_subset: bool = False
    # refuse a candidate whose file does not fit the budget as it is (no compression to bring
    # it in): on a large training set a finalist's time buys epochs, not a pruning retrain
    as_is: bool = False


# The architectures searched: image CNN widths and stage counts; text embedding widths,
# model widths, vocabularies and sequence lengths. The shipped text file embeds its
# tokenizer's vocabulary (every spelling of each word): on man pages the smallest CNN's file
# is 103 KiB at 2,000 words and 51 KiB at 1,000, the size that fits 64 KiB. Image width 20
# is the widest 3-stage CNN at 28x28 within 100 KiB and 0.1 ms on an AVX2 CPU (dynamic range:
# 79 KiB, 0.085 ms; width 24 is 103 KiB, 0.106 ms).
WIDTHS = (8, 12, 16, 20, 24, 32)
STAGES = (2, 3, 4)
TEXT_WIDTHS = (16, 32, 64)
VOCABULARIES = (1000, 2000, 5000, 20000)
SEQUENCE_LENGTHS = (64, 128)


# The image augmentations searched. Flips are one choice among them, never forced: a mirrored
# garment is the same garment, a mirrored digit or letter is another class, and validation
# decides (the fashion_mnist recipe gains from them).
AUGMENTATIONS = ("none", "crop:2", "crop:2,flip", "crop:2,erase:0.25")


def _values(values) -> str:
    return ",".join(str(value) for value in values)


def image_space(image_sizes: list[int]) -> str:
    """The image search space: width, depth, input resolution (the data's own first),
    augmentation, learning rate.

    The sizes are listed from the largest: keras-tuner's random search draws a choice's index,
    so under one seed the same trials come first on every data set, and in ascending order
    the first four trials of seed 0 were all at the smallest size (Fashion-MNIST 14x14,
    digits 8x8), which short searches then kept.

    Example:

        >>> from trainer.auto.candidate import image_space
        >>> image_space([14, 20, 28]).split("; ")[2]
        'image_size=28,20,14'
    """
    sizes = _values(sorted(set(image_sizes), reverse=True))
    return (
        f"width={_values(WIDTHS)}; stages={_values(STAGES)}; image_size={sizes}; "
        f"augment={'|'.join(AUGMENTATIONS)}; learning_rate=log:1e-3:1e-2"
    )


# The architecture fields each kind searches (the rest of a trial's values are training
# settings).
SEARCHED = {
    "image": ("width", "stages", "image_size"),
    "text": ("model", "embedding_dim", "width", "vocab_size", "sequence_length"),
}

# The text kinds whose size is mostly a table the search does not vary (the hashed bigram
# buckets of linear and bow), measured at their smallest before the search: a kind that cannot
# fit there is left out of the space instead of being refused trial after trial.
TABLE_MODELS = ("linear", "bow")


def text_space(models: tuple[str, ...] | list[str] = TEXT_MODELS) -> str:
    """The text search space over `models`: the model kind, its size and the learning rate."""
    return (
        f"model={_values(models)}; embedding_dim={_values(TEXT_WIDTHS)}; "
        f"width={_values(TEXT_WIDTHS)}; vocab_size={_values(VOCABULARIES)}; "
        f"sequence_length={_values(SEQUENCE_LENGTHS)}; learning_rate=log:5e-4:2e-2"
    )


TEXT_SPACE = text_space()


def resolution_file(size: int, trial_subset: bool = False) -> str:
    """Where an auto folder keeps its images at `size` x `size`, from the folder: all of
    them, or the search's share of the training images (`trial_subset`)."""
    return f"data/{'search' if trial_subset else 'image'}_{size}.npz"


def recipe_for(config: Config) -> ModuleType:
    """The recipe module that trains `config.kind`, loaded by name."""
    from trainer.recipe_loader import load_recipe

    return load_recipe(RECIPES[config.kind])


def recipe_config(config: Config, recipe: ModuleType) -> Any:
    """The recipe's own `Config` with the candidate's values; every other option (the
    exported formats among them: float32 and int8 for images, float32 and dynamic for
    texts) stays the recipe's default."""
    values = {
        "data": config.data,
        "run_dir": config.run_dir,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "backup_every": config.backup_every,
        "width": config.width,
    }
    if config.learning_rate and not (config.kind == "text" and config.model == "linear"):
        values["learning_rate"] = config.learning_rate
    if config.kind == "image":
        values.update(image_size=config.image_size, stages=config.stages, augment=config.augment)
        if config.resolutions:
            file = resolution_file(config.image_size, config.trial_subset)
            values["data"] = str(Path(config.resolutions) / file)
    else:
        values.update(
            model=config.model,
            embedding_dim=config.embedding_dim,
            vocab_size=config.vocab_size,
            sequence_length=config.sequence_length,
        )
    return dataclasses.replace(recipe.Config(), **values)


def architecture(config: Config) -> str:
    """What decides a candidate's cost, as text: the cost model's key.

    Example:

        >>> from trainer.auto.candidate import Config, architecture
        >>> architecture(Config(width=16, stages=3, image_size=28))
        'width=16, stages=3, image_size=28'
    """
    if config.kind == "image":
        return f"width={config.width}, stages={config.stages}, image_size={config.image_size}"
    if config.model in ("bow", "linear"):
        return f"model={config.model}, vocab_size={config.vocab_size}, sequence_length={config.sequence_length}"
    return (
        f"model={config.model}, embedding_dim={config.embedding_dim}, width={config.width}, "
        f"vocab_size={config.vocab_size}, sequence_length={config.sequence_length}"
    )


def embedded_bytes(experiment) -> int:
    """Bytes a text model's shipped file holds beyond its converted graph: the tokenizer
    vocabulary the mobile export embeds for MediaPipe (the regex tokenizer's lists every
    spelling of each word; measured on man pages at 2,000 words: 68.7 KiB of a 108 KiB file,
    whose graph alone is 36 KiB). 0 for a model without one (images).

    Example:

        >>> from types import SimpleNamespace
        >>> from trainer.auto.candidate import embedded_bytes
        >>> text = SimpleNamespace(input_spec={"tokenizer": "regex",
        ...     "tokenizer_vocabulary": "t.txt"}, artifacts={"t.txt": "<PAD> 0 <UNKNOWN> 1"})
        >>> embedded_bytes(text), embedded_bytes(SimpleNamespace(input_spec={}, artifacts={}))
        (19, 0)
    """
    spec = experiment.input_spec or {}
    name = spec.get("tokenizer_vocabulary")
    if spec.get("tokenizer") == "wordpiece":
        name = spec.get("vocabulary")
    return len((experiment.artifacts or {}).get(name, "").encode("utf-8")) if name else 0


def known_cost(config: Config) -> Cost | None:
    """The cost measured earlier for this architecture, if any."""
    return read_costs(config.costs).get(architecture(config)) if config.costs else None


def _held_to(cost: Cost, config: Config) -> Cost:
    """`cost` with no compression reach when `config` wants files that fit as they are."""
    return dataclasses.replace(cost, reach=1.0) if config.as_is else cost


def build(config: Config):
    """The recipe's `Experiment` for this candidate, after the cost model: an architecture
    that not even compression could fit is refused (`CandidateTooCostly`) before training,
    and before its data loads when it was measured already."""
    budget = Budget(config.max_kib, config.max_ms)
    known = known_cost(config)
    if known is not None:
        refuse_unreachable(_held_to(known, config), budget)
    recipe = recipe_for(config)
    experiment = recipe.build(recipe_config(config, recipe))
    if known is None and config.costs:
        sample = experiment.x_test[0]
        cost = measure_cost(
            experiment.model,
            architecture(config),
            experiment.representative,
            sample,
            SHIPPED_FORMATS[config.kind],
            REACH[config.kind],
            embedded_bytes(experiment),
        )
        remember_cost(config.costs, cost)
        cost = _held_to(cost, config)
        print(
            f"cost: {cost.architecture}: {cost.parameters:,} parameters, "
            f"{cost.flops / 1e6:.2f} MFLOPs, {cost.format} file {cost.kib:.1f} KiB, "
            f"{cost.latency_ms:.4f} ms",
            flush=True,
        )
        refuse_unreachable(cost, budget)
    return experiment


def main(config: Config) -> dict:
    """Trains the candidate to the end with the recipe's own `main` (run folder, export,
    verification, report, model card); returns its metrics."""
    recipe = recipe_for(config)
    return recipe.main(recipe_config(config, recipe))
