"""`trainer train`: run a recipe into a new run folder, or continue a killed run.

    trainer train RECIPE [--key=value ...]                  a new run
    trainer train --resume=RUN_DIR [--key=value ...]        continue from the last backup
    trainer train --resume=RUN_DIR --restart                start that run again from epoch 1

Every option is parsed and validated, and the run folder checked, before any data is loaded.
A new run never reuses a folder that holds another run; `--resume` takes only the options the
recipe marks `resumable` (they change neither the model nor the data) and checks the backup
first. A run that fails before training leaves no folder behind. This module must not contain
training logic.
"""

import dataclasses
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.cli.errors import report_error
from trainer.config import ConfigError, parse_args, resumable_options
from trainer.recipe_loader import load_recipe_argument

USAGE = (
    "usage: trainer train RECIPE [--key=value ...]\n"
    "       trainer train --resume=RUN_DIR [--restart] [--key=value ...]"
)
HELP = """options:
  RECIPE            a name from `trainer recipes` or a path to a .py recipe file;
                    `trainer train RECIPE --help` lists that recipe's options
  --resume=RUN_DIR  continue a killed run from its last backup, with its saved config
  --restart         with --resume: start that run again from epoch 1
  --tracking=mlflow log the run to MLflow (MLFLOW_TRACKING_URI; docs/tracking.md)
  --key=value       with --resume: change an option the recipe marks resumable (with
                    --restart: any option, e.g. a lower --learning_rate)
  --allow_chance=true  finish a run whose model scores at chance level (with a warning)
                    instead of failing it; a diverged model (NaN loss) fails all the same
  --histograms=N    TensorBoard weight histograms every N epochs (default 0: none);
                    hparams, plots and the saved model's graph are always logged
                    (docs/tensorboard.md)
scaling out (docs/distribute.md; options of this command, not of the recipe):
  --strategy=auto|default|mirrored|multi_worker|tpu    auto: multi_worker with a cluster,
                    mirrored with several GPUs, else default
  --local_workers=N          N worker processes on this machine (loopback), restarted from
                             the last backup when one dies (--max_restarts=3)
  --workers=HOST:PORT,... --task_index=I   this process in a cluster (or set TF_CONFIG)
  --per_replica_batch_size=B the global batch becomes B x replicas (default: batch_size)
  --scale_learning_rate=none|linear   linear: learning_rate x global batch / batch_size
"""


@dataclasses.dataclass
class TrainOptions:
    """Options of the command itself, not of the recipe's Config."""

    # finish a run whose model scores at chance level instead of failing it
    allow_chance: bool = False
    # TensorBoard weight histograms every N epochs (0 = none)
    histograms: int = 0


def _train_options(argv: list[str]) -> tuple[TrainOptions, list[str]]:
    from trainer.config import split_arguments

    ours, rest = split_arguments(TrainOptions, argv)
    return _parse(TrainOptions, ours, "trainer train"), rest


def run(argv: list[str]) -> int:
    """`trainer train ...` -> exit code (errors are raised to the caller's boundary)."""
    from trainer.tracking import split_tracking_option, track_train

    # --tracking=mlflow (trainer.tracking) belongs to the command, checked before any work.
    tracking, argv = split_tracking_option(argv)
    if tracking == "none":
        return _run_command(argv)
    if any(arg.startswith("--local_workers=") for arg in argv):
        raise ConfigError("--tracking is not supported with --local_workers yet; drop one")
    return track_train(lambda: _run_command(argv))


def _run_command(argv: list[str]) -> int:
    from trainer.distribute import DistributeOptions, cluster_spec, distributed, split_arguments
    from trainer.experiment import allowing_chance
    from trainer.tensorboard_logging import histograms_every

    # Distribution options and --allow_chance belong to the command, not to the recipe.
    distribute_options, argv = split_arguments(argv)
    options, argv = _train_options(argv)
    if distribute_options.local_workers:
        passed = ["--allow_chance=true"] if options.allow_chance else []
        passed += [f"--histograms={options.histograms}"] if options.histograms else []
        return _run_local_workers(distribute_options, argv, passed)
    with allowing_chance(options.allow_chance), histograms_every(options.histograms):
        if distribute_options == DistributeOptions() and cluster_spec() is None:
            return _run(argv)
        from trainer.keras_path import import_tensorflow_quietly

        import_tensorflow_quietly()
        with distributed(distribute_options):
            return _run(argv)


