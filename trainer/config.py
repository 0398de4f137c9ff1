"""Command-line and file configuration for recipes (CONTRIBUTING.md, rule 2).

A recipe declares a flat `@dataclass` whose fields carry a trailing `# comment`. This module
turns `--key=value` arguments and an optional `--config=file.yaml` into an instance of it,
prints `--help` from the fields and their comments, and saves the resolved config. It owns
parsing and validation only; it must not know about any particular recipe.

Each field may declare its allowed values next to it with a small helper (`count`, `limit`,
`positive`, `at_least`, `fraction`, `in_range`, `choice`, `choices`, `option`), stored in the
field's metadata; `validate(config)` checks every field against them (and every float for
being finite) before any work, so a new option cannot skip the checks. `parse_args` validates.

Example:

    >>> from dataclasses import dataclass
    >>> from trainer.config import choice, count, fraction, parse_args, positive
    >>> @dataclass
    ... class Config:
    ...     epochs: int = count(10)  # passes over the training set
    ...     learning_rate: float = positive(1e-3)  # peak learning rate
    ...     dropout: float = fraction(0.3)  # dropout before the head
    ...     optimizer: str = choice("adamw", "adamw", "adam", "sgd")  # optimizer
    >>> config = parse_args(Config, ["--epochs=3", "--optimizer=sgd"])
    >>> config.epochs, config.learning_rate, config.optimizer
    (3, 0.001, 'sgd')
"""

import dataclasses
import inspect
import json
import math
import numbers
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from trainer.files import atomic_write_text

