"""Where commands write: the one guard every command that writes calls before any work.

A command's output (a run folder, a report folder, an export or compression folder, a tuning
folder, a PNG file) is checked against four rules, each refused with one paragraph that names
the option, the path, what would happen and what to do:

1. never inside a data source of the command (`--data`, `--data_dir`, `--tfds_dir`, the
   SOURCE of `trainer data`, the data a run recorded), where it would change the user's data
   and be read back as samples or as a class;
2. never over a run's folder (run.json, or config.yaml with metrics.json) or a tuning folder
   (tune.yaml) unless the command is the one that continues it;
3. never over files trainer did not make: an existing folder must be empty or the command's
   own earlier output (a run's run.json, a search's tune.yaml, or nothing but the names the
   command writes, such as data_report.json and data_report.md); an existing PNG is replaced
   only if trainer (Matplotlib) wrote it;
4. never over a device, FIFO, socket or symbolic link, and never through a path whose folder
   is a file.

The same module recognizes the folders trainer makes (`trainer_folder`), so that the data
readers skip them instead of reading them as classes. It reads the file system and raises;
it must not write, and knows no command's options beyond the names it is given.

Example:

    >>> from pathlib import Path
    >>> from trainer.outputs import OutputError, check_output_folder
    >>> Path("photos/cat").mkdir(parents=True)
    >>> try:
    ...     check_output_folder("photos/cat/report", "--out", [("--data", "photos")], ("*.md",))
    ... except OutputError as error:
    ...     print(str(error).split(":")[0])
    --out=photos/cat/report is inside the data source --data=photos
    >>> check_output_folder("report", "--out", [("--data", "photos")], ("*.md",))
    PosixPath('report')
"""

import fnmatch
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

# Names of the files that mark what trainer made (`trainer.runs` and `trainer.tuning` use them).
RUN_INFO_FILE = "run.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
TUNE_FILE = "tune.yaml"
AUTO_FILE = "auto.yaml"  # trainer.auto's options file
DATA_REPORT_FILES = ("data_report.json", "data_report.md")
# Config fields that name a data source; no output may lie inside one.
DATA_FIELDS = ("data", "data_dir", "tfds_dir")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class OutputError(ValueError):
    """An output path a command must not write to (inside the data, over a run, over files
    trainer did not make, over a device); the message says which and what to do."""


def is_run_folder(path: str | Path) -> bool:
    """True for a folder made by `trainer train`: run.json, or config.yaml with metrics.json."""
    path = Path(path)
    return (path / RUN_INFO_FILE).is_file() or (
        (path / CONFIG_FILE).is_file() and (path / METRICS_FILE).is_file()
    )


def is_tuning_folder(path: str | Path) -> bool:
    """True for a folder made by `trainer tune` (tune.yaml) or `trainer auto` (auto.yaml)."""
    return any((Path(path) / name).is_file() for name in (TUNE_FILE, AUTO_FILE))


def trainer_folder(path: str | Path) -> str:
    """What trainer made `path` for, in words ("a run folder (run.json)"), or "" when it is
    not a folder trainer writes. The data readers skip such folders with this reason.

    Example:

        >>> from pathlib import Path
        >>> from trainer.outputs import trainer_folder
        >>> Path("runs/digits-1").mkdir(parents=True)
        >>> _ = Path("runs/digits-1/run.json").write_text("{}")
        >>> trainer_folder("runs/digits-1"), trainer_folder("runs"), trainer_folder("photos")
        ('a run folder made by trainer (run.json)', 'a folder of trainer runs (runs/digits-1)', '')
    """
    path = Path(path)
    if not path.is_dir():
        return ""
    if (path / RUN_INFO_FILE).is_file():
        return f"a run folder made by trainer ({RUN_INFO_FILE})"
    if is_run_folder(path):
        return f"a run folder made by trainer ({CONFIG_FILE} and {METRICS_FILE})"
    if (path / TUNE_FILE).is_file():
        return f"a tuning folder made by trainer tune ({TUNE_FILE})"
    if (path / AUTO_FILE).is_file():
        return f"a search folder made by trainer auto ({AUTO_FILE})"
    if (path / METRICS_FILE).is_file() and (path / REPORT_FILE).is_file():
        return f"a folder of trainer results ({REPORT_FILE} and {METRICS_FILE})"
    if all((path / name).is_file() for name in DATA_REPORT_FILES):
        return f"a data check report folder ({' and '.join(DATA_REPORT_FILES)})"
    if path.name == "runs":
        try:
            children = sorted(child for child in path.iterdir() if child.is_dir())
        except OSError:
            return ""
        made = [child for child in children if is_run_folder(child) or is_tuning_folder(child)]
        if made:
            return f"a folder of trainer runs ({made[0].parent.name}/{made[0].name})"
    return ""


