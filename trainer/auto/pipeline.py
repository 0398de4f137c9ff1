"""`trainer auto`'s stages, from a data source to the finalists' verified files, in order.

1. The data check (`trainer.auto.data_stage`): the source loaded once and checked in fast
   mode, its report in `AUTO_DIR/data/`, image or text chosen from what it holds, the images
   written at each searched resolution.
2. The cost model on the smallest architecture of the space (`trainer.auto.search_stage`): a
   budget that not even it could reach after compression stops here, before any training,
   naming the limit.
3. The search (`trainer.auto.search_stage`: `trainer.tuning.search` over
   `trainer.auto.candidate`, keras-tuner's random search, in worker processes with
   `--workers`) within its share of the time budget, each trial behind the cost model; on a
   large image training set the trials train on a stratified share of it and validate on the
   finalists' own validation split.
4. The finalists (`trainer.auto.finalist_stage`: the most accurate trial, the most accurate
   one that fits as it is, and the recipe's default model when the cost model says it can be
   brought within the budget), each trained to the end and compressed until it fits
   (`trainer.auto.finalists`) in turn, for as many epochs as its part of the budget left buys;
   when no finalist's file fits, the smallest architecture of the space as one more; then,
   when the budget left would buy half as many epochs more, the winner's configuration
   trained again for longer, as one more finalist.

Every step is written to `state.json` as it ends, so `--resume` continues at the step a kill
interrupted; Ctrl-C keeps what finished (`trainer.auto.report` then chooses among it). This
module must not parse command lines nor write the final report.
"""

import datetime
from pathlib import Path

from trainer.auto.cost import Budget
from trainer.auto.data_stage import data_check
from trainer.auto.finalist_stage import finish_finalists
from trainer.auto.options import AutoOptions
from trainer.auto.search_stage import (
    base_config,
    check_reachable,
    run_search,
    search_share,
    trial_epochs,
)
from trainer.auto.state import AutoState, Clock, Progress, save_state


def new_auto_dir(root: str | Path = "runs") -> Path:
    """A new folder `ROOT/auto-<timestamp>` (with a suffix if that one exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = Path(root) / f"auto-{stamp}", 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"auto-{stamp}-{suffix}"
    return path


def run_stages(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, progress: Progress
) -> None:
    """Runs every stage that is not done yet, saving the state after each."""
    if not state.kind:
        progress.enter("data check")
        data_check(directory, options, state)
        examples = state.search_examples or state.train_examples
        state.trial_epochs = trial_epochs(examples, options.time_budget, search_share(state))
        base = base_config(directory, options, state)
        check_reachable(directory, base, state, Budget(options.max_kib, options.max_ms))
        save_state(directory, state, clock)
    if state.cannot_meet:
        return
    if not state.search_done:
        progress.enter("search")
        run_search(directory, options, state, clock)
        save_state(directory, state, clock)
        if state.cannot_meet:
            return
    finish_finalists(directory, options, state, clock, progress)
