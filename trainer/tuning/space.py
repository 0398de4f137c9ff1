"""Search spaces: which fields of a recipe's `Config` a search varies, and over which values.

A space is text (`"learning_rate=log:1e-4:1e-2; width=16,32"`), from `--search`, the recipe's
`SEARCH_SPACE` or `generic_space`; `parse_space` turns it into `Dimension`s checked against the
config's types and rules before any data loads, and `trial_config` is the config a trial
trains. This module must not import keras-tuner: a `Dimension` declares itself on the
`HyperParameters` object it is handed.
"""

import dataclasses
from types import ModuleType
from typing import Any

from trainer.config import ConfigError, convert_value, field_types, validate
from trainer.tuning.options import NOT_SEARCHABLE


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One varied Config field: a list of choices, or a numeric range (log or linear).

    Written `name=a,b,c` (or `a|b|c` when values contain commas), `name=LOW:HIGH`,
    `name=LOW:HIGH:STEP` or `name=log:LOW:HIGH`.
    """

    name: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False

    def declare(self, hp) -> Any:
        """Declares this dimension on keras-tuner `HyperParameters` and returns its value."""
        if self.choices:
            return hp.Choice(self.name, list(self.choices), ordered=False)
        sampling = "log" if self.log else "linear"
        if self.integer:
            step = int(self.step) if self.step else None
            return hp.Int(self.name, int(self.low), int(self.high), step=step, sampling=sampling)
        return hp.Float(self.name, self.low, self.high, step=self.step, sampling=sampling)

    def text(self) -> str:
        if self.choices:
            separator = "|" if any("," in str(value) for value in self.choices) else ","
            return f"{self.name}={separator.join(str(value) for value in self.choices)}"
        bounds = f"{self.low:g}:{self.high:g}" + (f":{self.step:g}" if self.step else "")
        return f"{self.name}={'log:' if self.log else ''}{bounds}"


def parse_space(text: str, base_config: Any) -> list[Dimension]:
    """Parses a search space such as `"learning_rate=log:1e-4:1e-2; width=16,32,64;
    dropout=0.1:0.5; augment=none|crop:2,flip"` against a recipe's config.

    Entries are separated by `;` or new lines. Every value is converted to the field's type
    and checked against the field's rule (`validate`), so an impossible space fails here,
    before any data loads.

    Raises:
        ConfigError: an unknown or unsearchable field, a malformed entry, a value of the wrong
            type or outside the field's rule, quoting what was received.
    """
    types = field_types(type(base_config))
    searchable = [name for name, kind in types.items() if name not in NOT_SEARCHABLE]
    dimensions: dict[str, Dimension] = {}
    for entry in (part.strip() for part in text.replace("\n", ";").split(";")):
        if not entry:
            continue
        name, has_value, spec = (part.strip() for part in entry.partition("="))
        if not has_value or not spec:
            raise ConfigError(
                f"search entry {entry!r} has no values: write name=a,b,c, name=LOW:HIGH or "
                "name=log:LOW:HIGH"
            )
        if name in NOT_SEARCHABLE:
            raise ConfigError(
                f"{name} cannot be searched (epochs per trial is --max_epochs; run_dir and "
                f"backup_every do not change the model); searchable: {', '.join(searchable)}"
            )
        if name not in types:
            raise ConfigError(
                f"unknown field {name!r} in the search space; the recipe's fields are: "
                f"{', '.join(searchable)}"
            )
        if name in dimensions:
            raise ConfigError(f"{name} appears twice in the search space {text!r}")
        dimensions[name] = _dimension(name, types[name], spec)
        _check_dimension(dimensions[name], base_config)
    if not dimensions:
        raise ConfigError(f"the search space {text!r} varies no field")
    return list(dimensions.values())


def _dimension(name: str, kind: type, spec: str) -> Dimension:
    numeric = kind in (int, float)
    parts = spec.split(":")
    log = numeric and parts[0].strip().lower() == "log"
    if log:
        parts = parts[1:]
    if numeric and (log or len(parts) in (2, 3)):
        if len(parts) not in (2, 3):
            raise ConfigError(f"{name}={spec!r}: write log:LOW:HIGH")
        low, high, *step = (convert_value(name, kind, part) for part in parts)
        if not low < high:
            raise ConfigError(f"{name}={spec!r}: LOW must be below HIGH, received {low} and {high}")
        if log and low <= 0:
            raise ConfigError(f"{name}={spec!r}: a log range needs LOW > 0, received {low}")
        if step and step[0] <= 0:
            raise ConfigError(f"{name}={spec!r}: STEP must be > 0, received {step[0]}")
        return Dimension(
            name, low=low, high=high, step=step[0] if step else None, log=log, integer=kind is int
        )
    separator = "|" if "|" in spec else ","
    values = tuple(convert_value(name, kind, part.strip()) for part in spec.split(separator))
    if any(value == "" for value in values):
        raise ConfigError(f"{name}={spec!r} has an empty choice")
    if len(set(values)) != len(values):
        raise ConfigError(f"{name}={spec!r} repeats a choice")
    return Dimension(name, choices=values)


def _check_dimension(dimension: Dimension, base_config: Any) -> None:
    ends = dimension.choices or (dimension.low, dimension.high)
    for value in ends:
        try:
            validate(dataclasses.replace(base_config, **{dimension.name: value}))
        except ConfigError as error:
            raise ConfigError(f"search space {dimension.text()!r}: {error}") from None


def default_space(recipe: ModuleType, base_config: Any) -> str:
    """The recipe's `SEARCH_SPACE` if it declares one, else `generic_space(base_config)`."""
    declared = getattr(recipe, "SEARCH_SPACE", None)
    if declared is not None:
        if not isinstance(declared, str):
            raise TypeError(
                f"{recipe.__name__}.SEARCH_SPACE must be a string such as "
                f"'learning_rate=log:1e-4:1e-2; width=16,32', received {type(declared).__name__}"
            )
        return declared
    return generic_space(base_config)


