"""The search space of ``mocme hpo``: a ``search`` section beside a normal run config.

::

    search:
      training.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.dim: {type: categorical, choices: [32, 64, 128]}
      model.experts: {type: int, low: 1, high: 4}

Each key is a dotted config key; each value a :class:`Dimension`. The section is checked before
any trial runs: a malformed dimension, an unknown key or a bound the run config rejects is a
one-line :class:`~mocme.errors.ConfigError` naming the file and the line of that key.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mocme.config import validate_config
from mocme.errors import ConfigError

Choice = bool | int | float | str | None  # what Optuna stores for a categorical choice


class Dimension(BaseModel):
    """One searched config value: a float or int range (optionally log-scaled or stepped), or choices."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"] = Field(description="float, int or categorical.")
    low: float | None = Field(None, description="float/int: smallest value.")
    high: float | None = Field(None, description="float/int: largest value.")
    log: bool = Field(False, description="float/int: sample on a log scale (needs low > 0).")
    step: float | None = Field(None, gt=0, description="float/int: spacing of the values (not with log).")
    choices: list[Choice] | None = Field(None, description="categorical: the values to choose from.")

    @model_validator(mode="after")
    def _check(self) -> Dimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("categorical takes only 'choices'")
            return self
        if self.choices is not None:
            raise ValueError(f"{self.type} takes 'low' and 'high', not 'choices'")
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log scale needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be combined")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise ValueError("int bounds and step must be whole numbers")
        return self

    def suggest(self, trial: Any, name: str) -> Any:
        """The value an ``optuna.Trial`` proposes for config key ``name``."""
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            step = int(self.step or 1)
            return trial.suggest_int(name, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list[Any]:
        """Values that exercise the whole range: both bounds, or every choice."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


def parse_search(
    raw: Any, data: dict[str, Any], source: str, lines: dict[tuple[str, ...], int]
) -> dict[str, Dimension]:
    """Validate the ``search`` section against the run config ``data`` it will modify.

    Args:
        raw: the section as read from YAML.
        data: the run config without ``search``.
        source, lines: the file name and the line of every key path, for error messages.
    """
    where = f"{source}:{lines[('search',)]}" if ("search",) in lines else source
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{where}: search must map dotted config keys to dimensions, e.g. training.lr: {{type: float, ...}}"
        )
    space: dict[str, Dimension] = {}
    for key, value in raw.items():
        line = lines.get(("search", str(key)))
        here = f"{source}:{line}" if line else where
        try:
            space[str(key)] = Dimension.model_validate(value)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            detail = f"{field}: {first['msg']}" if field else first["msg"].removeprefix("Value error, ")
            raise ConfigError(f"{here}: search.{key}: {detail}") from None
        for sample in space[str(key)].extremes():
            validate_config(apply(data, {str(key): sample}), source, {**lines, tuple(str(key).split(".")): line or 0})
    return space


def apply(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each dotted key set to its value."""
    out = copy.deepcopy(data)
    for key, value in values.items():
        target = out
        *parents, last = key.split(".")
        for part in parents:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[last] = value
    return out