def _run_local_workers(options: Any, argv: list[str], command_options: list[str]) -> int:
    """`--local_workers=N`: N processes of this command on this machine, one cluster."""
    from trainer.distribute import local_worker_command, supervise_local_workers
    from trainer.runs import default_run_dir

    passed_on = [
        *command_options,
        "--strategy=multi_worker",
        f"--scale_learning_rate={options.scale_learning_rate}",
        f"--per_replica_batch_size={options.per_replica_batch_size}",
    ]
    resume = [arg.partition("=")[2] for arg in argv if arg.startswith("--resume=")]
    if resume:
        run_dir = Path(resume[0])
        first = local_worker_command([*argv, *command_options, "--strategy=multi_worker"])
    else:
        if not argv or argv[0].startswith("-"):
            raise ConfigError(f"--local_workers needs a recipe: {USAGE.splitlines()[0]}")
        module = load_recipe_argument(argv[0])
        recipe = Path(inspect.getfile(module)).stem
        config = _parse(module.Config, argv[1:], f"trainer train {recipe}")
        _check_new_run_dir(config)
        run_dir = Path(getattr(config, "run_dir", "") or default_run_dir(recipe))
        first = local_worker_command([*argv, f"--run_dir={run_dir}", *passed_on])
    again = local_worker_command(
        [f"--resume={run_dir}", *command_options, "--strategy=multi_worker"]
    )
    return supervise_local_workers(
        options.local_workers, first, again, run_dir, options.max_restarts
    )