def generic_space(base_config: Any) -> str:
    """A search space from the fields a config has, around their defaults: learning_rate,
    schedule, optimizer, weight_decay, dropout, augment, batch_size, width, depth, head_units,
    label_smoothing. For a recipe that declares no `SEARCH_SPACE`.

    Example:

        generic_space(digits.Config())
        # 'batch_size=16,32,64; learning_rate=log:0.0003:0.009; width=8,16,32'
    """
    values = dataclasses.asdict(base_config)
    entries = []
    rate = values.get("learning_rate")
    if isinstance(rate, float) and rate > 0:
        entries.append(f"learning_rate=log:{rate / 10:.2g}:{rate * 3:.2g}")
    if isinstance(values.get("schedule"), str):
        entries.append("schedule=cosine,one_cycle,constant")
    if isinstance(values.get("optimizer"), str):
        entries.append("optimizer=adamw,sgd")
    if isinstance(values.get("weight_decay"), float):
        entries.append("weight_decay=0,0.0001,0.0005,0.002")
    if isinstance(values.get("dropout"), float):
        entries.append("dropout=0.0:0.5")
    augment = values.get("augment")
    if isinstance(augment, str):
        stronger = augment + ",erase:0.25" if augment != "none" else "crop:2,erase:0.25"
        entries.append("augment=" + "|".join(dict.fromkeys(["none", augment, stronger])))
    batch = values.get("batch_size")
    if isinstance(batch, int) and not isinstance(batch, bool):
        sizes = (batch // 2, batch, batch * 2) if batch >= 2 else (16, 32, 64)
        entries.append("batch_size=" + ",".join(map(str, sizes)))
    for name in ("width", "depth"):
        size = values.get(name)
        if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            grown = (size // 2, size, size * 2) if name == "width" else (size - 1, size, size + 1)
            entries.append(f"{name}=" + ",".join(str(v) for v in dict.fromkeys(grown) if v >= 1))
    if isinstance(values.get("head_units"), int):
        entries.append("head_units=0,64,128")
    if isinstance(values.get("label_smoothing"), float):
        entries.append("label_smoothing=0.0:0.2")
    if not entries:
        raise ConfigError(
            f"{type(base_config).__name__} has none of the fields a generic search varies "
            '(learning_rate, dropout, width, batch_size, ...): pass --search="name=a,b; ..." '
            "or declare SEARCH_SPACE next to the recipe's Config"
        )
    return "; ".join(sorted(entries))


def python_value(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds: Bayesian optimization's Gaussian process
    proposes `numpy.float64` values, which the YAML of best.yaml cannot hold."""
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def trial_config(base_config: Any, values: dict[str, Any], max_epochs: int) -> Any:
    """The base config with a trial's values, trained for `max_epochs`, without backups.

    Raises:
        ConfigError: the combination breaks a field's rule.
    """
    changes = {
        key: python_value(value) for key, value in values.items() if not key.startswith("tuner/")
    }
    fields = {field.name for field in dataclasses.fields(base_config)}
    if "epochs" in fields and max_epochs:
        changes["epochs"] = max_epochs
    if "backup_every" in fields:
        changes["backup_every"] = 0
    if "run_dir" in fields:
        changes["run_dir"] = ""
    return validate(dataclasses.replace(base_config, **changes))
