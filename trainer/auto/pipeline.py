"""`trainer auto`'s stages, from a data source to the finalists' verified files.

1. The data check (`trainer.data`): the source loaded once and checked in fast mode, its
   report in `AUTO_DIR/data/`, image or text chosen from what it holds.
2. The cost model on the smallest architecture of the space: a budget that not even it could
   reach after compression stops here, before any training, naming the limit.
3. The search (`trainer.tuning.search` over `trainer.auto.candidate`, keras-tuner's random
   search, in worker processes with `--workers`) within its share of the time budget,
   each trial behind the cost model.
4. The finalists (the most accurate trial, and the most accurate one that fits as it is)
   trained to the end, then compressed until they fit (`trainer.auto.finalists`).

Every step is written to `state.json` as it ends, so `--resume` continues at the step a kill
interrupted; Ctrl-C keeps what finished (`trainer.auto.report` then chooses among it). This
module must not parse command lines nor write the final report.
"""

import dataclasses
import datetime
import math
from pathlib import Path

from trainer.auto import candidate
from trainer.auto.cost import (
    Budget,
    CandidateTooCostly,
    Cost,
    measure_cost,
    read_costs,
    refuse_unreachable,
    remember_cost,
)
from trainer.auto.finalists import FinalistCompression, train_finalist
from trainer.auto.options import (
    CANDIDATES_DIR,
    COSTS_FILE,
    FINALISTS,
    SEARCH_DIR,
    SEARCH_SHARE,
    TRAINING_SHARE,
    AutoOptions,
)
from trainer.auto.state import AutoState, Clock, Progress, save_state

MAX_FINAL_EPOCHS = 40
TRIAL_STEPS = 150  # optimizer steps a search trial needs at least to rank configurations
# Seconds of a finalist's run spent outside its epochs (data, export, verification), kept out
# of the epochs its share of the budget buys.
FINISH_SECONDS = 20.0


def new_auto_dir(root: str | Path = "runs") -> Path:
    """A new folder `ROOT/auto-<timestamp>` (with a suffix if that one exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = Path(root) / f"auto-{stamp}", 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"auto-{stamp}-{suffix}"
    return path


def data_check(directory: Path, options: AutoOptions, state: AutoState) -> None:
    """Stage 1: loads and checks the source (fast mode), writes its report, and records
    whether it holds images or texts and which input resolutions the search tries."""
    from trainer.data.check import check_data, write_data_report
    from trainer.data.sources import SourceOptions, load_source

    data = load_source(options.data, SourceOptions(seed=options.seed))
    report = check_data(data, label_errors=False, seed=options.seed)
    write_data_report(report, directory / "data")
    print(report.summary(max_rows=10), flush=True)
    if data.kind not in candidate.KINDS:
        raise ValueError(
            f"{options.data} holds {data.kind} data; trainer auto searches image and text "
            "classifiers: pass a folder of images or texts, a .csv with a text column, or an "
            ".npz of images or strings"
        )
    state.kind, state.classes, state.train_examples = data.kind, data.num_classes, len(data.y_train)
    if data.kind == "image":
        state.image_sizes = image_sizes(min(data.x_train.shape[1:3]))
        state.channels = int(data.x_train.shape[-1]) if data.x_train.ndim == 4 else 1
        save_resolutions(directory, options, data, state.image_sizes)


def save_resolutions(directory: Path, options: AutoOptions, data, sizes: list[int]) -> None:
    """Writes the images at each searched resolution once, as `AUTO_DIR/data/image_<size>.npz`
    (read by the source loader at that `--image_size`), which every trial and finalist reads
    instead of decoding and resizing the source's files again."""
    import numpy as np

    from trainer.data.sources import SourceOptions, load_source
    from trainer.files import atomic_save

    for size in sizes:
        resized = data
        if data.x_train.shape[1:3] != (size, size):
            resized = load_source(options.data, SourceOptions(image_size=size, seed=options.seed))
        arrays = {"class_names": np.array(resized.class_names)}
        for split in resized.split_names():
            arrays[f"x_{split}"], arrays[f"y_{split}"] = resized.arrays(split)

        def write(temporary: Path, arrays=arrays) -> None:
            with open(temporary, "wb") as file:
                np.savez(file, **arrays)

        atomic_save(directory / candidate.resolution_file(size), write)


