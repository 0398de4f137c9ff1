"""A search in worker processes on this machine: keras-tuner's distributed mode, with this
process as the chief.

The chief serves keras-tuner's oracle from a thread and `--workers=N` processes run the
trials, each asking the chief for its next one, so no trial runs twice; a worker that has run
its `--trials_per_process` exits with `RECYCLE_EXIT_CODE` and is replaced under the same id.
keras-tuner reads each process's role and the oracle's address from environment variables
(`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`), which this module
sets. Starting, watching and stopping the processes is `trainer.processes`; building the
chief's tuner is the caller's (`trainer.tuning.search`), so this module imports no keras-tuner.
"""

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from trainer import processes
from trainer.tuning.options import TuneOptions
from trainer.tuning.report import raise_interrupted, write_results
from trainer.tuning.results import SearchResult

# Exit code of a worker process that ran its `trials_per_process`: the chief starts another.
RECYCLE_EXIT_CODE = 3
# Set by the chief for its workers: the search's deadline (time.time()), so that a restarted
# worker does not start the budget again.
DEADLINE_VARIABLE = "TRAINER_TUNE_DEADLINE"
# What each worker process runs: the search of the tuning folder, as a client of the chief.
WORKER_CODE = (
    "import sys, trainer.keras_path as path, trainer.tuning as tuning; "
    "path.import_tensorflow_quietly(); "
    f"sys.exit({RECYCLE_EXIT_CODE} if tuning.resume(sys.argv[1]).recycled else 0)"
)


def is_worker() -> bool:
    """True in a process that runs trials for a chief (keras-tuner's environment says so)."""
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and (
        os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"
    )


def search_with_workers(
    make_chief: Callable[[], Any],
    recipe: ModuleType,
    base_config: Any,
    directory: Path,
    options: TuneOptions,
) -> SearchResult:
    """keras-tuner's distributed mode on this machine: the oracle serves from a thread of this
    process (the chief) and `options.workers` processes run the trials, each asking the chief
    for its next trial, so no trial runs twice. A worker that has run `trials_per_process`
    trials exits and the chief starts a fresh one under the same id, which frees the memory
    TensorFlow keeps per model. Returns when every worker has finished. `make_chief()` builds
    the chief's tuner; it is called once this process's environment names it the chief.

    On several machines, run the same search on each with the environment variables set by
    hand: KERASTUNER_TUNER_ID=chief on one (it only serves the oracle) and worker0, worker1, ...
    on the others, all with KERASTUNER_ORACLE_IP=<the chief's address> and
    KERASTUNER_ORACLE_PORT=<a free port>, and a shared --tune_dir (see README).
    """
    address = {
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(processes.free_port()),
    }
    with _chief_environment(address):
        chief = make_chief()
        # keras-tuner's chief blocks serving until every worker has asked for a trial and
        # been told to stop; a thread lets this process collect the results however the
        # workers end (done, budget spent, crashed).
        threading.Thread(target=chief.search, kwargs={"verbose": 0}, daemon=True).start()
        try:
            failed = _run_workers(address, directory, options)
        except KeyboardInterrupt as interrupt:
            raise_interrupted(chief.oracle, recipe, base_config, directory, options, interrupt)
    if failed:
        print(
            f"warning: worker(s) {', '.join(map(str, failed))} exited with an error; the "
            "results below hold the trials that finished",
            flush=True,
        )
    return write_results(chief.oracle, recipe, base_config, directory, options)


@contextlib.contextmanager
def _chief_environment(address: dict[str, str]) -> Iterator[None]:
    """Names this process keras-tuner's chief at `address` while the block runs, then puts
    the environment back as it was."""
    previous = {name: os.environ.get(name) for name in [*address, "KERASTUNER_TUNER_ID"]}
    os.environ.update(address, KERASTUNER_TUNER_ID="chief")
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_workers(address: dict[str, str], directory: Path, options: TuneOptions) -> list[int]:
    """Starts the worker processes and waits until every one has finished, starting a fresh
    process for each worker that exits after its `trials_per_process` trials. Returns the
    workers that exited with an error. Ctrl-C or any error stops the workers started here."""
    from trainer.keras_path import child_environment

    count = max(options.workers, 1)
    environment = {**child_environment(), **address}
    if options.time_budget:
        environment[DEADLINE_VARIABLE] = str(time.time() + options.time_budget)

    def start(index: int):
        command = [sys.executable, "-c", WORKER_CODE, str(directory)]
        return processes.start(command, {**environment, "KERASTUNER_TUNER_ID": f"worker{index}"})

    running = {index: start(index) for index in range(count)}
    port = address["KERASTUNER_ORACLE_PORT"]
    print(f"chief oracle on port {port}, {count} worker processes", flush=True)
    failed = []
    try:
        for index, code in processes.exits(running):
            if code == RECYCLE_EXIT_CODE:
                running[index] = start(index)
            elif code != 0:
                failed.append(index)
    finally:
        # Interrupted or failed: stop the workers this search started, none outliving it.
        processes.stop(running.values(), grace=5.0)
    return failed