ConfigT = TypeVar("ConfigT")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A configuration value or key that the recipe does not accept."""


# An int option beyond a 32-bit int is a typo or a test of the limits (`--epochs=10**12`): it
# would overflow TensorFlow's step counters or allocate without end, so every int field stops
# here unless its rule says less.
INT_LIMIT = 2**31 - 1
# How much of a received value an error message quotes: a value built by a YAML alias bomb
# prints as megabytes.
SHOWN_CHARACTERS = 200


def shown(value: Any) -> str:
    """`repr(value)`, cut to `SHOWN_CHARACTERS` characters for error messages."""
    text = repr(value)
    if len(text) <= SHOWN_CHARACTERS:
        return text
    return f"{text[:SHOWN_CHARACTERS]}... ({len(text):,} characters)"


def _interval(
    minimum: float | None,
    maximum: float | None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> str:
    """A range in words: ">= 1", "> 0", "in [0, 1)", "in (0, 1)"; "" when unbounded."""
    if minimum is not None and maximum is not None:
        opening = "(" if exclusive_minimum else "["
        closing = ")" if exclusive_maximum else "]"
        return f"in {opening}{minimum:g}, {maximum:g}{closing}"
    if minimum is not None:
        return f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}"
    if maximum is not None:
        return f"< {maximum:g}" if exclusive_maximum else f"<= {maximum:g}"
    return ""


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    integer: bool = False,
) -> Any:
    """Checks one numeric argument of a public function and returns it as a Python number.

    The one check behind every number trainer's schedules, callbacks, losses, regularizers,
    optimizers, distillation and model builders take: Python and NumPy scalars are accepted
    (`np.int64(100)`, `np.float32(0.01)`, 0-d arrays), bools, NaN and infinities refused, and
    the range is checked; the value comes back as `int` or `float`, so it serializes to JSON
    in a model's config. `integer=True` asks for an integral type (`1.5` and `2.0` refused).

    Raises:
        ValueError: naming the argument, the range and the value received, e.g.
            "pct_start must be in (0, 1), received nan".

    Example:

        >>> import numpy as np
        >>> from trainer.config import check_number
        >>> check_number("total_steps", np.int64(100), minimum=2, integer=True)
        100
        >>> check_number("learning_rate", float("nan"), minimum=0, exclusive_minimum=True)
        Traceback (most recent call last):
        ...
        ValueError: learning_rate must be a finite number > 0, received nan
    """
    received = shown(value)
    dtype = getattr(value, "dtype", None)
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # NumPy scalar or 0-d array
        # float32(0.01) is 0.009999999776 as a Python float; its shortest text is "0.01".
        small_float = dtype.kind == "f" and dtype.itemsize < 8
        value = float(str(value)) if small_float else value.item()
    rule = _interval(minimum, maximum, exclusive_minimum, exclusive_maximum)
    kind = "an int" if integer else "a number"
    if isinstance(value, bool) or not isinstance(
        value, numbers.Integral if integer else numbers.Real
    ):
        raise ValueError(
            f"{name} must be {kind} {rule}, received {shown(value)}".replace(" ,", ",")
        )
    in_range = rule.startswith("in ")
    expected = f"{name} must be {'an int ' if integer and in_range else ''}" + (
        rule if in_range else f"{kind} {rule}"
    )
    value = int(value) if integer else float(value)
    if not math.isfinite(value):
        finite = f"{name} must be a finite number {rule}".rstrip()
        raise ValueError(f"{finite}, received {shown(value)}")
    too_low = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    too_high = maximum is not None and (value >= maximum if exclusive_maximum else value > maximum)
    if too_low or too_high:
        raise ValueError(f"{expected}, received {received}")
    return value


# Field helpers: each returns a `dataclasses.field` whose metadata says what values the option
# accepts, so the rule sits on the field's line and `validate` and `--help` read it from there.
# `resumable=True` marks an option that changes neither the model nor the data (export
# formats, budgets, backup frequency): `trainer train --resume=RUN_DIR --key=value` may change it.


def option(
    default: Any, *, check: Callable[[Any], Any] | None = None, resumable: bool = False
) -> Any:
    """A field with no range rule (floats must still be finite), or one checked by `check`, a
    function that raises ValueError on a bad value, e.g. the parser of an augmentation spec:
    `augment: str = option("crop:2,flip", check=augmentations_from_config)`."""
    return dataclasses.field(default=default, metadata={"check": check, "resumable": resumable})


def count(default: int, *, maximum: int | None = None, resumable: bool = False) -> Any:
    """An int that counts something and so must be >= 1 (epochs, batch_size, steps), and at
    most `maximum` when more would be nonsense or exhaust memory."""
    metadata = {"minimum": 1, "resumable": resumable}
    if maximum is not None:
        metadata["maximum"] = maximum
    return dataclasses.field(default=default, metadata=metadata)


def limit(default: int | float, *, resumable: bool = False) -> Any:
    """A number >= 0, where 0 usually means "off" or "all" (train_limit, validation_size)."""
    return dataclasses.field(default=default, metadata={"minimum": 0, "resumable": resumable})


non_negative = limit


def at_least(default: int | float, minimum: int | float, *, resumable: bool = False) -> Any:
    """A number >= `minimum`, for options with a special value below 0 (e.g. -1 = automatic)."""
    metadata = {"minimum": minimum, "resumable": resumable}
    return dataclasses.field(default=default, metadata=metadata)


def positive(default: float, *, resumable: bool = False) -> Any:
    """A number > 0 (learning rate, a size)."""
    metadata = {"minimum": 0, "exclusive_minimum": True, "resumable": resumable}
    return dataclasses.field(default=default, metadata=metadata)


def fraction(default: float, *, below_one: bool = False, resumable: bool = False) -> Any:
    """A probability or fraction in [0, 1] (or [0, 1) with `below_one`), e.g. dropout."""
    metadata = {"minimum": 0, "maximum": 1, "exclusive_maximum": below_one, "resumable": resumable}
    return dataclasses.field(default=default, metadata=metadata)


def in_range(default: float, minimum: float, maximum: float, *, resumable: bool = False) -> Any:
    """A number in [minimum, maximum]."""
    metadata = {"minimum": minimum, "maximum": maximum, "resumable": resumable}
    return dataclasses.field(default=default, metadata=metadata)


def choice(default: Any, *allowed: Any, resumable: bool = False) -> Any:
    """A value that must be one of `allowed` (schedule, optimizer, balance; or ints)."""
    if default not in allowed:
        raise ValueError(f"default {default!r} is not one of the allowed {allowed!r}")
    return dataclasses.field(default=default, metadata={"choices": allowed, "resumable": resumable})


def choices(default: str, *allowed: str, resumable: bool = False) -> Any:
    """A comma-separated list whose items must each be one of `allowed` (export formats)."""
    metadata = {"items": allowed, "resumable": resumable}
    return dataclasses.field(default=default, metadata=metadata)


def resumable_options(config_class: type) -> list[str]:
    """The fields marked `resumable=True`: `--resume` may override them."""
    return [
        field.name
        for field in dataclasses.fields(config_class)
        if field.metadata.get("resumable", False)
    ]


def _rule_text(metadata: Any) -> str:
    """The allowed values in words, for `--help` and error messages; "" when unrestricted."""
    if "choices" in metadata:
        return "one of " + ", ".join(map(str, metadata["choices"]))
    if "items" in metadata:
        return "comma-separated, each one of " + ", ".join(metadata["items"])
    return _interval(
        metadata.get("minimum"),
        metadata.get("maximum"),
        metadata.get("exclusive_minimum", False),
        metadata.get("exclusive_maximum", False),
    )


def _check_value(name: str, expected: type, value: Any, metadata: Any) -> None:
    received = shown(value)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} expects bool (true/false), received {received}")
        return
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name} expects int, received {received}")
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} expects float, received {received}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, received {received}")
    if expected is str and not isinstance(value, str):
        raise ConfigError(f"{name} expects str, received {received}")
    rule = _rule_text(metadata)
    if "choices" in metadata and value not in metadata["choices"]:
        raise ConfigError(f"{name} must be {rule}; received {received}")
    if "items" in metadata:
        items = [item.strip() for item in str(value).split(",") if item.strip()]
        unknown = [item for item in items if item not in metadata["items"]]
        if unknown or not items:
            raise ConfigError(f"{name} must be {rule}; received {received}")
    if metadata.get("check") is not None:
        try:
            metadata["check"](value)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{name}: {error}; received {received}") from None
    if isinstance(value, int | float):
        low, high = metadata.get("minimum"), metadata.get("maximum")
        too_low = low is not None and (
            value <= low if metadata.get("exclusive_minimum") else value < low
        )
        too_high = high is not None and (
            value >= high if metadata.get("exclusive_maximum") else value > high
        )
        if too_low or too_high:
            raise ConfigError(f"{name} must be {rule}, received {received}")
        if isinstance(value, int) and abs(value) > INT_LIMIT:
            raise ConfigError(
                f"{name} must be between -{INT_LIMIT} and {INT_LIMIT}, received {received}: a "
                "value this large would overflow a step counter or exhaust memory"
            )


def validate(config: Any) -> Any:
    """Checks every field of a config dataclass against its type and declared rule.

    Call it on a config made in code (`build(config)` does); `parse_args` calls it for the
    command line. Every float must be finite; fields declared with `count`, `limit`,
    `positive`, `fraction`, `in_range`, `choice` or `choices` must also meet their rule.
    NumPy numbers in int and float fields (`np.int64(100)`, `np.float32(0.01)`) are accepted
    and replaced by Python numbers, so the config saves as YAML.

    Returns:
        The config (checked; NumPy numbers replaced by Python numbers).

    Raises:
        ConfigError: naming the option, the allowed values and the value received, e.g.
            "epochs must be >= 1, received 0".
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"validate expects a config dataclass instance, received {config!r}")
    types = field_types(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if types[field.name] in (int, float) and _is_numpy_number(value):
            # np.float32(0.01) from a sweep: the Python number, so config.yaml can hold it.
            try:
                value = check_number(field.name, value, integer=types[field.name] is int)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            object.__setattr__(config, field.name, value)
        _check_value(field.name, types[field.name], value, field.metadata)
    return config


def _is_numpy_number(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", "")
    return getattr(value, "ndim", None) == 0 and kind in "iuf" and bool(kind)


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
    lines = iter(source.splitlines()[1:])
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"(\w+)\s*:[^#]*?(?:#\s*(.*))?$", stripped)
        if match:
            trailing = match.group(2) or ""
            # A field written over several lines (`count(\n    12\n)  # comment`): the comment
            # follows the line that closes the brackets.
            code = stripped.partition("#")[0]
            depth = code.count("(") - code.count(")")
            while depth > 0:
                continued = next(lines, ")").strip()
                code, _, comment = continued.partition("#")
                depth += code.count("(") - code.count(")")
                trailing = comment.strip() if depth <= 0 else trailing
            comments[match.group(1)] = " ".join([*pending, trailing]).strip()
        pending = []
    return comments


def field_types(config_class: type) -> dict[str, type]:
    """Maps each field of a config dataclass to its type (string annotations resolved)."""
    hints = typing.get_type_hints(config_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(config_class)}


def convert_value(name: str, expected: type, value: Any) -> Any:
    """Converts `value` (a string from the command line, or a YAML scalar) to `expected`.

    Raises:
        ConfigError: "epochs expects int, received 'abc'".
    """
    received = shown(value)
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
        f"unknown config key {shown(key)} in {source}.{hint} Valid keys: {', '.join(valid)}"
    )


