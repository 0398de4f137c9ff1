"""The error boundary of every `trainer` command: one paragraph and an exit code, no traceback.

Bad options exit 2; a bad path, file, disk or data exits 1 with the path and what to do;
Ctrl-C says how to resume the run or tuning folder, if one was made. `TRAINER_DEBUG=1`
re-raises so the traceback shows. Errors this module does not know (bugs) are re-raised
untouched. It must not know any command's options.
"""

import errno
import os
import sys
import zipfile

from trainer.config import ConfigError

DEBUG_HINT = "(set TRAINER_DEBUG=1 for the traceback)"


def _one_paragraph(text: str) -> str:
    return " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())


def _resume_hint() -> str:
    """How to continue the run this command was training, if it got as far as training."""
    from trainer.runs import HISTORY_FILE, METRICS_FILE, last_created_run_dir

    run_dir = last_created_run_dir()
    if run_dir is None or not (run_dir / HISTORY_FILE).exists():
        return ""
    if (run_dir / METRICS_FILE).exists():
        return ""
    return f" The run folder {run_dir} is kept: continue with `trainer train --resume={run_dir}`."


def _os_error_text(error: OSError) -> str:
    path = error.filename if error.filename is not None else ""
    where = f" {path}" if path else ""
    if error.errno is None or not error.strerror:
        # Our own messages (FileNotFoundError("... does not exist")) and h5py's "Unable to open
        # file (truncated file ...)" carry their text in args, without an errno.
        text = _one_paragraph(error)
        if isinstance(error, FileNotFoundError | FileExistsError | NotADirectoryError):
            return text
        if isinstance(error, PermissionError):
            return text
        return f"{text}; the file may be truncated or not in the expected format: make it again"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"cannot write{where}: {error.strerror}; choose a folder on a writable disk "
            "(for a run, --run_dir=...)"
        )
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"the disk is full (writing{where}); free some space or choose a --run_dir on "
            "another disk."
        )
    if error.errno == errno.EFBIG:
        if not path:  # written by a library (a log, a checkpoint): name the run's folder
            from trainer.runs import last_created_run_dir

            run_dir = last_created_run_dir()
            where = f" a file in {run_dir}" if run_dir is not None else " a file"
        return (
            f"cannot write{where}: the file would be larger than this system allows (a file "
            "size limit such as `ulimit -f`, or the file system's largest file); raise the "
            "limit or write to another disk"
        )
    if error.errno == errno.ENOTDIR:
        return f"{path}: a part of this path is a file, not a folder; choose another path"
    if error.errno == errno.EEXIST:
        return f"{path} already exists (as a file); choose another path"
    if error.errno == errno.ENOENT:
        return f"{path} does not exist; check the path"
    if error.errno == errno.EISDIR:
        return f"{path} is a folder where a file was expected; pass the file inside it"
    return f"{error.strerror}:{where}"


def describe(error: BaseException) -> tuple[str, int] | None:
    """The one-paragraph message and exit code for `error`, or None for an unexpected error."""
    if isinstance(error, KeyboardInterrupt):
        # A command that knows what it leaves behind raises KeyboardInterrupt(its hint).
        hint = f" {_one_paragraph(error)}" if str(error) else _resume_hint()
        return "interrupted." + (hint or " Nothing was trained yet."), 130
    if isinstance(error, ConfigError):
        return _one_paragraph(error), 2
    if isinstance(error, SyntaxError):
        return (
            f"{error.filename} has a syntax error at line {error.lineno}: {error.msg}; fix "
            "it and run again"
        ), 2
    tensorflow = sys.modules.get("tensorflow")
    errors = getattr(tensorflow, "errors", None)
    if errors is not None and isinstance(error, errors.ResourceExhaustedError):
        message = _one_paragraph(getattr(error, "message", error))[:400]
        return (
            f"out of memory or disk space: {message}. Free memory (lower --batch_size) or disk "
            "space."
        ), 1
    if errors is not None and isinstance(error, errors.OpError):
        message = _one_paragraph(getattr(error, "message", error))[:400]
        return (
            f"TensorFlow could not read or write a file: {message}. Check that the path "
            "exists, is complete and is readable."
        ), 1
    if isinstance(error, UnicodeError):
        return (
            f"text that is not valid UTF-8: {_one_paragraph(error)}; save the file as UTF-8, "
            "or rename the file whose name is not UTF-8"
        ), 1
    if isinstance(error, OSError):
        return _os_error_text(error), 1
    if isinstance(error, EOFError | zipfile.BadZipFile):
        return (
            f"a file ended early or is damaged ({_one_paragraph(error)}); it may be "
            "truncated: make or copy it again"
        ), 1
    if isinstance(error, ValueError | TypeError):
        return _one_paragraph(error), 1
    return None


def report_error(error: BaseException, program: str) -> int:
    """Prints `error` as `PROGRAM: error: ...` on stderr and returns the exit code.

    Re-raises when `TRAINER_DEBUG` is set or the error is not one a user can fix.
    """
    described = describe(error)
    if described is None or os.environ.get("TRAINER_DEBUG"):
        raise error
    text, code = described
    if code == 1:
        text = f"{text}{_resume_hint()} {DEBUG_HINT}"
    print(f"{program}: error: {text}", file=sys.stderr, flush=True)
    return code
