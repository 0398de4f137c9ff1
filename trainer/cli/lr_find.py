"""`trainer lr-find RECIPE`: sweep the learning rate on a recipe's model, plot, suggest one.

    trainer lr-find RECIPE [--steps=200 --min_lr=1e-7 --max_lr=10 --out=lr_find.png]
                           [recipe options]

The recipe's `build(config)` gives the compiled model and the training pipeline (the same
`Experiment` that `trainer train` fits), so the sweep sees exactly the run's loss, optimizer,
augmentation and batch size. This module parses and prints; the sweep is
`trainer.lr_finder.find_learning_rate`.
"""

import dataclasses
from types import ModuleType
from typing import Any

from trainer.config import ConfigError, help_text, parse_args, split_arguments
from trainer.recipe_loader import build_experiment, load_recipe_argument


@dataclasses.dataclass
class LrFindConfig:
    steps: int = 200  # batches in the sweep (at least 10)
    min_lr: float = 1e-7  # first learning rate tried
    max_lr: float = 10.0  # last learning rate tried (the sweep stops early when the loss blows up)
    out: str = "lr_find.png"  # the plot of loss against learning rate


USAGE = "usage: trainer lr-find RECIPE [lr-find options] [recipe options, e.g. --batch_size=128]"


def _parse(module: ModuleType, recipe: str, argv: list[str]) -> tuple[LrFindConfig, Any]:
    """The sweep's options and the recipe's config, all checked before any data loads; a
    problem with either is a bad option (ConfigError, exit 2)."""
    mine, recipe_args = split_arguments(LrFindConfig, argv)
    program = f"trainer lr-find {recipe}"
    if "--help" in recipe_args or "-h" in recipe_args:
        print(help_text(LrFindConfig, program).split("\n", 2)[2])
    try:
        options = parse_args(LrFindConfig, mine, program=program)
        check(options)
        if not hasattr(module, "build"):
            raise ConfigError(
                f"recipe {recipe!r} has no build(config) -> Experiment function, which lr-find "
                "needs to get its compiled model and training data (see docs/recipe.md, "
                "'Write your own recipe')"
            )
        config = parse_args(module.Config, recipe_args, program=program)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise ConfigError(str(error)) from None
    return options, config


def check(options: LrFindConfig) -> None:
    """Fails before any data is loaded on a sweep that cannot run."""
    if options.steps < 10:
        raise ConfigError(f"steps must be >= 10, received {options.steps}")
    if not 0 < options.min_lr < options.max_lr:
        raise ConfigError(
            f"need 0 < min_lr < max_lr, received min_lr={options.min_lr} and "
            f"max_lr={options.max_lr}"
        )


def run(argv: list[str]) -> int:
    """`trainer lr-find ...` -> exit code (errors are raised to the caller's boundary)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + help_text(LrFindConfig, "trainer lr-find RECIPE").split("\n", 2)[2])
        print("\nrecipe options: `trainer lr-find RECIPE --help`")
        return 0 if argv else 2
    if argv[0].startswith("-"):
        raise ConfigError(f"the first argument must be a recipe, received {argv[0]!r}\n{USAGE}")
    module = load_recipe_argument(argv[0])
    options, config = _parse(module, argv[0], argv[1:])
    from trainer.outputs import check_output_file, data_sources

    check_output_file(options.out, "--out", data_sources(config))  # before any data loads
    from trainer.lr_finder import find_learning_rate

    experiment = build_experiment(module, config, "sweep its learning rate")
    print(
        f"sweeping {options.steps} steps from {options.min_lr:.0e} to {options.max_lr:.0e}",
        flush=True,
    )
    result = find_learning_rate(
        experiment.model, experiment.train, options.steps, options.min_lr, options.max_lr
    )
    path = result.plot(options.out)
    print(f"swept {len(result.learning_rates)} steps up to {result.learning_rates[-1]:.1e}")
    print(
        f"lowest smoothed loss at {result.minimum_loss_rate:.2e}; steepest fall at "
        f"{result.steepest_rate:.2e}"
    )
    for note in result.notes:
        print(f"note: {note}")
    print(
        f"suggested learning rate: {result.suggestion:.2e} (--learning_rate={result.suggestion:.2g})"
    )
    print(f"plot: {path}")
    return 0
