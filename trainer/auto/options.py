"""What `trainer auto` is asked: its options, the files it writes into its folder, and how it
shares the time budget between its stages.

This module holds data only; it must not import TensorFlow or keras-tuner, so that `trainer
auto --help` and the option checks stay fast.
"""

import dataclasses

from trainer.config import ConfigError, limit, validate

OPTIONS_FILE = "auto.yaml"  # the options of the run: what --resume reads
STATE_FILE = "state.json"  # what is done: stages, candidates, seconds spent
COSTS_FILE = "costs.json"  # the cost model's measurements, one per architecture
SEARCH_DIR = "search"  # the keras-tuner search (a `trainer tune` folder)
CANDIDATES_DIR = "candidates"  # one run folder per candidate trained to the end
WINNER_FILE = "model.tflite"  # the winner, verified, with its sidecar model.json
PLOT_FILE = "accuracy_size_latency.png"

# Share of --time_budget for the search; the finalists then share what is left, each trained
# to the end and compressed in turn, so that the time one does not use goes to the next, and
# what the last leaves trains the winner's configuration again for longer when that buys
# half as many epochs more. On a large training set (more than SEARCH_EXAMPLES images) the
# trials train on SEARCH_EXAMPLES of them and the search gets a smaller share: a finalist's
# epochs over all the data cost more and decide more of its accuracy than a finer ranking,
# and the most accurate trial is trained twice (flips toggled, `finalist_stage.add_flip_variant`).
SEARCH_SHARE = 0.45
SEARCH_SHARE_LARGE = 0.2
SEARCH_EXAMPLES = 8000  # training images a search trial sees at most
FINALISTS = 2  # candidates trained to the end: the most accurate, and the best that fits as is
# Seconds of a finalist's run spent outside its epochs (data, export, verification), kept out
# of the epochs its share of the budget buys until a finalist has measured them.
FINISH_SECONDS = 20.0
# Seconds kept for compressing a finalist whose file fits as it is (its quantization and the
# verification of one file), until a finalist has measured them.
COMPRESS_SECONDS = 60.0


@dataclasses.dataclass
class AutoOptions:
    """`trainer auto`'s options."""

    data: str = ""  # image or text source: folder, .npz, .csv, IDX folder, tfds:NAME
    max_kib: float = limit(0.0)  # largest .tflite file in KiB; 0 = no limit
    # largest median batch-1 LiteRT latency in ms, one thread (the verification table's); 0 = none
    max_ms: float = limit(0.0)
    # lowest test accuracy (0-1) the winner must reach; 0 = none (a miss is reported, not hidden)
    min_accuracy: float = limit(0.0)
    time_budget: float = limit(900.0)  # seconds for the whole pipeline (each stage gets a share)
    run_dir: str = ""  # output folder; default runs/auto-<timestamp>
    workers: int = limit(0)  # run the search's trials in N worker processes, as `trainer tune`
    resume: str = ""  # an auto folder to continue after a kill (its options are reused)
    seed: int = limit(0)  # seeds the search, the splits and the weights
    progress_every: float = limit(30.0)  # seconds between progress lines; 0 = at stage ends only


def check_auto_options(options: AutoOptions) -> None:
    """Fails before any data loads on options that cannot run.

    Raises:
        ConfigError: no --data (and no --resume), or a min_accuracy outside [0, 1), or a time
            budget of 0 (auto needs one to share between its stages).
    """
    validate(options)
    if not options.data and not options.resume:
        raise ConfigError(
            "no data source given: pass --data=PATH (an image or text folder, .csv, .npz, IDX "
            "folder or tfds:NAME), or --resume=AUTO_DIR to continue a run"
        )
    if not 0.0 <= options.min_accuracy < 1.0:
        raise ConfigError(
            f"min_accuracy is a fraction in [0, 1), received {options.min_accuracy}; write 0.9 "
            "for 90%"
        )
    if options.time_budget <= 0:
        raise ConfigError(
            f"time_budget must be > 0 seconds, received {options.time_budget}: auto shares it "
            "between the search, the training of the finalists and their compression"
        )
