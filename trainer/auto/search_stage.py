"""Stages 2 and 3 of `trainer auto`: the cost floor of the search space, then the search.

Stage 2 measures the smallest architecture of the space with the cost model
(`trainer.auto.cost`): a budget that not even it could reach after compression stops the run
here, before any training, naming the limit; text kinds whose smallest file cannot fit are
left out of the search. Stage 3 is keras-tuner's random search (`trainer.tuning.search` over
`trainer.auto.candidate`, in worker processes with `--workers`) within its share of the time
budget, each trial behind the cost model; it ends by choosing the finalists (the most
accurate trial, the most accurate one that fits as it is, and the recipe's default model when
the cost model says it can be brought within the budget). This module must not train or
compress the finalists (`trainer.auto.finalist_stage` does).
"""

import dataclasses
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
from trainer.auto.options import (
    CANDIDATES_DIR,
    COMPRESS_SECONDS,
    COSTS_FILE,
    FINALISTS,
    FINISH_SECONDS,
    SEARCH_DIR,
    SEARCH_SHARE,
    SEARCH_SHARE_LARGE,
    AutoOptions,
)
from trainer.auto.state import AutoState, Clock

TRIAL_STEPS = 150  # optimizer steps a search trial needs at least to rank configurations


def search_share(state: AutoState) -> float:
    """The share of the time budget the search runs for: smaller when its trials train on a
    share of a large training set."""
    return SEARCH_SHARE_LARGE if state.search_examples else SEARCH_SHARE


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
    width, size = min(candidate.WIDTHS), min(state.image_sizes)
    smallest = dataclasses.replace(base, width=width, image_size=size)
    counted = []
    for stages in candidate.STAGES:
        try:
            model = _small_cnn(dataclasses.replace(smallest, stages=stages), state)
        except ValueError:  # more stages than the resolution can halve
            continue
        counted.append((model.count_params(), stages))
    return dataclasses.replace(smallest, stages=min(counted)[1])


def _small_cnn(config: candidate.Config, state: AutoState):
    from trainer.models import small_cnn

    shape = (config.image_size, config.image_size, state.channels)
    return small_cnn(shape, state.classes, width=config.width, stages=config.stages)


def corner_cost(corner: candidate.Config, state: AutoState) -> Cost:
    """The cost of an architecture measured before it trains (the smallest of the space, the
    recipe's default): an image CNN on random pixels (no data loads), a text model as the
    recipe builds it on the data."""
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
    elif state.search_examples and len(state.image_sizes) > 1:
        keep_own_size(directory, base, state, budget)


def searched_resolutions(state: AutoState, own_size_cost: Cost, budget: Budget) -> list[int]:
    """The image sizes the search tries: on a large training set (its trials train on a share
    of it) only the data's own when the smallest architecture there fits the budget as it is
    (`own_size_cost`), else every size of `state.image_sizes`. With that many images the
    finalists' accuracy is bounded by the input they see, not by overfitting, while short
    trials favour the small sizes that learn fastest: on all of Fashion-MNIST the search
    kept 14x14, which levels off near 91% after 40 epochs (90.65% on the test set), where
    the same width-16 CNN at 28x28 reached 91.0% after 7 epochs and 92.9% after 30.

    Example:

        >>> from trainer.auto.cost import Budget, Cost
        >>> from trainer.auto.search_stage import searched_resolutions
        >>> from trainer.auto.state import AutoState
        >>> large = AutoState(image_sizes=[14, 20, 28], search_examples=8000)
        >>> cost = Cost("width=8, stages=3, image_size=28", 14_000, 1_000_000, "dynamic",
        ...             18_000, 0.02)
        >>> searched_resolutions(large, cost, Budget(100, 0.1))
        [28]
        >>> searched_resolutions(large, cost, Budget(100, 0.01))  # only compression could fit
        [14, 20, 28]
    """
    if state.search_examples and budget.fits(own_size_cost.kib, own_size_cost.latency_ms):
        return [max(state.image_sizes)]
    return list(state.image_sizes)


