"""Atomic file writes: a reader (or a resumed run) never sees a half-written file.

Each writer writes a temporary file in the same directory, flushes it to disk, renames it over
the target (which POSIX makes atomic) and then flushes the directory, so the rename itself
survives a power cut. Files get the permissions any new file gets (0666 minus the umask), not
the owner-only 0600 of `tempfile.mkstemp`. This module must not know what the files contain.
"""

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _normal_mode() -> int:
    # The umask can only be read by setting it; set it straight back.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(path: str | Path) -> None:
    """Flushes a directory's entries (new names, renames) to disk; a no-op where unsupported."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(handle)


def _temporary_name(path: Path) -> Path:
    # Keeps the suffix: Keras and other writers pick the format from it.
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def atomic_save(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Calls `write(temporary_path)` and renames the result over `path`, atomically.

    For writers that take a file name, such as `model.save`. The temporary file sits beside
    `path` with the same suffix and is removed if `write` fails.

    Example:

        >>> from pathlib import Path
        >>> from trainer.files import atomic_save
        >>> path = atomic_save("run/notes.txt", lambda temporary: temporary.write_text("done"))
        >>> path.read_text(), [file.name for file in Path("run").iterdir()]  # no temporary left
        ('done', ['notes.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary.exists():
            temporary.unlink()
        _raise_with_path(error, path)
        raise
    fsync_directory(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` atomically and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _normal_mode())
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary.exists():
            temporary.unlink()
        _raise_with_path(error, path)
        raise
    fsync_directory(path.parent)
    return path


def _raise_with_path(error: BaseException, path: Path) -> None:
    """Re-raises an OS error that names no file (a write failing with "File too large" or
    "No space left on device") as the same error naming `path`, so the message says which
    file could not be written; returns for any other error."""
    if isinstance(error, OSError) and error.errno is not None and error.filename is None:
        raise type(error)(error.errno, error.strerror or os.strerror(error.errno), str(path))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Writes UTF-8 `text` to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Writes `data` as indented JSON to `path` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
