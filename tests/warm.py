"""Runs `trainer` commands and Python scripts in fresh processes that skip TensorFlow's start-up.

Every `trainer ...` a test runs as a user would type it used to start a new interpreter and
import TensorFlow, trainer, LiteRT, MediaPipe, TF-MOT and keras-tuner: about 7 s of CPU each
time, most of the documentation tests' cost. `Warm` starts one server process per test
session that imports them once, without running any TensorFlow op, and forks it for each
command. The child is a new process like the one the console script would start: its own
working folder, environment, argv, stdin from /dev/null, stdout and stderr in files (file
descriptors 1 and 2, so TensorFlow's C++ log lines land there too), and its exit code is what
`trainer`'s entry point would return.

What a fork cannot reproduce is the import itself: environment variables read at import time
(`TF_CPP_MIN_LOG_LEVEL`, `TRAINER_DEBUG`, `TF_USE_LEGACY_KERAS`) take the server's values, so
`Warm.run` refuses a request whose environment differs there, and scripts that choose their
Keras before trainer's import (`import keras` first) must run in a real new interpreter
(`runs_warm` says which scripts may). `tests/test_warm.py` checks the two ways agree.

Usage (see `warm_trainer` in conftest.py):

    result = warm.run(["trainer", "train", "digits", "--epochs=1"], cwd=folder, env=env)
    result.returncode, result.stdout, result.stderr

`Warm.run` waits for its fork. `Warm.start` returns at once with a `Forked`, the part of
`subprocess.Popen` that `trainer.processes` uses, for processes that run beside the test or
each other: a test puts it in place of a supervisor's `start` (`trainer tune --workers`,
`trainer train --local_workers`), whose workers then are forks with the command line each
would have run, or starts a command it kills midway:

    monkeypatch.setattr(trainer.processes, "start", warm.start)
    process = warm.start([sys.executable, "-m", "trainer.cli", "train", ...], env, log)
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Read when these modules are imported: a request must agree with the server on them.
IMPORT_TIME_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TRAINER_DEBUG", "TF_USE_LEGACY_KERAS")
# Imported once by the server, so that no command pays for them.
PRELOAD = (
    "trainer.cli.main",
    "trainer.cli.train",
    "trainer.cli.export",
    "trainer.cli.compress",
    "trainer.cli.predict",
    "trainer.cli.data",
    "trainer.cli.tune",
    "trainer.cli.lr_find",
    "trainer.experiment",
    "trainer.export.verify",
    "trainer.export.runtimes",
    "trainer.compress.search",
    "trainer.tuning.keras_tuner_import",
    "trainer.plots",
    "matplotlib.pyplot",
    "sklearn.linear_model",
    "mediapipe.tasks.python.text",
    "mediapipe.tasks.python.vision",
    "trainer.compression.prune",  # TF-MOT, imported the way trainer imports it
    "trainer.compression.quantize",
    "trainer.tuning.hypermodel",  # keras-tuner, through trainer.tuning's import of it
    "trainer.tuning.tuners",
)
# A script may run warm when its Keras is trainer's: before its first import of trainer or a
# recipe it imports only modules that load no TensorFlow (`import keras`, `from tensorflow
# import keras` or TF-MOT first must start cold). A script that imports none of trainer,
# recipes, keras, tensorflow or tf_keras uses no Keras: it may run warm when its other imports
# are such modules or MediaPipe Tasks (which load TensorFlow but run .tflite files).
_TRAINER = {"trainer", "recipes"}
_KERAS = {"keras", "tensorflow", "tf_keras"}
_NO_TENSORFLOW = set(sys.stdlib_module_names) | {
    "numpy",
    "PIL",
    "sklearn",
    "scipy",
    "pandas",
    "matplotlib",
    "yaml",
}
_TFLITE_RUNTIMES = {"mediapipe", "ai_edge_litert"}
# The preload of a server whose forks are processes that ran `import tensorflow` first (see
# `runs_after_tensorflow`).
TENSORFLOW_ONLY = ("tensorflow",)


def _imports(script: str) -> list[str]:
    """The top-level module of every import statement of `script`, in the order of the text."""
    import ast

    found = []
    for node in ast.walk(ast.parse(script)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, node.col_offset, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.col_offset, node.module))
    return [name.split(".")[0] for _, _, name in sorted(found)]


def runs_warm(script: str) -> bool:
    """True when `script` computes the same in a fork of the server as in a new interpreter:
    it imports trainer (or a recipe) before any Keras or TensorFlow, or uses no Keras."""
    try:
        names = _imports(script)
    except SyntaxError:
        return False  # a new interpreter reports it as the user would see it
    chooser = next((name for name in names if name in _TRAINER | _KERAS), None)
    if chooser is None:
        return all(name in _NO_TENSORFLOW | _TFLITE_RUNTIMES for name in names)
    before = names[: names.index(chooser)]
    return chooser in _TRAINER and all(name in _NO_TENSORFLOW for name in before)


def runs_after_tensorflow(script: str) -> bool:
    """True when `script` chooses its Keras itself (its first import of keras, tensorflow,
    tf_keras, trainer or a recipe is `keras` or `tensorflow`, after modules that load no
    TensorFlow): a fork of a server that imported TensorFlow alone (TENSORFLOW_ONLY) is then
    the process it would make, since importing TensorFlow chooses no Keras; trainer, imported
    by the script in the fork, sees the script's choice as in a new interpreter."""
    try:
        names = _imports(script)
    except SyntaxError:
        return False
    chooser = next((name for name in names if name in _TRAINER | _KERAS), None)
    if chooser not in ("keras", "tensorflow"):
        return False
    return all(name in _NO_TENSORFLOW for name in names[: names.index(chooser)])