def keep_own_size(directory: Path, base: candidate.Config, state: AutoState, budget: Budget):
    """Measures the smallest architecture at the data's own size and, when it fits as it is
    (`searched_resolutions`), narrows the searched sizes to it and has the search train only
    candidates that fit as they are (`state.as_is`): an epoch over a large training set costs
    much of the budget, which then buys the finalist's epochs instead of a pruning retrain
    (a third of a compressed finalist's part) or a second finalist's. `state.smallest`
    follows."""
    own = dataclasses.replace(state, image_sizes=[max(state.image_sizes)])
    corner = smallest_corner(base, own)
    cost = corner_cost(corner, own)
    remember_cost(directory / COSTS_FILE, cost)
    sizes = searched_resolutions(state, cost, budget)
    if sizes != state.image_sizes:
        print(
            f"search at the data's own size only, {sizes[0]}x{sizes[0]}: its smallest model "
            f"({cost.architecture}) fits as it is, and the finalists train on all "
            f"{state.finalist_examples:,} images; trials whose file does not fit as it is are "
            "skipped",
            flush=True,
        )
        state.image_sizes, state.as_is = sizes, True
        state.smallest.update(width=corner.width, stages=corner.stages, image_size=sizes[0])


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
    trials_base = dataclasses.replace(
        base, trial_subset=bool(state.search_examples), as_is=state.as_is
    )
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
            "architecture": candidate.architecture(candidate_config(base, trial.values)),
        }
        for trial in result.trials
    ]
    completed = [trial for trial in state.trials if trial["val_accuracy"] is not None]
    if not completed:
        _check_refusals(state.trials, directory)
        print(
            "no trial completed within the search's share of the budget: the smallest model "
            "of the search space is the finalist",
            flush=True,
        )
        completed = [smallest_trial(base, state)]
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
    state.finalists = []  # none trained yet: a search resumed after a kill chooses them again
    for index, trial in enumerate(chosen[:FINALISTS], start=1):
        run_dir = directory / CANDIDATES_DIR / f"{index}-trial{trial['trial']}"
        state.finalists.append({**trial, "run_dir": str(run_dir), "fits_as_is": fits_as_is(trial)})
    add_recipe_default(directory, options, state, clock)
    state.search_done = True


def candidate_config(base: candidate.Config, values: dict) -> candidate.Config:
    """`base` with a trial's searched `values` applied, as the search built that trial."""
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


def smallest_trial(base: candidate.Config, state: AutoState) -> dict:
    """The smallest architecture as a finalist, when the search's share of the budget ended
    before a trial completed (every one refused by the cost model, or none started), or when
    no finalist's file could be brought within the budget: it trains for the trial epochs,
    with the recipe's training settings."""
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


def recipe_default(base: candidate.Config, state: AutoState) -> tuple[dict, int]:
    """(the values that make a candidate the recipe's default model with its default training
    settings, its default epochs): what the recipe trains with only `--data` set, as `trainer
    train image_classifier --data=D` (or text_classifier) and bench/auto.py's baseline train
    it before `trainer compress`. An image size the search does not write is read from the
    source, as the recipe reads it (8x8 digits enlarged to 32x32, 28x28 images to 32x32).

    Example:

        >>> from trainer.auto import candidate
        >>> from trainer.auto.search_stage import recipe_default
        >>> from trainer.auto.state import AutoState
        >>> base = candidate.Config(data="photos", kind="image", resolutions="auto")
        >>> values, epochs = recipe_default(base, AutoState(kind="image", image_sizes=[14, 20, 28]))
        >>> values["width"], values["image_size"], values["resolutions"], epochs
        (32, 32, '', 15)
    """
    defaults = candidate.recipe_for(base).Config()
    if state.kind == "image":
        size = defaults.image_size or max(state.image_sizes)
        values = {"width": defaults.width, "stages": defaults.stages, "image_size": size}
        values.update(augment=defaults.augment, learning_rate=0.0)  # 0: the recipe's own
        if size not in state.image_sizes:
            values["resolutions"] = ""
        return values, defaults.epochs
    from trainer.models.text_choice import with_text_model_defaults

    resolved = with_text_model_defaults(defaults)
    values = {name: getattr(resolved, name) for name in candidate.SEARCHED["text"]}
    values["learning_rate"] = 0.0
    return values, resolved.epochs


