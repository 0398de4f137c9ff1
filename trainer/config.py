"""Command-line and file configuration for recipes (STYLE.md rule 2).

A recipe declares a flat `@dataclass` whose fields carry a trailing `# comment`. This module
turns `--key=value` arguments and an optional `--config=file.yaml` into an instance of it,
prints `--help` from the fields and their comments, and saves the resolved config. It owns
parsing and validation only; it must not know about any particular recipe.

Example:

    from dataclasses import dataclass
    from trainer.config import parse_args

    @dataclass
    class Config:
        epochs: int = 10  # passes over the training set
        learning_rate: float = 1e-3  # peak learning rate

    config = parse_args(Config, ["--epochs=3"])
    assert config.epochs == 3
"""

import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from trainer.files import atomic_write_text

ConfigT = TypeVar("ConfigT")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value or key that the recipe does not accept."""


def field_comments(config_class: type) -> dict[str, str]:
    """Maps each field name to the comment written beside it (or on the lines above it)."""
    # Fields inherited from a base dataclass carry their comments in the base's source.
    comments: dict[str, str] = {}
    for base in reversed(config_class.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            comments.update(field_comments(base))
    try:
        source = inspect.getsource(config_class)
    except (OSError, TypeError):
        return comments
    pending: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"(\w+)\s*:[^#]*?(?:#\s*(.*))?$", stripped)
        if match:
            trailing = match.group(2) or ""
            comments[match.group(1)] = " ".join([*pending, trailing]).strip()
        pending = []
    return comments


def _field_types(config_class: type) -> dict[str, type]:
    hints = typing.get_type_hints(config_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(config_class)}


def convert_value(name: str, expected: type, value: Any) -> Any:
    """Converts `value` (a string from the command line, or a YAML scalar) to `expected`.

    Raises:
        ConfigError: "epochs expects int, received 'abc'".
    """
    received = repr(value)
    if expected is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{name} expects bool (true/false), received {received}")
    if expected is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} expects int, received {received}")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{name} expects int, received {received}") from None
    if expected is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} expects float, received {received}")
        try:
            return float(str(value).strip()) if not isinstance(value, int | float) else float(value)
        except ValueError:
            raise ConfigError(f"{name} expects float, received {received}") from None
    if expected is str:
        if isinstance(value, dict | list):
            raise ConfigError(f"{name} expects str, received {received}")
        return str(value)
    raise ConfigError(f"{name} has unsupported type {expected!r}; use int, float, str or bool")


def _unknown_key_error(key: str, valid: list[str], source: str) -> ConfigError:
    close = [name for name in valid if key in name or name in key]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(
        f"unknown config key {key!r} in {source}.{hint} Valid keys: {', '.join(valid)}"
    )


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON file of defaults (safe YAML: no Python objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML/JSON: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of key: value, "
            f"received {type(data).__name__}"
        )
    return data


def help_text(config_class: type, program: str) -> str:
    """The `--help` text: every field with its type, default and comment."""
    comments = field_comments(config_class)
    types = _field_types(config_class)
    lines = [f"usage: {program} [--config=FILE.yaml] [--key=value ...]", ""]
    doc = inspect.getdoc(sys.modules.get(config_class.__module__))
    if doc:
        lines += [doc.splitlines()[0], ""]
    lines.append("options (default in brackets):")
    rows = [("--config=FILE", "", "YAML/JSON file of defaults; command-line values win")]
    for field in dataclasses.fields(config_class):
        default = field.default if field.default is not dataclasses.MISSING else ""
        option = f"--{field.name}={types[field.name].__name__.upper()}"
        rows.append((option, f"[{default!r}]", comments.get(field.name, "")))
    option_width = max(len(row[0]) for row in rows)
    default_width = max(len(row[1]) for row in rows)
    for option, default, comment in rows:
        lines.append(f"  {option:<{option_width}}  {default:<{default_width}}  {comment}")
    return "\n".join(lines)


def parse_args(
    config_class: type[ConfigT], argv: list[str] | None = None, program: str = "recipe"
) -> ConfigT:
    """Builds a `config_class` instance from `--key=value` arguments.

    `--config=FILE` (YAML or JSON) sets defaults first; command-line values override them.
    A bare `--flag` sets a bool field to true. `--help` prints every field and exits.

    Raises:
        ConfigError: unknown key (listing the valid keys), bad value, or positional argument.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(config_class, program))
        raise SystemExit(0)
    types = _field_types(config_class)
    valid = list(types)
    command_line: dict[str, str] = {}
    config_file = None
    for arg in argv:
        if not arg.startswith("--"):
            raise ConfigError(
                f"unexpected argument {arg!r}: options are written --key=value "
                f"(valid keys: {', '.join(valid)})"
            )
        key, has_value, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key == "config":
            config_file = value
            continue
        if key not in types:
            raise _unknown_key_error(key, valid, "the command line")
        if not has_value:
            if types[key] is not bool:
                raise ConfigError(f"--{key} needs a value: --{key}=VALUE")
            value = "true"
        command_line[key] = value
    values: dict[str, Any] = {}
    if config_file:
        for key, value in load_config_file(config_file).items():
            if key not in types:
                raise _unknown_key_error(str(key), valid, repr(config_file))
            values[key] = convert_value(key, types[key], value)
    for key, value in command_line.items():
        values[key] = convert_value(key, types[key], value)
    return config_class(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """The config as a flat dict of plain values."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    """Writes the resolved config as YAML, atomically, so the run can be repeated exactly."""
    text = yaml.safe_dump(to_dict(config), sort_keys=False)
    atomic_write_text(path, text)


def load_saved_config(config_class: type[ConfigT], path: str | Path) -> ConfigT:
    """Reads a config written by `save_config` back into `config_class` (validated)."""
    return parse_args(config_class, [f"--config={path}"])


def dumps(config: Any) -> str:
    """One-line JSON of the config, for logs."""
    return json.dumps(to_dict(config))
