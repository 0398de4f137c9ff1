"""Stage 4 of `trainer auto`: the finalists trained and compressed in turn within the budget.

Each finalist (`trainer.auto.search_stage` chose them) is trained to the end, then compressed
until it fits and its file verified (`trainer.auto.finalists`), for as many epochs as its
part of the budget left buys: its trial's pace, scaled to the whole training set and
corrected by the pace the finalists before it measured, with room kept for its compression.
The recipe's default model, when it is a finalist, trains for its default epochs, or as many
as its part buys (said in the progress lines and the report), at an epoch timed on its own
data. On a large image set the most accurate trial is trained a second time with horizontal
flips toggled, when both runs buy enough epochs. When no finalist's file fits, the smallest
architecture of the search space is trained and compressed as one more finalist. Then, when
the budget left would buy half as many epochs more, the winner's configuration is trained
again for longer, as one more finalist. This module must not search nor write the final
report (`trainer.auto.report` does).
"""

import dataclasses
import math
from pathlib import Path

from trainer.auto import candidate
from trainer.auto.cost import Budget, read_costs
from trainer.auto.finalists import FinalistCompression, epoch_seconds, train_finalist
from trainer.auto.options import (
    CANDIDATES_DIR,
    COMPRESS_SECONDS,
    COSTS_FILE,
    FINISH_SECONDS,
    AutoOptions,
)
from trainer.auto.search_stage import base_config, candidate_config, smallest_trial
from trainer.auto.state import AutoState, Clock, Progress, save_state

MAX_FINAL_EPOCHS = 40
# A finalist that must be compressed keeps this share of its part of the budget for it: room
# for one filter-pruning retrain at half its epochs.
COMPRESS_SHARE = 1 / 3
# The budget left after the finalists retrains the winner's configuration only when it buys
# at least this many times the winner's epochs: fewer would gain too little to be told from
# noise on validation.
LONGER_GAIN = 1.5


def epoch_scale(state: AutoState) -> float:
    """How many times a search trial's epoch a finalist's epoch costs: its training set over
    the trial's (1 when the trials train on all of it).

    Example:

        >>> from trainer.auto.finalist_stage import epoch_scale
        >>> from trainer.auto.state import AutoState
        >>> epoch_scale(AutoState(finalist_examples=54_000, search_examples=8_000))
        6.75
    """
    if state.search_examples and state.finalist_examples:
        return state.finalist_examples / state.search_examples
    return 1.0


def affordable_epochs(per_epoch: float, seconds: float, overhead: float, least: int) -> int:
    """Epochs that `seconds` buy at `per_epoch` seconds each once `overhead` (data, export,
    verification) is paid: at least `least`, at most `MAX_FINAL_EPOCHS`.

    Example:

        >>> from trainer.auto.finalist_stage import affordable_epochs
        >>> affordable_epochs(5.0, 120.0, 20.0, 6), affordable_epochs(5.0, 10.0, 20.0, 6)
        (20, 6)
    """
    affordable = int(max(0.0, seconds - overhead) / max(per_epoch, 1e-3))
    return max(1, least, min(affordable, MAX_FINAL_EPOCHS))


def final_epochs(finalist: dict, seconds: float) -> int:
    """Epochs a finalist trains for in `seconds`, from its trial's seconds per epoch: at least
    its trial's epochs, at most `MAX_FINAL_EPOCHS`."""
    per_epoch = finalist["seconds"] / max(1, finalist["epochs"])
    return affordable_epochs(per_epoch, seconds, FINISH_SECONDS, finalist["epochs"])


def finalist_pace(state: AutoState) -> tuple[float, float]:
    """(how many times its prediction a finalist's epoch took, its seconds outside the epochs),
    as the last finalist trained measured them; (1, `FINISH_SECONDS`) before any."""
    for finalist in reversed(state.finalists):
        if finalist.get("per_epoch_seconds") and finalist.get("predicted_per_epoch"):
            pace = finalist["per_epoch_seconds"] / finalist["predicted_per_epoch"]
            return pace, finalist.get("overhead_seconds", FINISH_SECONDS)
    return 1.0, FINISH_SECONDS


