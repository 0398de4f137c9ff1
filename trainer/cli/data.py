"""`trainer data check SOURCE` and `trainer data preview SOURCE`: look at data before training.

    trainer data check SOURCE [--out=DIR] [--fast] [--label_column=NAME ...]
    trainer data preview SOURCE [--augment=SPEC] [--out=preview.png] [--count=16]

Both are parsed by `trainer.config.parse_args` from the flat dataclasses below, so `--help`,
unknown keys, value rules and `--config=FILE.yaml` defaults behave as they do for recipes.
This module parses and prints; the work is `trainer.data.check.check_source` and
`trainer.data.preview.preview_grid`. Errors go to the command boundary in `trainer.cli.main`.
"""

import dataclasses
from pathlib import Path

from trainer.config import (
    ConfigError,
    choice,
    count,
    fraction,
    help_text,
    limit,
    option,
    parse_args,
    positive,
)
from trainer.data.preview import DEFAULT_AUGMENT
from trainer.data.types import SourceOptions


def check_augment(spec: str) -> None:
    """Parses an augmentation spec, raising ValueError that names a bad item (TensorFlow is
    imported only here, so `trainer data --help` stays fast)."""
    from trainer.augment import augmentations_from_config

    augmentations_from_config(spec)


SOURCE_HELP = (
    "SOURCE: a class-folder tree, .csv, .npz, CIFAR tarball or folder, IDX folder, tfds:NAME"
)


@dataclasses.dataclass
class CheckConfig:
    """Options of `trainer data check SOURCE`: the report's, then how to read the source (the
    fields of `trainer.data.types.SourceOptions`, repeated so the config stays flat)."""

    out: str = "data_report"  # folder for data_report.json and .md (never inside the source)
    fast: bool = False  # skip the likely-label-error search (what training runs)
    imbalance_ratio: float = positive(3.0)  # report imbalance when largest/smallest exceeds this
    strict: bool = False  # exit with status 1 when any problem is found
    max_rows: int = count(10)  # problem rows printed per kind (all are in the report)
    # write label_issues.csv (every likely label error, ranked by cleanlab) and label_issues.png
    # (the top suspects, given -> suggested)
    label_issues: bool = False
    # a run folder whose model gives the label review its probabilities instead of a quick
    # k-fold logistic regression (the samples it trained on look cleaner than they are)
    model: str = ""
    image_size: int = limit(0)  # resize images to N x N; 0 = the most common size
    channels: int = choice(0, 0, 1, 3)  # image channels: 1 or 3; 0 = 3 if any image has colour
    test_fraction: float = fraction(0.2, below_one=True)  # held out as test when no test split
    seed: int = 0  # seeds the train/test split and the label-error search
    label_column: str = "label"  # CSV column holding the labels
    text_column: str = ""  # CSV column holding text; "" = a column named "text" if any
    num_classes: int = limit(0)  # declared count: integer labels are ids 0..N-1; 0 = values seen
    download: bool = False  # TFDS: allow downloading and preparing a missing dataset
    tfds_dir: str = ""  # TFDS data directory; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    md5: str = ""  # expected md5 of a CIFAR tarball; "" = the one the CIFAR site publishes


@dataclasses.dataclass
class PreviewConfig:
    """Options of `trainer data preview SOURCE`."""

    # augmentations in order, as recipes take them (names: crop, flip, rotate, zoom, translate,
    # brightness, contrast, erase, mixup, cutmix, randaugment), e.g. crop:2,flip,mixup:0.2
    augment: str = option(DEFAULT_AUGMENT, check=check_augment)
    out: str = "preview.png"  # PNG file to write
    count: int = count(16)  # samples to show
    seed: int = 0  # picks the samples and the augmentation
    image_size: int = limit(0)  # resize images to N x N; 0 = the most common size
    channels: int = choice(0, 0, 1, 3)  # image channels: 1 or 3; 0 = 3 if any image has colour
    num_classes: int = limit(0)  # declared class count for integer labels; 0 = the values seen
    tfds_dir: str = ""  # TFDS data directory; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    md5: str = ""  # expected md5 of a CIFAR tarball; "" = the one the CIFAR site publishes


SUBCOMMANDS = {
    "check": (CheckConfig, "find what is wrong with a data source; write data_report.json/.md"),
    "preview": (PreviewConfig, "write a PNG grid of augmented training samples with labels"),
}


