"""`trainer auto`'s stages, from a data source to the finalists' verified files.

1. The data check (`trainer.data`): the source loaded once and checked in fast mode, its
   report in `AUTO_DIR/data/`, image or text chosen from what it holds.
2. The cost model on the smallest architecture of the space: a budget that not even it could
   reach after compression stops here, before any training, naming the limit.
3. The search (`trainer.tuning.search` over `trainer.auto.candidate`, keras-tuner's random
   search, in worker processes with `--workers`) within its share of the time budget,
   each trial behind the cost model; on a large image training set the trials train on a
   stratified share of it and validate on the finalists' own validation split.
4. The finalists (the most accurate trial, and the most accurate one that fits as it is),
   each trained to the end and compressed until it fits (`trainer.auto.finalists`) in turn,
   for as many epochs as its part of the budget left buys (its trial's pace, scaled to the
   whole training set and corrected by the pace the finalists before it measured); then,
   when the budget left would buy half as many epochs more, the winner's configuration
   trained again for longer, as one more finalist.

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
from trainer.auto.finalists import FinalistCompression, epoch_seconds, train_finalist
from trainer.auto.options import (
    CANDIDATES_DIR,
    COSTS_FILE,
    FINALISTS,
    SEARCH_DIR,
    SEARCH_EXAMPLES,
    SEARCH_SHARE,
    SEARCH_SHARE_LARGE,
    AutoOptions,
)
from trainer.auto.state import AutoState, Clock, Progress, save_state

MAX_FINAL_EPOCHS = 40
UPSAMPLE_BELOW = 16  # images smaller than this many pixels are also searched at larger sizes
TRIAL_STEPS = 150  # optimizer steps a search trial needs at least to rank configurations
# Seconds of a finalist's run spent outside its epochs (data, export, verification), kept out
# of the epochs its share of the budget buys until a finalist has measured them.
FINISH_SECONDS = 20.0
# Seconds kept for compressing a finalist whose file fits as it is (its quantization and the
# verification of one file), until a finalist has measured them.
COMPRESS_SECONDS = 60.0
# A finalist that must be compressed keeps this share of its part of the budget for it: room
# for one filter-pruning retrain at half its epochs.
COMPRESS_SHARE = 1 / 3
# The budget left after the finalists retrains the winner's configuration only when it buys
# at least this many times the winner's epochs: fewer would gain too little to be told from
# noise on validation.
LONGER_GAIN = 1.5


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
        state.image_sizes = searched_sizes(min(data.x_train.shape[1:3]))
        state.channels = int(data.x_train.shape[-1]) if data.x_train.ndim == 4 else 1
        save_resolutions(directory, options, data, state.image_sizes)
        save_search_subsets(directory, options, state)


def _save_arrays(path: Path, arrays: dict) -> None:
    import numpy as np

    from trainer.files import atomic_save

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)

    atomic_save(path, write)


def resize_images(images, size: int):
    """`images` (N, H, W[, C]) resized to `size` x `size` as the folder loader resizes
    (antialiased, rounded back to the input's integer type), for sources whose loader keeps
    their own size (IDX, .npz, CIFAR).

    Example:

        >>> import numpy as np
        >>> from trainer.auto.pipeline import resize_images
        >>> resize_images(np.full((2, 28, 28, 1), 200, np.uint8), 14)[0, :2, :2, 0].tolist()
        [[200, 200], [200, 200]]
    """
    import numpy as np
    import tensorflow as tf

    if images.shape[1:3] == (size, size):
        return images
    flat = images.ndim == 3
    batch = images[..., None] if flat else images
    parts = []
    for start in range(0, len(batch), 4096):
        part = tf.image.resize(batch[start : start + 4096], (size, size), antialias=True).numpy()
        if np.issubdtype(images.dtype, np.integer):
            limits = np.iinfo(images.dtype)
            part = np.clip(part.round(), limits.min, limits.max)
        parts.append(part.astype(images.dtype))
    resized = np.concatenate(parts) if parts else np.zeros((0, size, size, batch.shape[-1]))
    return resized[..., 0] if flat else resized


def save_resolutions(directory: Path, options: AutoOptions, data, sizes: list[int]) -> None:
    """Writes the images at each searched resolution once, as `AUTO_DIR/data/image_<size>.npz`
    (read by the source loader at that `--image_size`), which every trial and finalist reads
    instead of decoding and resizing the source's files again. A folder's images are resized
    from their files; a source whose loader keeps its own size (IDX, .npz) from its arrays."""
    import numpy as np

    from trainer.data.sources import SourceOptions, load_source

    for size in sizes:
        resized = data
        if data.x_train.shape[1:3] != (size, size):
            resized = load_source(options.data, SourceOptions(image_size=size, seed=options.seed))
        arrays = {"class_names": np.array(resized.class_names)}
        for split in resized.split_names():
            x, y = resized.arrays(split)
            arrays[f"x_{split}"], arrays[f"y_{split}"] = resize_images(x, size), y
        _save_arrays(directory / candidate.resolution_file(size), arrays)


def save_search_subsets(directory: Path, options: AutoOptions, state: AutoState) -> None:
    """On a large training set, writes `AUTO_DIR/data/search_<size>.npz` for each searched
    resolution: a stratified `SEARCH_EXAMPLES` of the images a finalist trains on, with the
    finalist's own validation split (held out and cleaned as the recipe does it), so that
    the search ranks more configurations in its share of the budget on the same validation
    images the finalists are chosen on. Records both training set sizes in `state`."""
    import numpy as np

    from trainer.data.prepare import Cleaning, prepare_data
    from trainer.data.sources import SourceOptions
    from trainer.data.split import stratified_split

    defaults = candidate.recipe_for(candidate.Config(kind="image")).Config()
    if state.train_examples * (1 - defaults.val_fraction) <= SEARCH_EXAMPLES:
        return
    cleaning = Cleaning(defaults.drop_duplicates, defaults.drop_leaks, defaults.drop_label_errors)
    for size in state.image_sizes:
        source_options = SourceOptions(
            image_size=size,
            channels=defaults.channels,
            test_fraction=defaults.test_fraction,
            seed=options.seed,
        )
        data, _ = prepare_data(
            str(directory / candidate.resolution_file(size)),
            source_options,
            None,
            cleaning,
            defaults.val_fraction,
        )
        share = SEARCH_EXAMPLES / len(data.y_train)
        _, subset = stratified_split(data.y_train, share, options.seed)
        arrays = {
            "class_names": np.array(data.class_names),
            "x_train": data.x_train[subset],
            "y_train": data.y_train[subset],
            "x_val": data.x_val,
            "y_val": data.y_val,
            "x_test": data.x_test,
            "y_test": data.y_test,
        }
        _save_arrays(directory / candidate.resolution_file(size, trial_subset=True), arrays)
        state.finalist_examples, state.search_examples = len(data.y_train), len(subset)
    print(
        f"search trials train on {state.search_examples:,} of the {state.finalist_examples:,} "
        "training images (stratified) and validate on the finalists' validation split",
        flush=True,
    )


def search_share(state: AutoState) -> float:
    """The share of the time budget the search runs for: smaller when its trials train on a
    share of a large training set."""
    return SEARCH_SHARE_LARGE if state.search_examples else SEARCH_SHARE


def epoch_scale(state: AutoState) -> float:
    """How many times a search trial's epoch a finalist's epoch costs: its training set over
    the trial's (1 when the trials train on all of it).

    Example:

        >>> from trainer.auto.pipeline import epoch_scale
        >>> from trainer.auto.state import AutoState
        >>> epoch_scale(AutoState(finalist_examples=54_000, search_examples=8_000))
        6.75
    """
    if state.search_examples and state.finalist_examples:
        return state.finalist_examples / state.search_examples
    return 1.0


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


def searched_sizes(native: int) -> list[int]:
    """The input resolutions searched: `image_sizes(native)`, and for images smaller than
    `UPSAMPLE_BELOW` pixels also twice and four times their size (at most 32). A CNN halves
    its input at every stage but the last, so 8x8 images leave a 2x2 map to the third stage;
    image_classifier's default resizes them to 32x32 (measured on digits, 8x8: 99.72% at
    32x32 against 98.61% for auto's best at 8x8).

    Example:

        >>> from trainer.auto.pipeline import searched_sizes
        >>> searched_sizes(8), searched_sizes(12), searched_sizes(28)
        ([8, 16, 32], [8, 12, 24, 32], [14, 20, 28])
    """
    sizes = set(image_sizes(native))
    if native < UPSAMPLE_BELOW:
        sizes |= {min(32, native * factor) for factor in (2, 4)}
    return sorted(sizes)


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
    """The search space: images at the searched sizes; texts over the model kinds that can
    fit the budget."""
    if state.kind == "image":
        return candidate.image_space(state.image_sizes)
    return candidate.text_space([m for m in candidate.TEXT_MODELS if m not in state.left_out])


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
        architecture = candidate.architecture(corner)
        formats, reach = candidate.SHIPPED_FORMATS["image"], candidate.REACH["image"]
        return measure_cost(model, architecture, pixels, pixels[0], formats, reach)
    recipe = candidate.recipe_for(corner)
    experiment = recipe.build(candidate.recipe_config(corner, recipe))
    architecture = candidate.architecture(corner)
    sample = experiment.x_test[0]
    return measure_cost(
        experiment.model,
        architecture,
        experiment.representative,
        sample,
        candidate.SHIPPED_FORMATS["text"],
        candidate.REACH["text"],
        candidate.embedded_bytes(experiment),
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
        return
    if state.kind == "text":
        leave_out_table_models(directory, corner, state, budget)


def leave_out_table_models(
    directory: Path, corner: candidate.Config, state: AutoState, budget: Budget
) -> None:
    """Measures the smallest configuration of each text kind whose size is mostly a table
    the search does not vary (`candidate.TABLE_MODELS`) and leaves out of the search every
    kind that cannot fit even there (`state.left_out`): on man pages at 256 KiB, bow's
    smallest file is 1.8 MiB and linear's 0.3 MiB, and their trials were refused one by one,
    each after loading the data."""
    for model in candidate.TABLE_MODELS:
        cost = corner_cost(dataclasses.replace(corner, model=model), state)
        remember_cost(directory / COSTS_FILE, cost)
        if not budget.reachable(cost):
            state.left_out.append(model)
            print(
                f"left out of the search: {model} (its smallest, {cost.architecture}, is a "
                f"{cost.kib:.1f} KiB file)",
                flush=True,
            )


def run_search(directory: Path, options: AutoOptions, state: AutoState, clock: Clock):
    """Stage 3: keras-tuner's random search over the candidate recipe, for its share of the
    budget (at least one trial); a killed search resumes from its folder."""
    from trainer.tuning import TuneOptions, search

    seconds = max(clock.until_share(search_share(state)), 1.0)
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
    trials_base = dataclasses.replace(base, trial_subset=bool(state.search_examples))
    result = search(candidate, trials_base, space(state), options=tune_options)
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
        state.finalists.append({**trial, "run_dir": str(run_dir), "fits_as_is": fits_as_is(trial)})
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


def trial_epochs(train_examples: int, time_budget: float, share: float = SEARCH_SHARE) -> int:
    """Epochs per search trial at most: enough for about `TRIAL_STEPS` optimizer steps at the
    recipes' batch size (small data needs more epochs), and more with a longer search (a
    minute of its `share` of the budget each), between 2 and 8; early stopping may end a
    trial sooner.

    Example:

        >>> from trainer.auto.pipeline import trial_epochs
        >>> trial_epochs(60_000, 900), trial_epochs(2_000, 60), trial_epochs(100, 60)
        (6, 3, 8)
    """
    from trainer.sizing import auto_batch_size

    train = max(1, int(train_examples * 0.9))  # the recipes hold a tenth out for validation
    steps = math.ceil(train / auto_batch_size(train))
    return min(8, max(2, math.ceil(TRIAL_STEPS / steps), int(time_budget * share / 60)))


def affordable_epochs(per_epoch: float, seconds: float, overhead: float, least: int) -> int:
    """Epochs that `seconds` buy at `per_epoch` seconds each once `overhead` (data, export,
    verification) is paid: at least `least`, at most `MAX_FINAL_EPOCHS`.

    Example:

        >>> from trainer.auto.pipeline import affordable_epochs
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

        >>> from trainer.auto.pipeline import compress_reserve
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