def _run(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        from trainer.recipe_loader import list_recipes

        print(USAGE + "\n\n" + HELP + "recipes: " + ", ".join(list_recipes()))
        return 0
    if any(arg == "--resume" or arg.startswith("--resume=") for arg in argv):
        return _resume(argv)
    if not argv or argv[0].startswith("-"):
        from trainer.recipe_loader import list_recipes

        print(USAGE, file=sys.stderr)
        print("recipes: " + ", ".join(list_recipes()), file=sys.stderr)
        return 2
    module = load_recipe_argument(argv[0])
    program = f"trainer train {Path(inspect.getfile(module)).stem}"
    config = _parse(module.Config, argv[1:], program)
    from trainer.distribute import is_chief, scale_config

    config = scale_config(config)  # the global batch and learning rate over the replicas
    if is_chief():  # the other workers of a cluster write nothing into the run folder
        _check_new_run_dir(config)
    return _run_main(module.main, config)


def run_recipe(config_class: type, main: Callable, argv: list[str] | None, program: str) -> int:
    """Parses `argv` into `config_class`, checks the run folder and runs `main(config)`.

    For a recipe's `if __name__ == "__main__":`. Config errors exit 2; a bad path, file or
    data exits 1 with a one-paragraph message, without a traceback unless TRAINER_DEBUG=1.
    `--allow_chance=true` and `--histograms=N` work as with `trainer train`.
    """
    from trainer.experiment import allowing_chance
    from trainer.tensorboard_logging import histograms_every

    try:
        options, argv = _train_options(sys.argv[1:] if argv is None else argv)
        config = _parse(config_class, argv, program)
        _check_new_run_dir(config)
        with allowing_chance(options.allow_chance), histograms_every(options.histograms):
            return _run_main(main, config)
    except (Exception, KeyboardInterrupt) as error:
        return report_error(error, program)


def _parse(config_class: type, argv: list[str] | None, program: str, check: bool = True) -> Any:
    try:
        return parse_args(config_class, argv, program=program, check=check)
    except FileNotFoundError as error:  # a missing --config file is a bad option: exit 2
        raise ConfigError(str(error)) from None


def _check_new_run_dir(config: Any) -> None:
    from trainer.runs import check_run_dir

    check_run_dir(config)


def _run_main(main: Callable, config: Any) -> int:
    from trainer.runs import discard_unstarted_run, forget_created_run_dir

    forget_created_run_dir()
    try:
        main(config)
    except BaseException as error:
        removed = discard_unstarted_run()
        if removed is not None:
            print(f"removed {removed}: the run failed before training started", file=sys.stderr)
        wrapped = _user_recipe_failure(main, error)
        if wrapped is not None:
            raise wrapped from error
        raise
    return 0


def _user_recipe_failure(main: Callable, error: BaseException) -> Exception | None:
    """A user recipe's error as one paragraph naming its file and line (`RecipeError`), when
    it passed through the recipe and the boundary has no message for it (a NameError, a
    KeyError, a RuntimeError...); None otherwise: a recipe's own ValueError or ConfigError,
    and trainer's messages, are already what a user should read."""
    from trainer.cli.errors import describe
    from trainer.recipe_loader import recipe_error, user_recipe_file

    module = sys.modules.get(getattr(main, "__module__", "") or "")
    recipe_file = user_recipe_file(module) if module is not None else None
    if recipe_file is None or describe(error) is not None:
        return None
    return recipe_error(error, recipe_file, "while running main(config)")


def _resume(argv: list[str]) -> int:
    """`--resume=RUN_DIR [--restart] [--key=value ...]`: the run's own config, with only the
    recipe's resumable options changed (any option with --restart), after its backup is
    checked."""
    from trainer.runs import (
        check_backup,
        discard_training_state,
        has_backup,
        resume_arguments,
        resuming,
    )

    resume = [arg for arg in argv if arg == "--resume" or arg.startswith("--resume=")]
    restart = "--restart" in argv
    overrides = [arg for arg in argv if arg not in resume and arg != "--restart"]
    run_dir = resume[0].partition("=")[2]
    positional = [arg for arg in overrides if not arg.startswith("--")]
    if len(resume) > 1 or not run_dir or positional:
        raise ConfigError(
            "use `trainer train --resume=RUN_DIR [--restart] [--key=value ...]`: the run "
            f"continues with its saved config.yaml and recipe; received {' '.join(argv)}"
        )
    try:
        recipe, options = resume_arguments(run_dir, restart=restart)
    except (FileNotFoundError, ValueError) as error:  # not a resumable run: a bad option
        raise ConfigError(str(error)) from None
    module = load_recipe_argument(recipe)
    program = f"trainer train --resume={run_dir}"
    # Read without the rules: a run saved with a value a rule now refuses (say an unknown
    # export format) can still be finished by overriding that resumable option.
    saved = _parse(module.Config, options, program, check=False)
    config = _parse(module.Config, [*options, *overrides], program)
    if not restart:  # --restart trains from epoch 1: any option may change
        _check_same_run(run_dir, module.Config, saved, config)
    from trainer.distribute import is_chief

    if restart and is_chief():  # in a cluster only the chief changes the run folder
        discard_training_state(run_dir)
        print(f"restarting {run_dir} from epoch 1 (backup and history discarded)", flush=True)
    else:
        check_backup(run_dir)
    if not restart and not has_backup(run_dir) and is_chief():
        # Without a backup training starts over; old history rows would mix with the new.
        discard_training_state(run_dir)
        print(
            f"note: {run_dir} holds no training backup (the recipe ran with backup_every=0, or "
            "was killed before its first backup): training starts again from epoch 1",
            flush=True,
        )
    print(f"resuming {run_dir} (recipe {recipe})", flush=True)
    with resuming(run_dir):
        return _run_main(module.main, config)


def _check_same_run(run_dir: str, config_class: type, saved: Any, config: Any) -> None:
    """Refuses a resume that would continue the run's backup with another model or data: an
    option changed on the command line, or a field edited in config.yaml since the run
    started (which would fail on the backup's tensor shapes, or mix two configs in one
    run), that the recipe does not mark resumable."""
    from trainer.runs import CONFIG_FILE, changed_options, edited_config_fields, has_backup

    allowed = resumable_options(config_class)
    can = ", ".join(allowed) if allowed else "none (this recipe marks no option resumable)"
    # Without a backup the run trains again from epoch 1, which any config can do.
    edited = edited_config_fields(run_dir, saved) if has_backup(run_dir) else []
    edited = [field for field in edited if field[0] not in allowed]
    if edited:
        changes = "; ".join(f"{name} was {before!r}, now {now!r}" for name, before, now in edited)
        raise ConfigError(
            f"{Path(run_dir) / CONFIG_FILE} was edited after the run started ({changes}), "
            f"which changes the model or the data its backup was made with. Put the old value "
            f"back to continue the run, or train again from epoch 1 with the edited config: "
            f"`trainer train --resume={run_dir} --restart`. Options --resume may change: {can}"
        )
    refused = [name for name in changed_options(saved, config) if name not in allowed]
    if refused:
        raise ConfigError(
            f"--resume cannot change {', '.join(refused)}: it would change the model or the "
            f"data of the run in {run_dir}. Options --resume may change: {can}. To train with "
            f"other options, start again from epoch 1 with `trainer train --resume={run_dir} "
            "--restart --key=value`, or start a new run with another --run_dir"
        )