def usage() -> str:
    """`trainer data --help`: the subcommands, one line each."""
    lines = ["usage: trainer data COMMAND SOURCE [--key=value ...]", "", "commands:"]
    lines += [f"  {name:<8} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    lines += ["", SOURCE_HELP, "`trainer data COMMAND --help` lists that command's options."]
    return "\n".join(lines)


def command_help(name: str) -> str:
    """`trainer data NAME --help`: usage, what it does, and every option from its dataclass."""
    config_class, summary = SUBCOMMANDS[name]
    options = help_text(config_class, f"trainer data {name} SOURCE")
    options = options[options.index("options (default in brackets):") :]
    program = f"usage: trainer data {name} SOURCE [--config=FILE.yaml] [--key=value ...]"
    return f"{program}\n\n{summary}\n{SOURCE_HELP}\n\n{options}"


def source_options(config: CheckConfig | PreviewConfig) -> SourceOptions:
    """The `SourceOptions` named by a command's config (fields it lacks keep their default)."""
    names = {field.name for field in dataclasses.fields(config)}
    return SourceOptions(
        **{
            field.name: getattr(config, field.name)
            for field in dataclasses.fields(SourceOptions)
            if field.name in names
        }
    )


def _source_and_options(name: str, argv: list[str]) -> tuple[str, list[str]]:
    sources = [arg for arg in argv if not arg.startswith("-")]
    if len(sources) != 1:
        received = ", ".join(repr(source) for source in sources) or "none"
        raise ConfigError(
            f"trainer data {name} takes one SOURCE, received {received}. {SOURCE_HELP}; options "
            f"are written --key=value (`trainer data {name} --help`)."
        )
    return sources[0], [arg for arg in argv if arg.startswith("-")]


def check(argv: list[str]) -> int:
    """`trainer data check SOURCE ...`: prints the summary with every problem row by path."""
    from trainer.data.check import check_report_folder, check_source

    source, rest = _source_and_options("check", argv)
    config = parse_args(CheckConfig, rest, "trainer data check SOURCE")
    if config.fast and (config.label_issues or config.model):
        raise ConfigError("--fast skips the label review that --label_issues/--model ask for")
    check_report_folder(source, config.out, source_options(config))  # before any data loads
    probabilities_of = _run_probabilities(config.model) if config.model else None
    report = check_source(
        source,
        config.out,
        source_options(config),
        label_errors=not config.fast,
        imbalance_ratio=config.imbalance_ratio,
        label_issues=config.label_issues,
        probabilities_of=probabilities_of,
        model=f"the model of {config.model}" if config.model else "",
    )
    print(report.summary(max_rows=config.max_rows))
    print(f"  report: {Path(config.out) / 'data_report.md'} and data_report.json")
    if config.label_issues:
        review = report.label_review
        picture = (
            " and label_issues.png" if (Path(config.out) / "label_issues.png").exists() else ""
        )
        print(
            f"  label review: {len(review.issues)} likely label errors among {review.samples} "
            f"samples ({review.model}): {Path(config.out) / 'label_issues.csv'}{picture}"
        )
    return 1 if config.strict and report.problems else 0


def _run_probabilities(run_dir: str):
    """The class probabilities a run's model gives samples as a source holds them (images
    or texts, prepared as the run's training prepared them), by class name."""
    import numpy as np

    from trainer.predict import Input, load_classifier, prepare

    classifier = load_classifier(run_dir)

    def probabilities_of(samples, class_names: list[str]) -> np.ndarray:
        kind = "text" if np.asarray(samples).dtype.kind in "OUS" else "image"
        if kind != classifier.kind:
            raise ValueError(
                f"the model of {run_dir} classifies {classifier.kind}s and this source holds "
                f"{kind}s; pass a run trained on this kind of data, or leave out --model"
            )
        missing = [name for name in class_names if name not in classifier.class_names]
        if missing:
            raise ValueError(
                f"the model of {run_dir} does not know the classes {', '.join(missing[:10])} of "
                f"this source (it knows {', '.join(classifier.class_names[:10])}); pass a run "
                "trained on these classes, or leave out --model"
            )
        batches = []
        for start in range(0, len(samples), 256):
            inputs = [
                Input(str(index), value) for index, value in enumerate(samples[start : start + 256])
            ]
            batches.append(np.asarray(classifier.run(prepare(classifier, inputs))))
        columns = [classifier.class_names.index(name) for name in class_names]
        return np.concatenate(batches)[:, columns]

    return probabilities_of


def preview(argv: list[str]) -> int:
    """`trainer data preview SOURCE ...`: writes the PNG grid and says where."""
    from trainer.augment import augmentations_from_config, describe_spec
    from trainer.data.preview import preview_grid
    from trainer.data.sources import load_source
    from trainer.outputs import check_output_file, data_sources

    source, rest = _source_and_options("preview", argv)
    config = parse_args(PreviewConfig, rest, "trainer data preview SOURCE")
    check_output_file(config.out, "--out", data_sources(config, ("SOURCE", source)))
    data = load_source(source, source_options(config))
    if data.kind != "image":
        raise ValueError(
            f"{source} holds {data.kind} data; `trainer data preview` draws images only "
            "(use `trainer data check` for text and tables)"
        )
    path = preview_grid(
        data.x_train,
        data.y_train,
        class_names=data.class_names,
        augment=augmentations_from_config(config.augment),
        path=config.out,
        count=config.count,
        seed=config.seed,
        title=f"{source}  augment={config.augment}",
    )
    shown = min(config.count, len(data.x_train))
    print(f"wrote {path} ({shown} augmented training samples; {describe_spec(config.augment)})")
    return 0


def run(argv: list[str]) -> int:
    """`trainer data COMMAND SOURCE [--key=value ...]`; returns the exit code."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        raise ConfigError(
            f"unknown command 'trainer data {name}'; the data commands are "
            f"{', '.join(SUBCOMMANDS)} (`trainer data --help`)"
        )
    if any(arg in ("-h", "--help") for arg in rest):
        print(command_help(name))
        return 0
    return check(rest) if name == "check" else preview(rest)