def compress_reserve(state: AutoState, finalist: dict, part: float) -> float:
    """Seconds of a finalist's `part` of the budget kept for compressing it: its quantization
    and verification when its file fits as it is (as long as the last finalist that stopped
    there took, else `COMPRESS_SECONDS`), else `COMPRESS_SHARE` of the part.

    Example:

        >>> from trainer.auto.finalist_stage import compress_reserve
        >>> from trainer.auto.state import AutoState
        >>> compress_reserve(AutoState(), {"fits_as_is": True}, 600.0)
        60.0
        >>> compress_reserve(AutoState(), {"fits_as_is": False}, 600.0)
        200.0
    """
    quantized = [
        f["compress_seconds"]
        for f in state.finalists
        if f.get("compress_seconds") and f.get("chosen", {}).get("name", "").startswith("ptq")
    ]
    verify = quantized[-1] if quantized else COMPRESS_SECONDS
    if finalist.get("fits_as_is"):
        return verify
    return max(verify, part * COMPRESS_SHARE)


def waiting_finalists(state: AutoState) -> list[dict]:
    """The finalists neither verified nor left out yet: those the budget left is shared by."""
    return [f for f in state.finalists if not ({"verified", "failed"} & set(f))]


# Epochs each of the most accurate trial's two runs must get for the run with horizontal
# flips toggled to be worth its share of the budget: augmentation pays only after long training.
FLIP_VARIANT_EPOCHS = 20


def toggle_flip(augment: str) -> str:
    """An augmentation spec with horizontal flips added, or removed when it has them.

    Example:

        >>> from trainer.auto.finalist_stage import toggle_flip
        >>> [toggle_flip(spec) for spec in ("none", "crop:2", "crop:2,flip", "flip")]
        ['flip', 'crop:2,flip', 'crop:2', 'none']
    """
    items = [item for item in augment.split(",") if item and item != "none"]
    if "flip" in items:
        items.remove("flip")
    else:
        items.insert(1 if items and items[0].startswith("crop") else 0, "flip")
    return ",".join(items) or "none"


def add_flip_variant(state: AutoState, clock: Clock, finalist: dict, per_epoch: float) -> None:
    """On a large image training set, the most accurate trial trained to the end a second
    time with horizontal flips toggled (`candidates/N-trialID-flip` or `-noflip`), and
    validation chooses: trials of a few epochs on a share of the images rank augmentation
    badly. On all of Fashion-MNIST the trials kept no augmentation, which trailed flips after
    40 epochs on all 54,000 images (bench/results/fashion_mnist_auto_width.json); a mirrored
    digit is another class, which validation then says. Decided when `finalist` (the most
    accurate trial) is about to train, at `per_epoch` seconds, its epoch timed on all the
    data: only when each of the runs still buys `FLIP_VARIANT_EPOCHS` epochs; the progress
    lines say why not."""
    first = state.finalists[0] if state.finalists else {}
    if state.kind != "image" or not state.search_examples or finalist is not first:
        return
    augment = first.get("values", {}).get("augment")
    if augment is None or any("flip_variant_of" in f for f in state.finalists):
        return
    waiting = waiting_finalists(state)
    runs = len(waiting) + 1
    each = max(clock.left(), 0.0) / runs - FINISH_SECONDS - COMPRESS_SECONDS
    name = Path(first["run_dir"]).name
    if each < FLIP_VARIANT_EPOCHS * per_epoch:
        print(
            f"{name} is not trained a second time with flips toggled: {runs} runs in the "
            f"{max(clock.left(), 0):.0f} s left would buy {max(each, 0) / per_epoch:.0f} "
            f"epochs each, fewer than {FLIP_VARIANT_EPOCHS}",
            flush=True,
        )
        return
    flipped = toggle_flip(augment)
    suffix = "noflip" if "flip" in augment.split(",") else "flip"
    run_dir = (
        Path(first["run_dir"]).parent / f"{len(state.finalists) + 1}-trial{first['trial']}-{suffix}"
    )
    state.finalists.append(
        {
            **first,
            "values": {**first["values"], "augment": flipped},
            "run_dir": str(run_dir),
            "flip_variant_of": str(first["run_dir"]),
        }
    )
    print(
        f"{name} (augment={augment}) is trained a second time with augment={flipped} as "
        f"{run_dir.name}: short trials rank augmentation badly, validation chooses",
        flush=True,
    )


