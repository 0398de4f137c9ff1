"""`trainer tune RECIPE [--tuner=random|grid|bayesian|hyperband] [--max_trials=N] [--search=...]
[--key=value ...]`: searches a recipe's hyperparameters with keras-tuner.

    trainer tune digits --tuner=bayesian --max_trials=12 --max_epochs=5
    trainer tune fashion_mnist --search="learning_rate=log:1e-4:1e-2; width=16,32,64" \\
        --train_limit=6000 --time_budget=600
    trainer tune --resume=runs/tune-digits-20261125-213000 [--time_budget=S] [--final=true]

Options that are fields of `TuneOptions` (`trainer.tuning`) belong to the search; every other
`--key=value` (and `--config=FILE`) is a recipe option held fixed in every trial. A field may
not be both searched and fixed. Everything is parsed and checked before any data loads. This
module parses and prints; the search is `trainer.tuning.search`.
"""

import sys

from trainer.config import ConfigError, help_text, option_name, parse_args, split_arguments
from trainer.recipe_loader import load_recipe_argument

USAGE = (
    "usage: trainer tune RECIPE [--tuner=random|grid|bayesian|hyperband] [--max_trials=N]\n"
    '                    [--max_epochs=N] [--search="name=LOW:HIGH; name=a,b,c"] '
    "[--time_budget=SECONDS]\n"
    "                    [--workers=N] [--final=true] [recipe options, e.g. --train_limit=6000]\n"
    "       trainer tune --resume=TUNE_DIR [--time_budget=SECONDS] [--final=true]"
)
SEARCH_HELP = """search space (--search, or the recipe's SEARCH_SPACE): entries separated by ';'
  name=a,b,c          choices (name=a|b|c when values contain commas, e.g. augment)
  name=LOW:HIGH       a uniform range (ints stay ints); name=LOW:HIGH:STEP on a grid
  name=log:LOW:HIGH   a log-uniform range, e.g. learning_rate=log:1e-4:1e-2"""
# What `--resume` may change: the rest (tuner, space, recipe options) belongs to the search.
RESUME_OPTIONS = ("time_budget", "final")


def _print_help(program: str) -> None:
    from trainer.tuning import TuneOptions

    print(USAGE + "\n\n" + help_text(TuneOptions, program).split("\n", 2)[2])
    print("\n" + SEARCH_HELP)
    print("\nrecipe options: `trainer train RECIPE --help`")
    from trainer.tracking import TRACKING_HELP

    print(TRACKING_HELP)


def run(argv: list[str]) -> int:
    """`trainer tune ...` -> exit code (errors are raised to the caller's boundary)."""
    if not argv or argv[0] in ("-h", "--help"):
        _print_help("trainer tune RECIPE")
        return 0 if argv else 2
    from trainer.tracking import split_tracking_option
    from trainer.tuning import TuneOptions

    tracking, argv = split_tracking_option(argv)  # --tracking=mlflow, checked before any work
    # Search options (the `TuneOptions` fields) belong to the search, the rest to the recipe.
    mine, recipe_args = split_arguments(TuneOptions, argv)
    options = parse_args(TuneOptions, mine, program="trainer tune")
    if options.resume:
        return _resume(options, mine, recipe_args, tracking)
    if argv[0].startswith("-"):
        raise ConfigError(
            f"the first argument must be a recipe (a name from `trainer recipes` or a .py "
            f"file), received {argv[0]!r}\n{USAGE}"
        )
    module = load_recipe_argument(argv[0])
    recipe_args = recipe_args[1:]
    if "--help" in recipe_args or "-h" in recipe_args:
        _print_help(f"trainer tune {argv[0]}")
        return 0
    config = parse_args(module.Config, recipe_args, program=f"trainer tune {argv[0]}")
    from trainer.tuning import default_space, parse_space

    space = options.search or default_space(module, config)
    dimensions = parse_space(space, config)  # fails on a bad space before any data loads
    fixed = {option_name(arg) for arg in recipe_args}
    both = sorted(fixed & {dimension.name for dimension in dimensions})
    if both:
        raise ConfigError(
            f"{', '.join(both)} is both searched and fixed (--{both[0]}=...): drop the fixed "
            "value, or remove it from the search space with --search=..."
        )
    options.search = space
    return _search(module, config, options, tracking)


def _search(module, config, options, tracking: str = "none") -> int:
    from trainer.tuning import final_run, search

    result = search(module, config, options=options)
    _print_result(result)
    if options.final and result.best is not None:
        final_run(result.directory)
    _track(tracking, result.directory)
    return 0 if result.best is not None or options.workers else 1


def _track(tracking: str, directory) -> None:
    """Logs the tuning folder to MLflow: a parent run with a nested run per trial."""
    if tracking == "mlflow":
        from trainer.tracking import announce, log_search

        announce(log_search(directory))


def _resume(options, mine: list[str], recipe_args: list[str], tracking: str = "none") -> int:
    given = {option_name(arg) for arg in mine} - {"resume"}
    refused = sorted(given - set(RESUME_OPTIONS))
    if refused or recipe_args:
        raise ConfigError(
            f"--resume continues a search with its own tuner, space and recipe options; it "
            f"takes only {', '.join('--' + name for name in RESUME_OPTIONS)}, received "
            f"{' '.join([*('--' + name for name in refused), *recipe_args])}"
        )
    from trainer.tuning import final_run, load_search, resume

    try:
        load_search(options.resume)
    except FileNotFoundError as error:
        raise ConfigError(str(error)) from None
    result = resume(options.resume, options.time_budget if "time_budget" in given else None)
    _print_result(result)
    if options.final and result.best is not None:
        final_run(result.directory)
    _track(tracking, result.directory)
    return 0 if result.best is not None else 1


def _print_result(result) -> None:
    completed = [trial for trial in result.trials if trial.objective is not None]
    failed = len(result.trials) - len(completed)
    spent = " (time budget spent)" if result.stopped_by_budget else ""
    print(f"{len(result.trials)} trials: {len(completed)} completed, {failed} failed{spent}")
    if result.best is None:
        print(f"no trial completed; errors in {result.directory / 'trials.md'}", file=sys.stderr)
        return
    from trainer.tuning import BEST_CONFIG_FILE

    print(f"best: trial {result.best.trial_id}, val_accuracy {result.best.objective:.4f}")
    print(f"best config: {result.directory / BEST_CONFIG_FILE}")
    print(f"report: {result.directory / 'report.md'}")