def image_sizes(native: int) -> list[int]:
    """The input resolutions searched: the data's own (at most 64), three quarters and half of
    it (even sizes, at least 8).

    Example:

        >>> from trainer.auto.pipeline import image_sizes
        >>> image_sizes(28), image_sizes(224)
        ([14, 20, 28], [32, 48, 64])
    """
    top = min(native, 64)
    smaller = {max(8, round(top * share / 2) * 2) for share in (0.75, 0.5)}
    return sorted({top, *(size for size in smaller if size < top)})


def base_config(directory: Path, options: AutoOptions, state: AutoState) -> candidate.Config:
    """The candidate config every trial starts from: the data, the budget, the cost file."""
    return candidate.Config(
        data=options.data,
        kind=state.kind,
        image_size=max(state.image_sizes, default=0),
        epochs=max(1, state.trial_epochs),
        seed=options.seed,
        max_kib=options.max_kib,
        max_ms=options.max_ms,
        costs=str(directory / COSTS_FILE),
        resolutions=str(directory) if state.kind == "image" else "",
    )


def space(state: AutoState) -> str:
    return (
        candidate.image_space(state.image_sizes) if state.kind == "image" else candidate.TEXT_SPACE
    )


def smallest_corner(base: candidate.Config, state: AutoState) -> candidate.Config:
    """The architecture of the space with the fewest parameters: images, the narrowest CNN at
    the lowest resolution with the stage count that leaves the fewest (counted on models
    built by the recipe's builder, no data loaded); texts, a CNN on the smallest vocabulary,
    embedding and length."""
    if state.kind == "text":
        return dataclasses.replace(
            base,
            model="cnn",
            embedding_dim=min(candidate.TEXT_WIDTHS),
            width=min(candidate.TEXT_WIDTHS),
            vocab_size=min(candidate.VOCABULARIES),
            sequence_length=min(candidate.SEQUENCE_LENGTHS),
        )
    counted = []
    for stages in candidate.STAGES:
        try:
            model = _small_cnn(dataclasses.replace(base, stages=stages), state)
        except ValueError:  # more stages than the resolution can halve
            continue
        counted.append((model.count_params(), stages))
    width, size = min(candidate.WIDTHS), min(state.image_sizes)
    return dataclasses.replace(base, width=width, stages=min(counted)[1], image_size=size)


def _small_cnn(config: candidate.Config, state: AutoState):
    from trainer.models import small_cnn

    size = min(state.image_sizes)
    shape = (size, size, state.channels)
    return small_cnn(shape, state.classes, width=min(candidate.WIDTHS), stages=config.stages)


def corner_cost(corner: candidate.Config, state: AutoState) -> Cost:
    """The cost of the smallest architecture: an image CNN measured on random pixels (no
    data loads), a text model as the recipe builds it on the data."""
    if state.kind == "image":
        import numpy as np

        size = corner.image_size
        pixels = np.random.default_rng(0).random((64, size, size, state.channels), np.float32)
        model = _small_cnn(corner, state)
        return measure_cost(model, candidate.architecture(corner), pixels, pixels[0], "int8")
    recipe = candidate.recipe_for(corner)
    experiment = recipe.build(candidate.recipe_config(corner, recipe))
    architecture = candidate.architecture(corner)
    sample = experiment.x_test[0]
    return measure_cost(
        experiment.model, architecture, experiment.representative, sample, "dynamic"
    )


def check_reachable(
    directory: Path, base: candidate.Config, state: AutoState, budget: Budget
) -> None:
    """Stage 2: finds the smallest architecture of the space (`state.smallest`) and, with
    limits, measures it; when not even it can fit after compression, records why in
    `state.cannot_meet` (the search is then skipped)."""
    corner = smallest_corner(base, state)
    names = (
        "width",
        "stages",
        "image_size",
        "model",
        "embedding_dim",
        "vocab_size",
        "sequence_length",
    )
    state.smallest = {name: getattr(corner, name) for name in names}
    if not (budget.max_kib or budget.max_ms):
        return
    cost = corner_cost(corner, state)
    remember_cost(directory / COSTS_FILE, cost)
    print(
        f"smallest model of the search space: {cost.architecture}, {cost.format} file "
        f"{cost.kib:.1f} KiB, {cost.latency_ms:.4f} ms",
        flush=True,
    )
    try:
        refuse_unreachable(cost, budget)
    except CandidateTooCostly as error:
        reason = str(error).split(": ", 1)[1]
        state.cannot_meet = f"the smallest model of the search space cannot fit: {reason}"