class Result:
    """What `subprocess.run(..., capture_output=True, text=True)` would have returned."""

    def __init__(
        self, args: list[str], returncode: int, stdout: str, stderr: str, cpu: float = 0.0
    ):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr
        self.cpu = cpu  # the command's CPU seconds (user + sys of the fork and its children)


class Warm:
    """One server per session; `run` forks it for each command (one command at a time)."""

    def __init__(self, env: dict[str, str], preload: tuple[str, ...] = PRELOAD):
        """Starts the server with `env`, importing the modules of `preload` in order."""
        self.env = dict(env)
        self.scratch = Path(tempfile.mkdtemp(prefix="warm-"))
        self.started = 0  # forks of `start` so far (each gets its own status file)
        self.server = subprocess.Popen(
            [sys.executable, __file__, "--serve", *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.scratch / "server.log", "w"),  # noqa: SIM115 (the server's life)
            env=self.env,
            text=True,
        )
        self._reply()  # "ready" once the imports are done

    def _reply(self) -> dict:
        line = self.server.stdout.readline()
        if not line:
            log = (self.scratch / "server.log").read_text(errors="replace")
            raise RuntimeError(f"the warm server stopped:\n{log[-3000:]}")
        return json.loads(line)

    def run(
        self, args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
    ) -> Result:
        """Runs `trainer ARGS` (args[0] == "trainer") or `python SCRIPT ARGS` (args[0] ==
        "python") in a fork, in `cwd`, with `env` (default: the server's)."""
        env = dict(self.env if env is None else env)
        for name in IMPORT_TIME_VARIABLES:
            if env.get(name) != self.env.get(name):
                raise ValueError(f"{name} differs from the warm server's; run it cold")
        out, err = self.scratch / "stdout", self.scratch / "stderr"
        request = {"args": args, "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        reply = self._reply()
        return Result(
            args,
            reply["returncode"],
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            reply.get("cpu", 0.0),
        )

    def start(
        self, command: list[str], environment: dict[str, str], log: Path | None = None
    ) -> "Forked":
        """Starts `command`, a new interpreter's command line (`[sys.executable, "-m",
        "trainer.cli", ...]`, `[sys.executable, "-c", CODE, ...]` or `[sys.executable, SCRIPT,
        ...]`), in a fork that runs beside the tests, and returns at once: what
        `trainer.processes.start(command, environment, log)` does with a new interpreter, for a
        test that replaces it (a supervisor's workers). Output goes to `log` (stdout and
        stderr), else to a file of the server's scratch folder. The variables read at import
        take the server's values (`IMPORT_TIME_VARIABLES`), as the command would import
        nothing anew."""
        if command[1:2] == ["-m"] and command[2] == "trainer.cli":
            args = ["trainer", *command[3:]]
        else:
            args = ["python", *command[1:]]
        env = {k: v for k, v in environment.items() if k not in IMPORT_TIME_VARIABLES}
        env.update({k: v for k, v in self.env.items() if k in IMPORT_TIME_VARIABLES})
        self.started += 1
        output = str(log or self.scratch / f"started{self.started}.log")
        status = self.scratch / f"started{self.started}.status"
        request = {"args": args, "cwd": os.getcwd(), "env": env, "out": output, "err": output}
        request["status"] = str(status)  # written by the server when the fork has exited
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        return Forked(command, self._reply()["pid"], status, Path(output))

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(60)


class Forked:
    """A command `Warm.start` runs in a fork: what `trainer.processes` uses of
    `subprocess.Popen` (pid, returncode, poll, wait, send_signal, terminate, kill), and the
    file its output went to (`output`). The fork is the server's child, so its exit status
    comes from the file the server writes once it has reaped it."""

    def __init__(self, args: list[str], pid: int, status: Path, output: Path):
        self.args, self.pid, self.status, self.returncode = args, pid, status, None
        self.output = output

    def poll(self) -> int | None:
        if self.returncode is None and self.status.is_file():
            self.returncode = int(self.status.read_text())
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, signal_number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal_number)

    def terminate(self) -> None:
        import signal

        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)