def plan_training(
    state: AutoState, finalist: dict, seconds: float, measured: float | None = None
) -> int:
    """Epochs a finalist trains for in `seconds`: at `measured` seconds per epoch (timed on its
    own data, `trainer.auto.finalists.epoch_seconds`), else its trial's seconds per epoch
    scaled to the whole training set (`epoch_scale`); corrected by the pace the finalists
    before it measured, at least as many examples as its trial saw. Records the prediction
    in `finalist`."""
    scale = epoch_scale(state)
    pace, overhead = finalist_pace(state)
    per_epoch = measured or finalist["seconds"] / max(1, finalist["epochs"]) * scale
    finalist["predicted_per_epoch"] = round(per_epoch, 3)
    least = max(1, math.ceil(finalist["epochs"] / scale))
    return affordable_epochs(per_epoch * pace, seconds, overhead, least)


def plan_default_training(state: AutoState, finalist: dict, seconds: float, measured: float) -> int:
    """Epochs the recipe's default model trains for in `seconds` at `measured` seconds per
    epoch (timed on its own data, corrected by the pace the finalists before it measured):
    its default epochs (`finalist["epochs"]`) when the budget buys them, else as many as it
    buys (at least one), which `finalist["short_of_default"]` then says.

    Example:

        >>> from trainer.auto.finalist_stage import plan_default_training
        >>> from trainer.auto.state import AutoState
        >>> default = {"epochs": 15}
        >>> plan_default_training(AutoState(), default, 200.0, 2.0), "short_of_default" in default
        (15, False)
        >>> plan_default_training(AutoState(), default, 40.0, 2.0), default["short_of_default"]
        (10, 'the budget left buys 10 of its 15 default epochs')
    """
    pace, overhead = finalist_pace(state)
    finalist["predicted_per_epoch"] = round(measured, 3)
    bought = affordable_epochs(measured * pace, seconds, overhead, 1)
    epochs = min(finalist["epochs"], bought)
    if epochs < finalist["epochs"]:
        finalist["short_of_default"] = (
            f"the budget left buys {epochs} of its {finalist['epochs']} default epochs"
        )
    return epochs


def _planned_epochs(state: AutoState, clock: Clock, finalist: dict, config) -> int:
    """The epochs a finalist trains for: planned already (a longer run), else as many as its
    part of the budget buys, its epochs timed on its own data when its trial's pace says
    little (a trial on a share of a large training set, the recipe's default model). On a
    large image set the most accurate trial may first get a second run with flips toggled
    (`add_flip_variant`), which then shares the budget left."""
    if "planned_epochs" in finalist:
        return finalist["planned_epochs"]
    name = Path(finalist["run_dir"]).name
    linear = finalist.get("recipe_default") and finalist["values"].get("model") == "linear"
    measured = None
    if not linear and (finalist.get("recipe_default") or state.search_examples):
        measured = epoch_seconds(candidate, config)
        images = f"all {state.finalist_examples:,} training images" if state.search_examples else ""
        print(
            f"an epoch of {name} over {images or 'its data'}: {measured:.1f} s here now",
            flush=True,
        )
        add_flip_variant(state, clock, finalist, measured)
    waiting = waiting_finalists(state)
    part = max(clock.left(), 0.0) / len(waiting)
    finalist["part_ends"] = round(clock.spent() + part, 1)
    seconds = part - compress_reserve(state, finalist, part)
    if linear:
        return finalist["epochs"]  # fitted by scikit-learn: no epochs to buy
    if not finalist.get("recipe_default"):
        return plan_training(state, finalist, seconds, measured)
    epochs = plan_default_training(state, finalist, seconds, measured)
    if "short_of_default" in finalist:
        print(f"{name}: {finalist['short_of_default']}: trained for {epochs}", flush=True)
    return epochs