class _AliasFound(Exception):
    """An alias (`*name`) in a config file: where it is, for the message."""


class _FlatLoader(yaml.SafeLoader):
    """Safe YAML without aliases. Options are flat `key: value` lines, so an alias is never
    needed, and aliases are how 300 bytes expand into a value that prints as 80 MB (the
    "billion laughs")."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasFound(f"*{event.anchor} on line {event.start_mark.line + 1}")
        return super().compose_node(parent, index)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON file of defaults (safe YAML: no Python objects, no aliases)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"--config={path} is a folder; pass a YAML or JSON file, e.g. RUN_DIR/config.yaml"
        )
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_FlatLoader)
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {error.start}: "
            f"{error.object[error.start : error.start + 1]!r}); save it as UTF-8 YAML or JSON"
        ) from None
    except _AliasFound as where:
        raise ConfigError(
            f"config file {str(path)!r} uses a YAML alias ({where}); a config file holds flat "
            "key: value lines, so write each value out instead of referring to an anchor"
        ) from None
    except yaml.YAMLError as error:
        detail = str(error)
        detail = detail if len(detail) <= SHOWN_CHARACTERS * 2 else detail[: SHOWN_CHARACTERS * 2]
        raise ConfigError(f"config file {str(path)!r} is not valid YAML/JSON: {detail}") from None
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
    types = field_types(config_class)
    lines = [f"usage: {program} [--config=FILE.yaml] [--key=value ...]", ""]
    doc = inspect.getdoc(sys.modules.get(config_class.__module__))
    if doc:
        lines += [doc.splitlines()[0], ""]
    lines.append("options (default in brackets):")
    rows = [("--config=FILE", "", "YAML/JSON file of defaults; command-line values win")]
    for field in dataclasses.fields(config_class):
        default = field.default if field.default is not dataclasses.MISSING else ""
        flag = f"--{field.name}={types[field.name].__name__.upper()}"
        comment = comments.get(field.name, "")
        rule = _rule_text(field.metadata)
        if rule and "choices" not in field.metadata and "items" not in field.metadata:
            comment = f"{comment} ({rule})".strip()
        if field.metadata.get("resumable"):
            comment = f"{comment} (--resume may change it)".strip()
        rows.append((flag, f"[{default!r}]", comment))
    option_width = max(len(row[0]) for row in rows)
    default_width = max(len(row[1]) for row in rows)
    for option, default, comment in rows:
        lines.append(f"  {option:<{option_width}}  {default:<{default_width}}  {comment}")
    return "\n".join(lines)


def option_name(arg: str) -> str:
    """The field an argument sets: `--max-trials=3` -> "max_trials"; "" for a positional."""
    return arg[2:].partition("=")[0].replace("-", "_") if arg.startswith("--") else ""


def split_arguments(config_class: type, argv: list[str]) -> tuple[list[str], list[str]]:
    """Separates the arguments that set a field of `config_class` from the rest, keeping their
    order: a command's own options go to its options dataclass, the others to the recipe's.

    Example:

        >>> from dataclasses import dataclass
        >>> from trainer.config import split_arguments
        >>> @dataclass
        ... class TuneOptions:
        ...     max_trials: int = 10
        >>> split_arguments(TuneOptions, ["digits", "--max_trials=4", "--width=8"])
        (['--max_trials=4'], ['digits', '--width=8'])
    """
    names = {field.name for field in dataclasses.fields(config_class)}
    ours, rest = [], []
    for arg in argv:
        (ours if option_name(arg) in names else rest).append(arg)
    return ours, rest


def parse_args(
    config_class: type[ConfigT],
    argv: list[str] | None = None,
    program: str = "recipe",
    *,
    check: bool = True,
) -> ConfigT:
    """Builds a `config_class` instance from `--key=value` arguments.

    `--config=FILE` (YAML or JSON) sets defaults first; command-line values override them.
    A bare `--flag` sets a bool field to true. `--help` prints every field and exits.
    `check=False` skips `validate` (only types are converted), e.g. to read an old run's
    config.yaml whose values a newer rule would refuse.

    Raises:
        ConfigError: unknown key (listing the valid keys), a value of the wrong type or
            outside the field's declared rule (see `validate`), an empty `--config=`, a
            config path that is a folder or not UTF-8, or a positional argument.
        FileNotFoundError: the `--config` file does not exist.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(config_class, program))
        raise SystemExit(0)
    types = field_types(config_class)
    valid = list(types)
    command_line: dict[str, str] = {}
    config_file = None
    for arg in argv:
        if not arg.startswith("--"):
            raise ConfigError(
                f"unexpected argument {shown(arg)}: options are written --key=value "
                f"(valid keys: {', '.join(valid)})"
            )
        key, has_value, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key == "config":
            if not value.strip():
                raise ConfigError(
                    f"{arg!r} names no file: write --config=FILE.yaml, or leave it out to use "
                    "the defaults"
                )
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
    config = config_class(**values)
    return validate(config) if check else config


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
