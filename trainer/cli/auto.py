"""`trainer auto --data=SOURCE [--max_kib=N] [--max_ms=F] [--min_accuracy=F]
[--time_budget=SECONDS] [--run_dir=R] [--workers=N] [--tracking=mlflow]`: from a data source to the most accurate
model that fits a device budget.

    trainer auto --data=photos --max_kib=64 --max_ms=0.1 --time_budget=900
    trainer auto --resume=runs/auto-20261205-041500          # after a kill

Parses `trainer.auto.AutoOptions` with the parser every command uses (`--help`,
`--config=FILE.yaml`, unknown keys listed), checks them before any data loads, and runs
`trainer.auto.run_auto`. Exit 0 when a file fits both limits and reaches --min_accuracy,
1 otherwise (the message says which limit cannot be met and shows the closest file). This
module must not contain the pipeline.
"""

import sys

PROGRAM = "trainer auto"
# What `--resume` may change: the rest belongs to the run being continued.
RESUME_OPTIONS = ("resume", "time_budget", "progress_every")


def run(argv: list[str]) -> int:
    """Runs the command on `argv` (the arguments after `auto`); returns the exit code."""
    from trainer.auto.options import AutoOptions, check_auto_options
    from trainer.config import ConfigError, help_text, option_name, parse_args
    from trainer.tracking import TRACKING_HELP, split_tracking_option

    tracking, argv = split_tracking_option(argv)  # --tracking=mlflow, checked before any work
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(AutoOptions, PROGRAM) + "\n" + TRACKING_HELP)
        return 0 if argv else 2
    options = parse_args(AutoOptions, argv, program=PROGRAM)
    if options.resume:
        refused = sorted({option_name(arg) for arg in argv} - set(RESUME_OPTIONS))
        if refused:
            raise ConfigError(
                f"--resume continues a run with its own options; it takes only "
                f"{', '.join('--' + name for name in RESUME_OPTIONS[1:])}, received "
                f"{', '.join('--' + name for name in refused)}"
            )
    check_auto_options(options)
    from trainer.keras_path import import_tensorflow_quietly

    import_tensorflow_quietly()
    from trainer.auto import run_auto

    result = run_auto(options)
    if tracking == "mlflow":
        from trainer.tracking import announce, log_auto

        announce(log_auto(result.directory))
    if not result.met:
        print(result.message, file=sys.stderr)
    return 0 if result.met else 1