def train_one(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, finalist: dict
) -> None:
    """Trains one finalist to the end (`candidates/N-trialID`): for its planned epochs, or as
    many as its part of the budget buys; records its test accuracy and measured pace, or
    why it is left out."""
    import time

    from trainer.experiment import RunFailedError

    base = base_config(directory, options, state)
    config = candidate_config(base, finalist["values"])
    epochs = _planned_epochs(state, clock, finalist, config)
    config = dataclasses.replace(config, epochs=epochs)
    started = time.perf_counter()
    try:
        metrics = train_finalist(candidate, config, Path(finalist["run_dir"]))
    except RunFailedError as error:  # diverged or at chance: no file to ship
        print(f"finalist {finalist['run_dir']} is left out: {error}", flush=True)
        finalist["failed"] = str(error)
        return
    wall = time.perf_counter() - started
    finalist.update(final_epochs=epochs, test_accuracy=metrics["test_accuracy"])
    trained = metrics.get("train_seconds")
    if trained and metrics.get("epochs"):
        finalist["per_epoch_seconds"] = round(trained / metrics["epochs"], 3)
        finalist["overhead_seconds"] = round(max(wall - trained, 0.0), 1)


def compress_one(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, finalist: dict
) -> None:
    """Compresses one trained finalist until a file fits, within the rest of its part of the
    budget (after its quantization, which always runs), and verifies the chosen file with
    LiteRT and MediaPipe Tasks."""
    import time

    budget = Budget(options.max_kib, options.max_ms)
    epochs = max(1, finalist["final_epochs"] // 2)
    started = time.perf_counter()
    try:
        compression = FinalistCompression(Path(finalist["run_dir"]), budget, epochs, options.seed)
    except ValueError as error:  # a model that never learned: nothing to compress
        print(f"finalist {finalist['run_dir']} is left out: {error}", flush=True)
        finalist["failed"] = str(error)
        return
    part_ends = finalist.get("part_ends", options.time_budget)
    compression.run(deadline=time.time() + part_ends - clock.spent())
    chosen = compression.chosen()
    finalist["measured"] = [dataclasses.asdict(entry) for entry in compression.measured.values()]
    finalist["chosen"] = dataclasses.asdict(chosen)
    finalist["verified"] = compression.verify(chosen)
    finalist["compress_seconds"] = round(time.perf_counter() - started, 1)


def plan_longer_run(state: AutoState, budget: Budget, clock: Clock) -> dict | None:
    """The winner's configuration trained again as one more finalist, for the epochs the
    budget left buys at its measured pace once its run's overhead and compression are paid;
    None when that is fewer than `LONGER_GAIN` times its epochs (or nothing fits yet).

    Example:

        >>> from trainer.auto.cost import Budget
        >>> from trainer.auto.finalist_stage import plan_longer_run
        >>> from trainer.auto.state import AutoState, Clock
        >>> winner = {"trial": "0003", "values": {"width": 16}, "run_dir": "c/1-trial0003",
        ...           "final_epochs": 8, "per_epoch_seconds": 20.0, "overhead_seconds": 30.0,
        ...           "compress_seconds": 50.0, "chosen": {"fits": True, "val_accuracy": 0.9,
        ...           "size_bytes": 1000}, "verified": {}}
        >>> plan = plan_longer_run(AutoState(finalists=[winner]), Budget(64), Clock(610, 0))
        >>> plan["planned_epochs"], plan["run_dir"]
        (26, 'c/2-trial0003-longer')
        >>> plan_longer_run(AutoState(finalists=[winner]), Budget(64), Clock(300, 0)) is None
        True
    """
    from trainer.auto.report import choose_winner

    winner, _ = choose_winner(state, budget)
    if winner is None or not winner.get("per_epoch_seconds"):
        return None
    seconds = clock.left() - winner.get("overhead_seconds", FINISH_SECONDS)
    seconds -= winner.get("compress_seconds", COMPRESS_SECONDS)
    epochs = min(MAX_FINAL_EPOCHS, int(max(seconds, 0.0) / winner["per_epoch_seconds"]))
    if epochs < LONGER_GAIN * winner["final_epochs"]:
        return None
    run_dir = Path(winner["run_dir"])
    name = f"{len(state.finalists) + 1}-trial{winner['trial']}-longer"
    kept = ("trial", "values", "val_accuracy", "epochs", "seconds", "error", "architecture")
    return {
        **{key: winner[key] for key in kept if key in winner},
        "run_dir": str(run_dir.parent / name),
        "fits_as_is": winner.get("fits_as_is", False),
        "planned_epochs": epochs,
        "part_ends": round(clock.spent() + clock.left(), 1),
        "longer_of": str(run_dir),
    }


def plan_fallback(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock
) -> dict | None:
    """The smallest architecture of the search space as one more finalist, once every
    finalist is done and none of their files fits the budget (the cost model measured it
    from the untrained model; a trained file can come out larger, or its compression fall
    short): a looser budget must not end with nothing where a tighter one, whose search
    refused every trial and fell back to the smallest, ends with a file. None when a file
    fits, when the smallest was tried already, when not even it can fit
    (`state.cannot_meet`), or when the budget left does not cover a run's overhead besides
    its epochs (said once): the budget is kept, and the report shows the closest file. With
    less left than the smallest's epochs and quantization take, it still trains (at least one
    epoch): on man pages at 100 KiB, 58 s were left and its file fitted."""
    from trainer.auto.report import choose_winner

    budget = Budget(options.max_kib, options.max_ms)
    tried = any(finalist.get("trial") == "smallest" for finalist in state.finalists)
    if state.cannot_meet or not state.smallest or tried:
        return None
    if choose_winner(state, budget)[0] is not None:
        return None
    if clock.left() < FINISH_SECONDS:
        if not state.extended:  # the loop asks again once, after the longer run's turn
            print(
                f"no finalist's file fits the budget, and {max(clock.left(), 0):.0f} s of the "
                "time budget are left, less than a run takes besides its epochs "
                f"({FINISH_SECONDS:.0f} s): the smallest model of the search space is not "
                "trained (a larger --time_budget gives it the time)",
                flush=True,
            )
        return None
    trial = smallest_trial(base_config(directory, options, state), state)
    cost = read_costs(directory / COSTS_FILE).get(trial["architecture"])
    fits_as_is = cost is None or budget.fits(cost.kib, cost.latency_ms)
    name = f"{len(state.finalists) + 1}-trialsmallest"
    return {**trial, "run_dir": str(directory / CANDIDATES_DIR / name), "fits_as_is": fits_as_is}


def finish_finalists(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, progress: Progress
) -> None:
    """Stage 4: each finalist in turn trained to the end, then compressed until it fits and
    its file verified (a finalist's unused time goes to the next); then, once, the winner's
    configuration trained again for longer when the budget left buys enough epochs."""
    budget = Budget(options.max_kib, options.max_ms)
    while True:
        waiting = waiting_finalists(state)
        fallback = None if waiting else plan_fallback(directory, options, state, clock)
        if fallback is not None:
            print(
                "no finalist's file fits the budget: the smallest model of the search space "
                f"({fallback['architecture']}) is trained as {Path(fallback['run_dir']).name}",
                flush=True,
            )
            state.finalists.append(fallback)
            save_state(directory, state, clock)
            continue
        if not waiting:
            if state.extended:
                return
            state.extended = True
            longer = plan_longer_run(state, budget, clock)
            if longer is not None:
                print(
                    f"the budget left buys {longer['planned_epochs']} epochs of the winner's "
                    f"configuration ({Path(longer['longer_of']).name}): training it again as "
                    f"{Path(longer['run_dir']).name}",
                    flush=True,
                )
                state.finalists.append(longer)
            save_state(directory, state, clock)
            continue
        finalist = waiting[0]
        if "test_accuracy" not in finalist:
            progress.enter(f"training finalist {finalist['run_dir']}")
            train_one(directory, options, state, clock, finalist)
            if "final_epochs" in finalist:
                print(
                    f"finalist {finalist['run_dir']}: {finalist['final_epochs']} epochs, test "
                    f"accuracy {finalist['test_accuracy']:.2%}",
                    flush=True,
                )
        else:
            progress.enter(f"compressing finalist {finalist['run_dir']}")
            compress_one(directory, options, state, clock, finalist)
        save_state(directory, state, clock)
