"""Worker processes on this machine: start them, watch them exit, stop them.

Two supervisors use it: `trainer train --local_workers=N` (`trainer.distribute`, a cluster of
N training processes restarted from the last backup when one dies) and `trainer tune
--workers=N` (`trainer.tuning.workers`, a chief oracle with N trial processes, each replaced
when it has run its trials). What a process runs and what its exit means belong to them; this
module owns only the mechanics: a free loopback port, starting a process with its output in
a log file, a loop that reports each exit, and a stop that never leaves a process behind. It
must not know about training, tuning or the command line.

Example:

    import os
    import sys

    from trainer.processes import describe_exit, exits, start, stop

    running = {index: start([sys.executable, "-c", "print(1)"], dict(os.environ))
               for index in range(2)}
    try:
        for index, code in exits(running):
            print(f"process {index} exited with {describe_exit(code)}")
    finally:
        stop(running.values())
"""

import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

Key = TypeVar("Key")

# How often the exit loop looks at the processes: a supervisor reacts within this time.
POLL_SECONDS = 0.2


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(
    command: list[str], environment: dict[str, str], log: Path | None = None
) -> subprocess.Popen:
    """Starts `command` with `environment`; its output goes to this terminal, or to the file
    `log` (stdout and stderr, truncated first) when one is given."""
    if log is None:
        return subprocess.Popen(command, env=environment)
    with open(log, "w") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=environment, stdout=output, stderr=output)


def exits(running: dict[Key, subprocess.Popen]) -> Iterator[tuple[Key, int]]:
    """Yields `(key, exit code)` for each process of `running` as it exits, removing it from
    `running`, until `running` is empty. A process the caller adds to `running` meanwhile (a
    replacement) is watched as well; a caller that stops early leaves the rest running."""
    while running:
        exited = [(key, process.poll()) for key, process in running.items()]
        exited = [(key, code) for key, code in exited if code is not None]
        if not exited:
            time.sleep(POLL_SECONDS)
            continue
        for key, code in exited:
            del running[key]
            yield key, code


def stop(processes: Iterable[subprocess.Popen], grace: float = 10.0) -> None:
    """Terminates every process still running, waits up to `grace` seconds for all of them,
    then kills those left, so that no process outlives its supervisor."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def describe_exit(code: int) -> str:
    """An exit code for people: "exit code 2", or "signal SIGKILL" for a negative code."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def log_tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a worker's log file, indented for a message."""
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:])