def default_refusal(cost: Cost, budget: Budget, as_is: bool) -> str:
    """Why the cost model keeps the recipe's default model out of the finalists ("" when it
    can be brought within `budget`: as it is on a search for files that fit as they are
    (`as_is`), else within compression's reach).

    Example:

        >>> from trainer.auto.cost import Budget, Cost
        >>> from trainer.auto.search_stage import default_refusal
        >>> cost = Cost("width=32, stages=3, image_size=32", 94_000, 10**7, "dynamic",
        ...             125_000, 0.3, reach=4.0)
        >>> default_refusal(cost, Budget(256, 0.5), False), default_refusal(cost, Budget(100, 0.1), False)
        ('', '')
        >>> default_refusal(cost, Budget(100, 0.1), True)
        'size 122.1 KiB > --max_kib=100; latency 0.300 ms > --max_ms=0.1, and this search keeps files that fit as they are'
    """
    held = dataclasses.replace(cost, reach=1.0) if as_is else cost
    if budget.reachable(held):
        return ""
    broken = "; ".join(budget.broken_limits(cost.kib, cost.latency_ms))
    if as_is:
        return f"{broken}, and this search keeps files that fit as they are"
    return f"{broken}, more than the {cost.compress_reach:g}x that compression can remove"


def add_recipe_default(
    directory: Path, options: AutoOptions, state: AutoState, clock: Clock
) -> None:
    """Adds the recipe's default model (`recipe_default`) as the last finalist when the cost
    model says it can be brought within the budget and the budget left covers at least a
    finalist's run and quantization, so that what the recipe's defaults followed by `trainer
    compress` would give is among the files validation chooses from; its epochs come out of
    the budget like every finalist's. Records the decision in `state.recipe_default`."""
    base = base_config(directory, options, state)
    values, epochs = recipe_default(base, state)
    config = candidate_config(base, values)
    architecture = candidate.architecture(config)
    budget = Budget(options.max_kib, options.max_ms)
    state.recipe_default = {"architecture": architecture, "epochs": epochs, "added": False}
    reason, fits_as_is, measured = "", True, ""
    if clock.left() < FINISH_SECONDS + COMPRESS_SECONDS:
        reason = (
            f"{max(clock.left(), 0):.0f} s of the time budget are left, less than a finalist's "
            f"run and quantization take besides its epochs ({FINISH_SECONDS + COMPRESS_SECONDS:.0f} s)"
        )
    elif budget.max_kib or budget.max_ms:
        cost = read_costs(directory / COSTS_FILE).get(architecture)
        if cost is None:
            cost = corner_cost(config, state)
            remember_cost(directory / COSTS_FILE, cost)
        reason = default_refusal(cost, budget, state.as_is)
        fits_as_is = budget.fits(cost.kib, cost.latency_ms)
        measured = f": {cost.format} file {cost.kib:.1f} KiB, {cost.latency_ms:.4f} ms"
    if reason:
        state.recipe_default["reason"] = reason
        print(
            f"the recipe's default model ({architecture}{measured}) is not a finalist: {reason}",
            flush=True,
        )
        return
    run_dir = directory / CANDIDATES_DIR / f"{len(state.finalists) + 1}-recipe-default"
    state.finalists.append(
        {
            "trial": "default",
            "values": values,
            "val_accuracy": None,
            "epochs": epochs,
            "seconds": None,
            "error": "",
            "architecture": architecture,
            "run_dir": str(run_dir),
            "fits_as_is": fits_as_is,
            "recipe_default": True,
        }
    )
    state.recipe_default["added"] = True
    print(
        f"the recipe's default model ({architecture}{measured}; its default training "
        f"settings) is a finalist too: {run_dir.name}",
        flush=True,
    )


def trial_epochs(train_examples: int, time_budget: float, share: float = SEARCH_SHARE) -> int:
    """Epochs per search trial at most: enough for about `TRIAL_STEPS` optimizer steps at the
    recipes' batch size (small data needs more epochs), and more with a longer search (a
    minute of its `share` of the budget each), between 2 and 8; early stopping may end a
    trial sooner.

    Example:

        >>> from trainer.auto.search_stage import trial_epochs
        >>> trial_epochs(60_000, 900), trial_epochs(2_000, 60), trial_epochs(100, 60)
        (6, 3, 8)
    """
    from trainer.sizing import auto_batch_size

    train = max(1, int(train_examples * 0.9))  # the recipes hold a tenth out for validation
    steps = math.ceil(train / auto_batch_size(train))
    return min(8, max(2, math.ceil(TRIAL_STEPS / steps), int(time_budget * share / 60)))