def train_one(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, finalist: dict
) -> None:
    """Trains one finalist to the end (`candidates/N-trialID`): for its planned epochs, or as
    many as its part of the budget buys; records its test accuracy and measured pace, or
    why it is left out."""
    import time

    from trainer.experiment import RunFailedError

    waiting = [f for f in state.finalists if not ({"verified", "failed"} & set(f))]
    base = base_config(directory, options, state)
    config = _trial_config(base, finalist["values"])
    if "planned_epochs" in finalist:
        epochs = finalist["planned_epochs"]
    else:
        part = max(clock.left(), 0.0) / len(waiting)
        finalist["part_ends"] = round(clock.spent() + part, 1)
        measured = None
        if state.search_examples:  # its trial's pace says little about all of the data
            measured = epoch_seconds(candidate, config)
            print(
                f"an epoch of {Path(finalist['run_dir']).name} over all "
                f"{state.finalist_examples:,} training images: {measured:.1f} s here now",
                flush=True,
            )
        seconds = part - compress_reserve(state, finalist, part)
        epochs = plan_training(state, finalist, seconds, measured)
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
        >>> from trainer.auto.pipeline import plan_longer_run
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


def finish_finalists(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock, progress: Progress
) -> None:
    """Stage 4: each finalist in turn trained to the end, then compressed until it fits and
    its file verified (a finalist's unused time goes to the next); then, once, the winner's
    configuration trained again for longer when the budget left buys enough epochs."""
    budget = Budget(options.max_kib, options.max_ms)
    while True:
        waiting = [f for f in state.finalists if not ({"verified", "failed"} & set(f))]
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