def run_search(directory: Path, options: AutoOptions, state: AutoState, clock: Clock):
    """Stage 3: keras-tuner's random search over the candidate recipe, for its share of the
    budget (at least one trial); a killed search resumes from its folder."""
    from trainer.tuning import TuneOptions, search

    seconds = max(clock.until_share(SEARCH_SHARE), 1.0)
    tune_options = TuneOptions(
        # Random, not Bayesian: the Gaussian process ignores the trials the cost model refuses,
        # so it proposes the same refused configuration again and again (measured: 8 repeats
        # in a row on Fashion-MNIST at --max_kib=64 --max_ms=0.1, once its 15 random points
        # were spent); random search proposes a new configuration each time.
        tuner="random",
        max_trials=0,
        max_epochs=state.trial_epochs,
        trial_patience=2,
        time_budget=seconds,
        search_seed=options.seed,
        tune_dir=str(directory / SEARCH_DIR),
        workers=options.workers,
    )
    base = base_config(directory, options, state)
    result = search(candidate, base, space(state), options=tune_options)
    costs = read_costs(directory / COSTS_FILE)
    state.trials = [
        {
            "trial": trial.trial_id,
            "values": trial.values,
            "val_accuracy": trial.objective,
            "epochs": trial.epochs,
            "seconds": trial.seconds,
            "error": trial.error,
            "architecture": candidate.architecture(_trial_config(base, trial.values)),
        }
        for trial in result.trials
    ]
    completed = [trial for trial in state.trials if trial["val_accuracy"] is not None]
    if not completed:
        _check_refusals(state.trials, directory)
        completed = [_smallest_trial(base, state)]
    budget = Budget(options.max_kib, options.max_ms)

    def fits_as_is(trial: dict) -> bool:
        cost = costs.get(trial["architecture"])
        return cost is not None and budget.fits(cost.kib, cost.latency_ms)

    # The most accurate trial, and the most accurate one whose file fits without compression
    # when that is another trial (a safe second finalist).
    chosen = [completed[0]]
    as_is = next((trial for trial in completed if fits_as_is(trial)), None)
    if as_is is not None and as_is is not completed[0]:
        chosen.append(as_is)
    for index, trial in enumerate(chosen[:FINALISTS], start=1):
        run_dir = directory / CANDIDATES_DIR / f"{index}-trial{trial['trial']}"
        state.finalists.append({**trial, "run_dir": str(run_dir)})
    state.search_done = True


def _trial_config(base: candidate.Config, values: dict) -> candidate.Config:
    from trainer.tuning import trial_config

    return trial_config(base, values, base.epochs)


def _check_refusals(trials: list[dict], directory: Path) -> None:
    """Raises when trials failed for another reason than the cost model (an error)."""
    errors = [trial["error"] for trial in trials]
    if any("skipped by the cost model" not in error for error in errors):
        raise ValueError(
            f"no trial of the search completed ({len(trials)} tried); their errors are in "
            f"{directory / SEARCH_DIR / 'trials.md'}"
        )


def _smallest_trial(base: candidate.Config, state: AutoState) -> dict:
    """The smallest architecture as the finalist, when the search's share of the budget
    ended before a trial completed (every one refused by the cost model, or none started):
    it trains for the trial epochs, with the recipe's training settings."""
    print(
        "no trial completed within the search's share of the budget: the smallest model of "
        "the search space is the finalist",
        flush=True,
    )
    config = dataclasses.replace(base, **state.smallest)
    values = {
        name: value
        for name, value in state.smallest.items()
        if name in candidate.SEARCHED[state.kind]
    }
    return {
        "trial": "smallest",
        "values": values,
        "val_accuracy": None,
        "epochs": state.trial_epochs,
        "seconds": 1e9,  # no measured pace: the finalist trains for the trial epochs
        "error": "",
        "architecture": candidate.architecture(config),
    }


