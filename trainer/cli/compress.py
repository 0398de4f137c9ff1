"""`trainer compress RUN_DIR [--key=value ...]`: compress a trained run within an accuracy budget.

Parses the options into `trainer.compress.CompressConfig` with the same parser every command
uses (`--help`, `--config=FILE.yaml`, unknown keys listed), checks them all before any work and
runs `trainer.compress.compress_run`. It raises and never prints an error: bad options and a
run folder the options do not fit are `ConfigError` (exit 2), a run that breaks while
compressing (unreadable model.keras, a model that never learned) exits 1, both turned into one
paragraph by the error boundary (`trainer.cli.errors`; `TRAINER_DEBUG=1` shows the
traceback). This module must not contain compression logic.
"""

PROGRAM = "trainer compress RUN_DIR"


def run(argv: list[str]) -> int:
    """Runs the command on `argv` (the arguments after `compress`); returns the exit code."""
    from trainer.tracking import TRACKING_HELP, split_tracking_option

    tracking, argv = split_tracking_option(argv)  # --tracking=mlflow, checked before any work
    from trainer.keras_path import import_tensorflow_quietly

    import_tensorflow_quietly()  # before trainer.compress, which imports TensorFlow
    from trainer.compress.options import CompressConfig, check_compress_options
    from trainer.config import ConfigError, help_text, parse_args

    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(CompressConfig, PROGRAM) + "\n" + TRACKING_HELP)
        return 0 if argv else 2
    if argv[0].startswith("-"):
        raise ConfigError(f"the first argument must be a run directory, received {argv[0]!r}")
    from trainer.outputs import OutputError

    run_dir = argv[0]
    try:
        config = parse_args(CompressConfig, argv[1:], program=PROGRAM)
        check_compress_options(run_dir, config)
    except OutputError:
        raise  # a refused --out_dir is a bad path (exit 1), as for every command
    except (FileNotFoundError, ValueError) as error:
        # Before any work, a missing run file or an option the run cannot take is a bad
        # option: exit 2 (ConfigError), not the exit 1 of a run that breaks while compressing.
        raise ConfigError(str(error)) from None
    from trainer.compress.search import compress_run

    # A broken run (unreadable model.keras, a model that never learned) raises; the error
    # boundary in trainer.cli.main turns that into one paragraph and exit code 1.
    compress_run(run_dir, config)
    if tracking == "mlflow":
        from trainer.tracking import announce, log_compression

        # compress_run's folder: --out_dir, else RUN_DIR/compression
        out_dir = config.out_dir or f"{run_dir}/compression"
        announce(log_compression(out_dir, run_dir))
    return 0
