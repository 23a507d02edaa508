"""One typed, validated config per run: a YAML file plus ``--set a.b=c`` overrides.

Every field has a default and a description, so ``RunConfig()`` is a complete run (MoCME on the
built-in synthetic graph). Unknown keys, wrong types and out-of-range values are a one-line
:class:`~mocme.errors.ConfigError` naming the file, the line and the key.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mocme.data.loading import DatasetConfig
from mocme.errors import ConfigError
from mocme.evaluation.config import EvaluationConfig
from mocme.io import YAML_ERRORS
from mocme.models.config import ModelConfig
from mocme.training.config import TrainingConfig
from mocme.training.strategies import STRATEGIES

Backend = Literal["tensorboard", "mlflow"]


class TrackingConfig(BaseModel):
    """Experiment trackers that receive every epoch's record and the final metrics.

    The run directory's ``trace.jsonl`` is always written; these back ends are added to it.
    """

    model_config = ConfigDict(extra="forbid")

    backends: list[Backend] = Field(
        default_factory=list,
        description="Trackers besides trace.jsonl: tensorboard and/or mlflow (the 'tracking' extra).",
    )
    tensorboard_dir: Path | None = Field(
        None,
        description="TensorBoard: root folder, a sub-folder PARENT/RUN per run directory PARENT/RUN (default: "
        "RUN_DIR/tensorboard).",
    )
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI (default: sqlite:///<folder holding the run directory>/mlflow.db)."
    )
    experiment: str = Field("mocme", min_length=1, description="MLflow experiment that receives the runs.")

    @field_validator("backends")
    @classmethod
    def _unique(cls, backends: list[Backend]) -> list[Backend]:
        return list(dict.fromkeys(backends))


class RunConfig(BaseModel):
    """Everything that defines a run; saved, resolved, as ``config.yaml`` in the run directory."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seed: int = Field(0, ge=0, le=2**32 - 1, description="Fixes initialisation, query order, negatives and dropout.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "cpu", description="Where to train: cpu, cuda, or auto (cuda if any)."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: torch's choice).")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _selection_metric_is_evaluated(self) -> RunConfig:
        name = self.training.metric.rsplit(".", 1)[-1]
        k = name.removeprefix("hits_at_")
        if k != name and int(k) not in self.evaluation.ks:
            raise ValueError(f"training.metric {self.training.metric!r} needs {k} in evaluation.ks")
        return self


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config (or start from the defaults), apply ``key.path=value`` overrides, validate."""
    return validate_config(*read_config(path, overrides))


def read_config(
    path: str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[dict[str, Any], str, dict[tuple[str, ...], int]]:
    """The raw mapping of a YAML config plus overrides, before validation: ``(data, source, key lines)``.

    For files that carry more than a run config (``mocme hpo``'s ``search`` section): take out the
    extra keys, then :func:`validate_config` the rest with the same source and lines.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    lines: dict[tuple[str, ...], int] = {}
    if path is not None:
        source = str(path)
        text = _read(Path(path))
        data, lines = _parse_yaml(source, text)
    for override in overrides:
        key, value = parse_override(override)
        _assign(data, key, value, override)
        lines[tuple(key)] = 0  # 0: came from an override
    return data, source, lines


def validate_config(
    data: dict[str, Any], source: str = "config", lines: dict[tuple[str, ...], int] | None = None
) -> RunConfig:
    """Validate a plain dict into a :class:`RunConfig`, turning the first problem into one line.

    The training strategy is checked against the registry here, above the training layer
    (``mocme.training.strategies`` builds on the training config, so the config cannot import it).
    """
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise _one_line(err, source, lines or {}) from None
    if config.training.negatives not in STRATEGIES:
        where = _where(source, _line_of(("training", "negatives"), lines or {}))
        raise ConfigError(
            f"{where}: training.negatives: unknown strategy {config.training.negatives!r}; "
            f"choose one of {', '.join(STRATEGIES)}"
        )
    return config


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.lr=0.01"`` -> ``(["training", "lr"], 0.01)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"--set {text}: expected key.path=value (for example training.lr=0.01)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except YAML_ERRORS:
        value = raw
    return [p.strip() for p in parts], value


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML (every field, including defaults)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1  # as the data files report it
        raise ConfigError(f"{path}:{line}: not valid UTF-8 (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err})") from None


def _parse_yaml(source: str, text: str) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The YAML mapping and the line of every key path in it."""
    node = None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except YAML_ERRORS as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else _unconstructible_line(node)
        where = f"{source}:{line}" if line is not None else source
        raise ConfigError(f"{where}: invalid YAML ({getattr(err, 'problem', None) or err})") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: a config must be a mapping of sections (seed, dataset, model, training, ...)")
    lines: dict[tuple[str, ...], int] = {}
    _key_lines(node, (), lines, source)
    return data, lines


def _unconstructible_line(node: yaml.Node | None) -> int | None:
    """The line of the first scalar under ``node`` that YAML parses but cannot turn into a value
    (``!!int large``: such errors carry no position of their own)."""
    if isinstance(node, yaml.ScalarNode):
        try:
            yaml.SafeLoader("").construct_object(node)
        except YAML_ERRORS:
            return node.start_mark.line + 1
        return None
    children = node.value if isinstance(node, yaml.SequenceNode | yaml.MappingNode) else []
    for child in children:
        for part in child if isinstance(child, tuple) else (child,):
            if (line := _unconstructible_line(part)) is not None:
                return line
    return None


def _key_lines(node: yaml.Node | None, prefix: tuple[str, ...], out: dict[tuple[str, ...], int], source: str) -> None:
    """The line of every key path under ``node``; a key given twice in one mapping is an error (YAML
    keeps the last one, which would silently drop the whole earlier block)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            line = key_node.start_mark.line + 1
            if key in out:
                raise ConfigError(f"{source}:{line}: {'.'.join(key)} is given twice (first at line {out[key]})")
            out[key] = line
            _key_lines(value_node, key, out, source)


def _assign(data: dict[str, Any], key: list[str], value: Any, override: str) -> None:
    target = data
    for i, part in enumerate(key[:-1]):
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {override}: {'.'.join(key[: i + 1])} is not a section")
        target = child
    target[key[-1]] = value


def _one_line(err: ValidationError, source: str, lines: dict[tuple[str, ...], int]) -> ConfigError:
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo explains the rest
    loc = tuple(str(p) for p in first["loc"])
    dotted = ".".join(loc) or "(top level)"
    where = _where(source, _line_of(loc, lines))
    if first["type"] == "extra_forbidden":
        hint = _suggest(loc)
        return ConfigError(f"{where}: unknown key '{dotted}'{hint}")
    value = first.get("input")
    shown = "" if isinstance(value, dict) or value is None else f" (got {value!r:.60})"
    return ConfigError(f"{where}: {dotted}: {first['msg']}{shown}")


def _where(source: str, line: int | None) -> str:
    """``source:line``, ``--set`` for an override (line 0), or the source alone."""
    if line == 0:
        return "--set"
    return source if line is None else f"{source}:{line}"


def _line_of(loc: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    """Line of the deepest known prefix of ``loc`` (``0`` for an override, ``None`` when unknown).

    A whole section's (or the config's) error without a line of its own points at what was given
    inside it: an override if any (``0``), else its first line in the file.
    """
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    inside = [line for key, line in lines.items() if key[: len(loc)] == loc]
    return min(inside) if inside else None


def _suggest(loc: tuple[str, ...]) -> str:
    """``" (did you mean 'lr'?)"`` for a misspelt key, from the fields of its section."""
    model: type[BaseModel] = RunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