def trial_epochs(train_examples: int, time_budget: float) -> int:
    """Epochs per search trial at most: enough for about `TRIAL_STEPS` optimizer steps at the
    recipes' batch size (small data needs more epochs), and more with a longer budget (a
    minute of search each), between 2 and 8; early stopping may end a trial sooner.

    Example:

        >>> from trainer.auto.pipeline import trial_epochs
        >>> trial_epochs(60_000, 900), trial_epochs(2_000, 60), trial_epochs(100, 60)
        (6, 3, 8)
    """
    from trainer.sizing import auto_batch_size

    train = max(1, int(train_examples * 0.9))  # the recipes hold a tenth out for validation
    steps = math.ceil(train / auto_batch_size(train))
    return min(8, max(2, math.ceil(TRIAL_STEPS / steps), int(time_budget * SEARCH_SHARE / 60)))


def final_epochs(finalist: dict, seconds: float) -> int:
    """Epochs a finalist trains for in `seconds`, from its trial's seconds per epoch: at least
    its trial's epochs, at most `MAX_FINAL_EPOCHS`."""
    per_epoch = finalist["seconds"] / max(1, finalist["epochs"])
    affordable = int(max(0.0, seconds - FINISH_SECONDS) / max(per_epoch, 1e-3))
    return max(1, finalist["epochs"], min(affordable, MAX_FINAL_EPOCHS))


def train_finalists(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, progress: Progress
) -> None:
    """Stage 4a: each finalist not trained yet, to the end, in its share of the budget."""
    base = base_config(directory, options, state)
    from trainer.experiment import RunFailedError

    waiting = [f for f in state.finalists if not ({"test_accuracy", "failed"} & set(f))]
    for position, finalist in enumerate(waiting):
        seconds = clock.until_share(SEARCH_SHARE + TRAINING_SHARE) / (len(waiting) - position)
        epochs = final_epochs(finalist, seconds)
        progress.enter(f"training finalist {finalist['run_dir']} for {epochs} epochs")
        config = dataclasses.replace(_trial_config(base, finalist["values"]), epochs=epochs)
        try:
            metrics = train_finalist(candidate, config, Path(finalist["run_dir"]))
        except RunFailedError as error:  # diverged or at chance: no file to ship
            print(f"finalist {finalist['run_dir']} is left out: {error}", flush=True)
            finalist["failed"] = str(error)
            save_state(directory, state, clock)
            continue
        finalist.update(final_epochs=epochs, test_accuracy=metrics["test_accuracy"])
        save_state(directory, state, clock)


def compress_finalists(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, progress: Progress
) -> None:
    """Stage 4b: each trained finalist not verified yet, compressed until it fits, its chosen
    file verified with LiteRT and MediaPipe Tasks."""
    import time

    budget = Budget(options.max_kib, options.max_ms)
    waiting = [
        f for f in state.finalists if "test_accuracy" in f and not ({"verified", "failed"} & set(f))
    ]
    for position, finalist in enumerate(waiting):
        progress.enter(f"compressing finalist {finalist['run_dir']}")
        share = max(clock.left(), 0.0) / (len(waiting) - position)
        epochs = max(1, finalist["final_epochs"] // 2)
        try:
            compression = FinalistCompression(
                Path(finalist["run_dir"]), budget, epochs, options.seed
            )
        except ValueError as error:  # a model that never learned: nothing to compress
            print(f"finalist {finalist['run_dir']} is left out: {error}", flush=True)
            finalist["failed"] = str(error)
            save_state(directory, state, clock)
            continue
        compression.run(deadline=time.time() + share)
        chosen = compression.chosen()
        finalist["measured"] = [
            dataclasses.asdict(entry) for entry in compression.measured.values()
        ]
        finalist["chosen"] = dataclasses.asdict(chosen)
        finalist["verified"] = compression.verify(chosen)
        save_state(directory, state, clock)


def run_stages(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, progress: Progress
) -> None:
    """Runs every stage that is not done yet, saving the state after each."""
    if not state.kind:
        progress.enter("data check")
        data_check(directory, options, state)
        state.trial_epochs = trial_epochs(state.train_examples, options.time_budget)
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
    train_finalists(directory, options, state, clock, progress)
    compress_finalists(directory, options, state, clock, progress)
