"""What a `trainer auto` folder remembers between sessions: its options, what is done, the
time spent, and the progress lines it prints.

`state.json` is rewritten atomically after every step (the data check, the search, each
finalist trained, compressed and verified), so a killed run resumes at the step it was in;
`auto.yaml` holds the options `--resume` reuses. `Clock` counts the time budget over every
session, and `Progress` prints the stage, the trials done and the time left.

This module must not train, search or measure.
"""

import dataclasses
import json
import threading
import time
from pathlib import Path

import yaml

from trainer.auto.options import OPTIONS_FILE, SEARCH_DIR, STATE_FILE, AutoOptions
from trainer.files import atomic_write_json, atomic_write_text


@dataclasses.dataclass
class AutoState:
    """What is done: the data's kind and sizes, the search's trials, each finalist's steps."""

    kind: str = ""  # image or text, from the data check
    image_sizes: list[int] = dataclasses.field(default_factory=list)  # searched resolutions
    channels: int = 0  # image channels the data has (1 or 3)
    classes: int = 0
    train_examples: int = 0  # in the source's training split, before validation is held out
    # training examples a finalist trains on, and a search trial (fewer on a large training
    # set); 0 = not counted (texts): a trial's seconds per epoch are then a finalist's
    finalist_examples: int = 0
    search_examples: int = 0
    trial_epochs: int = 0  # epochs per search trial at most
    spent_seconds: float = 0.0  # over every session
    search_done: bool = False
    trials: list[dict] = dataclasses.field(default_factory=list)  # the search's trials
    # per finalist: trial, values, val_accuracy, trial_seconds, trial_epochs, run_dir, epochs,
    # test_accuracy (once trained), measured and chosen (once compressed), verified
    finalists: list[dict] = dataclasses.field(default_factory=list)
    cannot_meet: str = ""  # why no candidate can fit, found before or by the search
    smallest: dict = dataclasses.field(default_factory=dict)  # the space's smallest architecture
    extended: bool = False  # the budget left after the finalists was considered for a longer run
    # texts: the model kinds left out of the search (not even their smallest can fit)
    left_out: list[str] = dataclasses.field(default_factory=list)
    # the search trains only candidates whose file fits as it is (a large image training set
    # whose smallest model at its own size fits)
    as_is: bool = False
    # the recipe's default model: architecture, default epochs, whether it is a finalist, and
    # why not (the cost model or the budget)
    recipe_default: dict = dataclasses.field(default_factory=dict)


class Clock:
    """The time budget over every session: seconds spent and left, and stage deadlines."""

    def __init__(self, budget: float, spent_before: float):
        self.budget, self.spent_before = budget, spent_before
        self.started = time.time()

    def spent(self) -> float:
        return self.spent_before + time.time() - self.started

    def left(self) -> float:
        return self.budget - self.spent()

    def until_share(self, share: float) -> float:
        """Seconds from now until `share` of the budget is spent (<= 0: already past)."""
        return self.budget * share - self.spent()


def save_options(directory: Path, options: AutoOptions) -> None:
    saved = dataclasses.asdict(options)
    saved.pop("resume")
    atomic_write_text(directory / OPTIONS_FILE, yaml.safe_dump(saved, sort_keys=False))


def load_options(directory: Path) -> AutoOptions:
    """The options of an auto folder, for `--resume`.

    Raises:
        FileNotFoundError: the folder holds no auto.yaml.
    """
    path = Path(directory) / OPTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a `trainer auto` folder (no {OPTIONS_FILE}): pass the folder "
            "`trainer auto` printed as 'auto folder: ...'"
        )
    saved = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = {field.name for field in dataclasses.fields(AutoOptions)}
    return AutoOptions(**{key: value for key, value in saved.items() if key in known})


def load_state(directory: Path) -> AutoState:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return AutoState()
    return AutoState(**json.loads(path.read_text(encoding="utf-8")))


def save_state(directory: Path, state: AutoState, clock: Clock) -> None:
    """Writes state.json with the time spent so far."""
    state.spent_seconds = round(clock.spent(), 1)
    atomic_write_json(Path(directory) / STATE_FILE, dataclasses.asdict(state))


class Progress:
    """Prints `auto: STAGE; N trials done; S s of the B s budget left` at each stage and every
    `every` seconds from a background thread (0 = at stages only)."""

    def __init__(self, directory: Path, clock: Clock, every: float):
        self.directory, self.clock, self.every = Path(directory), clock, every
        self.stage = "starting"
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def trials_done(self) -> int:
        log = self.directory / SEARCH_DIR / "trial_log.jsonl"
        if not log.is_file():
            return 0
        return sum(1 for line in log.read_text(encoding="utf-8").splitlines() if line.strip())

    def line(self) -> str:
        left = max(0.0, self.clock.left())
        return (
            f"auto: {self.stage}; {self.trials_done()} trials done; {left:.0f} s of the "
            f"{self.clock.budget:.0f} s budget left"
        )

    def enter(self, stage: str) -> None:
        self.stage = stage
        print(self.line(), flush=True)

    def _loop(self) -> None:
        while not self.stopped.wait(self.every):
            print(self.line(), flush=True)

    def __enter__(self) -> "Progress":
        if self.every > 0:
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