def _child(request: dict) -> int:
    """Runs in the fork: becomes the process the command would have started."""
    import signal
    import tempfile

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # A new interpreter puts PYTHONPATH's folders right after the script's own (sys.path[0]).
    folders = [
        folder for folder in request["env"].get("PYTHONPATH", "").split(os.pathsep) if folder
    ]
    sys.path[1:1] = [folder for folder in folders if folder not in sys.path]
    tempfile.tempdir = None  # read TMPDIR again, as a new interpreter would
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if pytest ignores it
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server's reaper is not the command's
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    if request["err"] == request["out"]:  # one log: both streams share the file's offset
        os.dup2(1, 2)
    else:
        os.dup2(os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
    args = request["args"]
    try:
        if args[0] == "trainer":
            from trainer.cli import main

            sys.argv = [str(Path(sys.executable).parent / "trainer"), *args[1:]]
            code = main(args[1:])
        elif args[1] == "-c":  # python -c CODE ARGS
            sys.argv = ["-c", *args[3:]]
            sys.path[0] = ""
            exec(compile(args[2], "<string>", "exec"), {"__name__": "__main__"})
            code = 0
        else:  # python SCRIPT ARGS, as `python` would run it
            import runpy

            script = str(Path(args[1]).resolve())
            sys.argv = args[1:]
            sys.path[0] = str(Path(script).parent)
            runpy.run_path(script, run_name="__main__")
            code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if not isinstance(stop.code, int | None):
            print(stop.code, file=sys.stderr)
    except BaseException:  # as the interpreter would: a traceback and exit 1
        import traceback

        traceback.print_exc()
        code = 1
    return code


def _reap(started: dict[int, str]) -> None:
    """Reaps the forks of `Warm.start` that have exited (leaving `run`'s own fork to `run`)
    and writes each one's exit code to its status file."""
    for pid in list(started):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped meanwhile by the handler this call interrupted
            continue
        path = started.pop(pid, None) if done else None
        if path is not None:
            with open(path + ".tmp", "w") as file:
                file.write(str(os.waitstatus_to_exitcode(status)))
            os.replace(path + ".tmp", path)  # whole, or not there yet


def _serve(preload: tuple[str, ...]) -> None:
    import gc
    import importlib
    import signal

    for name in preload:
        importlib.import_module(name)
    # What the imports made stays: frozen, the forks' garbage collections (keras-tuner runs one
    # before every trial, about 0.2 s over all of it) skip it, and forks keep sharing its pages.
    gc.freeze()
    started: dict[int, str] = {}  # forks of `Warm.start` still running: pid -> status file
    signal.signal(signal.SIGCHLD, lambda *_: _reap(started))
    reply = sys.stdout
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request)
            finally:
                try:
                    import atexit

                    atexit._run_exitfuncs()  # what the interpreter's exit would run
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code if 0 <= code < 256 else 1)
        if "status" in request:  # Warm.start: the fork runs on; SIGCHLD reaps it
            started[pid] = request["status"]
            _reap(started)  # it may have exited before it was listed
            print(json.dumps({"pid": pid}), file=reply, flush=True)
            continue
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
        print(json.dumps({"returncode": code, "cpu": cpu}), file=reply, flush=True)

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in started:  # a test that failed left them running
        os.kill(pid, signal.SIGKILL)
    for pid in started:
        os.waitpid(pid, 0)  # their CPU time counts as the server's children's


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    sys.path[0] = str(Path(sys.executable).parent)  # as for the `trainer` console script
    _serve(tuple(sys.argv[2:]) or PRELOAD)
