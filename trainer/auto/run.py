"""`run_auto`: a `trainer auto` run from its options to its result, new or resumed.

It opens the auto folder (a new one, or the one `--resume` names, with the options saved
there), runs the stages that are not done (`trainer.auto.pipeline`) with progress lines, and
writes the result (`trainer.auto.report`). Ctrl-C or an error after a finalist was verified
still writes the result from what finished, so the best finished file is usable; then it
raises with how to continue. This module must not parse command lines.
"""

import dataclasses
from pathlib import Path

from trainer.auto.options import OPTIONS_FILE, AutoOptions, check_auto_options
from trainer.auto.pipeline import new_auto_dir, run_stages
from trainer.auto.report import AutoResult, write_auto_report
from trainer.auto.state import Clock, Progress, load_options, load_state, save_options, save_state
from trainer.outputs import check_output_folder, data_sources


def open_auto_dir(options: AutoOptions) -> tuple[Path, AutoOptions]:
    """The auto folder and the options it runs with: `--resume`'s folder and saved options
    (a new `--time_budget` replaces the saved one when given), or a new folder.

    Raises:
        FileNotFoundError: `--resume` names a folder without auto.yaml.
        ValueError: `--run_dir` holds an auto run already, or the output guard refuses it
            (`trainer.outputs.check_output_folder`: inside the data, a run's folder, not
            empty).
    """
    if options.resume:
        directory = Path(options.resume)
        saved = load_options(directory)
        if options.time_budget != AutoOptions().time_budget:
            saved.time_budget = options.time_budget
        return directory, saved
    directory = Path(options.run_dir) if options.run_dir else new_auto_dir()
    if (directory / OPTIONS_FILE).is_file():
        raise ValueError(
            f"--run_dir={directory} holds an auto run already: continue it with "
            f"`trainer auto --resume={directory}`, or choose a new folder"
        )
    # The output guard every command shares: outside the data, not a run's folder, not a
    # file or device, and a folder that is not empty is refused.
    check_output_folder(directory, "--run_dir", data_sources(options), ("*",), OPTIONS_FILE)
    directory.mkdir(parents=True, exist_ok=True)
    options = dataclasses.replace(options, run_dir=str(directory))
    save_options(directory, options)
    return directory, options


def run_auto(options: AutoOptions) -> AutoResult:
    """Runs `trainer auto`: data check, search, finalists trained and compressed, the winner
    verified and written with its report and picture.

    Example (not run: trains and searches for the time budget):

        from trainer.auto import AutoOptions, run_auto
        result = run_auto(AutoOptions(data="photos", max_kib=64, max_ms=0.1, time_budget=900))
        print(result.message, result.directory / "model.tflite")
    """
    check_auto_options(options)
    directory, options = open_auto_dir(options)
    print(f"auto folder: {directory}", flush=True)
    state = load_state(directory)
    clock = Clock(options.time_budget, state.spent_seconds)
    with Progress(directory, clock, options.progress_every) as progress:
        try:
            run_stages(directory, options, state, clock, progress)
        except (Exception, KeyboardInterrupt) as error:
            save_state(directory, state, clock)
            _keep_what_finished(directory, options, state, error)
            raise
        progress.enter("writing the result")
        save_state(directory, state, clock)
        result = write_auto_report(state, options, directory)
    print(result.message, flush=True)
    print(f"report: {directory / 'report.md'}", flush=True)
    return result


def _keep_what_finished(directory: Path, options: AutoOptions, state, error: BaseException) -> None:
    """After Ctrl-C or an error: writes the result from the finalists verified so far, then
    raises KeyboardInterrupt (Ctrl-C) with how to continue; an error goes on up."""
    kept = ""
    if any("verified" in finalist for finalist in state.finalists):
        result = write_auto_report(state, options, directory)
        kept = f"{result.message}. "
    if isinstance(error, KeyboardInterrupt):
        raise KeyboardInterrupt(
            f"The auto folder {directory} is kept. {kept}Continue with "
            f"`trainer auto --resume={directory}`."
        ) from error