def data_sources(config: Any = None, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """The (option, path) pairs that name data for a command: the `data`, `data_dir` and
    `tfds_dir` fields of `config` (a dataclass or a dict, e.g. a run's config.yaml) and the
    `extra` pairs, such as ("SOURCE", "photos"). `tfds:` names and empty values are left out.

    Example:

        >>> from trainer.outputs import data_sources
        >>> data_sources({"data": "photos", "tfds_dir": ""}, ("--data", "tfds:mnist"))
        [('--data', 'photos')]
    """
    pairs = []
    for name in DATA_FIELDS:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        pairs.append((f"--{name}", str(value or "")))
    pairs += [(option, str(value or "")) for option, value in extra]
    return [(option, value) for option, value in pairs if value and not value.startswith("tfds:")]


def run_data_sources(run_dir: str | Path) -> list[tuple[str, str]]:
    """The data sources a run recorded in its config.yaml (`data_sources` of it); none when
    the file is missing or unreadable (the command that needs it reports that itself)."""
    import yaml

    try:
        saved = yaml.safe_load((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError):
        return []
    return data_sources(saved if isinstance(saved, dict) else {})


def _resolved(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def describe_kind(path: str | Path) -> str:
    """What `path` is, for messages: "a file", "a folder", "a character device", "a FIFO",
    "a socket", "a block device", "a symbolic link" (not followed)."""
    mode = os.lstat(path).st_mode
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISREG, "a file"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def check_outside_data(path: str | Path, option: str, sources: Iterable[tuple[str, str]]) -> None:
    """Refuses an output at or inside a data source folder (symbolic links resolved).

    Raises:
        OutputError: naming the option, the source and what to do.
    """
    resolved = _resolved(path)
    for source_option, source in sources:
        if source.startswith("tfds:") or not Path(source).expanduser().is_dir():
            continue
        if _is_inside(resolved, _resolved(source)):
            named = f"{source_option}={source}" if source_option.startswith("--") else source
            raise OutputError(
                f"{option}={path} is inside the data source {named}: trainer never writes into "
                "your data (a folder there would even be read back as a class, a file as a "
                f"sample); choose a {option} outside it"
            )


def _existing_ancestor(path: Path) -> Path:
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    return existing


def check_folder_path(path: str | Path, option: str) -> None:
    """Refuses a folder path that exists as something else (a file, a device, a FIFO) or
    lies under such a path, and one whose nearest existing folder is not writable.

    Raises:
        NotADirectoryError: the path, or a folder above it, is not a folder.
        PermissionError: the nearest existing folder is not writable.
    """
    path = Path(path)
    existing = _existing_ancestor(path)
    if os.path.lexists(existing) and not existing.is_dir():
        raise NotADirectoryError(
            f"{option}={path}: {existing} is {describe_kind(existing)}, not a folder; trainer "
            f"never writes over it: choose another {option}"
        )
    if existing.exists() and not os.access(existing, os.W_OK):
        raise PermissionError(
            f"{option}={path}: {existing} is not writable (read-only disk or no permission); "
            f"choose a {option} on a writable disk"
        )


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _listed(paths: list[Path], most: int = 5) -> str:
    names = [path.name for path in paths[:most]]
    return ", ".join(names) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def check_foreign_files(
    path: str | Path, option: str, writes: Iterable[str], marker: str | None = None
) -> None:
    """Refuses a folder that holds files trainer did not make.

    `writes` are the names (glob patterns) the command writes into the folder. A folder the
    command made before is accepted: with a `marker` (run.json for a run, tune.yaml for a
    search) the folder that holds it, without one a folder that holds nothing but such names
    (its earlier output, written again). Any other folder must be empty. Names the command
    would write must be plain files or folders, never devices, FIFOs or links. Hidden entries
    (".name") are not counted.

    Raises:
        OutputError: naming the files found and what to do.
    """
    path, writes = Path(path), tuple(writes)
    if not path.is_dir():
        return
    entries = sorted(entry for entry in path.iterdir() if not entry.name.startswith("."))
    colliding = [entry for entry in entries if _matches(entry.name, writes)]
    special = [
        entry
        for entry in colliding
        if entry.is_symlink() or not (entry.is_file() or entry.is_dir())
    ]
    if special:
        raise OutputError(
            f"{option}={path}: {special[0]} is {describe_kind(special[0])}, not a regular file, "
            f"and trainer never writes over one (it would be replaced); choose another {option}"
        )
    if marker is not None and (path / marker).exists():
        return
    foreign = [entry for entry in entries if not _matches(entry.name, writes)]
    if foreign or (marker is not None and colliding):
        raise OutputError(
            f"{option}={path} holds files trainer did not make ({_listed(colliding + foreign)})"
            ", which it would overwrite or mix its own files with; choose a new or empty "
            f"{option}, or move those files out"
        )


def check_output_folder(
    path: str | Path,
    option: str,
    sources: Iterable[tuple[str, str]],
    writes: Iterable[str],
    marker: str | None = None,
) -> Path:
    """All the rules for an output folder of a command other than `trainer train`: outside
    the data, not a run's or a tuning folder (unless `marker` is tune.yaml, the search's own),
    a folder (or nothing yet) on a writable disk, no files trainer did not make where it writes.
    Returns `path`.

    Raises:
        OutputError, NotADirectoryError, PermissionError: see the module docstring.
    """
    path = Path(path)
    check_outside_data(path, option, sources)
    check_folder_path(path, option)
    if path.is_dir():
        made = trainer_folder(path)
        own = marker is not None and (path / marker).is_file()
        if made and not own and (is_run_folder(path) or is_tuning_folder(path)):
            inside = f" (a new folder inside it, such as {path / 'out'}, is fine)"
            raise OutputError(
                f"{option}={path} is {made}, and trainer never writes over a run or a search: "
                f"its {REPORT_FILE}, {METRICS_FILE} and other files would be replaced; choose "
                f"a new or empty {option}" + (inside if is_run_folder(path) else "")
            )
    check_foreign_files(path, option, writes, marker)
    return path


def enclosing_run(path: str | Path) -> Path | None:
    """The run folder `path` is in (itself, or the nearest folder above it that holds a run),
    resolved, or None."""
    resolved = _resolved(path)
    return next((folder for folder in (resolved, *resolved.parents) if is_run_folder(folder)), None)


def check_not_in_another_run(path: str | Path, option: str, run: str | Path | None) -> None:
    """Refuses an output inside a run folder other than `run`, the run the command works on
    (None: any run), so that one run's files never land among another's.

    Raises:
        OutputError: naming the run folder and what to do.
    """
    found = enclosing_run(path)
    if found is None or (run is not None and found == _resolved(run)):
        return
    own = f" (the run this command works on is {run})" if run is not None else ""
    raise OutputError(
        f"{option}={path} is inside the run folder {found}{own}: its files would be mixed "
        f"with that run's; choose a {option} outside it"
    )


def is_trainer_png(path: str | Path) -> bool:
    """True for a PNG that Matplotlib wrote, as every plot of trainer's is (its tEXt chunk
    names the software); a photo or any other file is not."""
    with open(path, "rb") as file:
        head = file.read(4096)
    return head.startswith(PNG_SIGNATURE) and b"Software\x00Matplotlib" in head


def check_output_file(
    path: str | Path,
    option: str,
    sources: Iterable[tuple[str, str]],
    replaceable: Callable[[Path], bool] | None = is_trainer_png,
) -> Path:
    """All the rules for an output file (a PNG plot): outside the data, its folder a folder
    on a writable disk, and an existing path only a regular file that `replaceable` accepts
    (by default a PNG trainer wrote). Returns `path`.

    Raises:
        OutputError, NotADirectoryError, PermissionError: see the module docstring.
    """
    path = Path(path)
    check_outside_data(path, option, sources)
    if os.path.lexists(path):
        kind = describe_kind(path)
        if kind != "a file":
            raise OutputError(
                f"{option}={path} is {kind}, not a regular file, and trainer never writes over "
                f"one (it would be replaced by a regular file); choose another {option}"
            )
        if replaceable is not None and not replaceable(path):
            raise OutputError(
                f"{option}={path} exists and was not written by trainer (not one of its PNG "
                f"plots), so writing would destroy it; choose another {option} or delete it"
            )
    check_folder_path(path.parent, option)
    return path
