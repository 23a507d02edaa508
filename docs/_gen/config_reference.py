"""The configuration reference, generated from the pydantic models of a run config.

Every section of :class:`mocme.config.RunConfig` becomes a table of its fields (dotted key, type
with its bounds, default, description); a mapping of sections (``dataset.features``) becomes a
``NAME`` sub-section. The defaults are those of ``RunConfig()``, exactly what ``mocme config``
prints. Nothing is copied by hand, so the page follows the code.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import annotated_types
import yaml
from markdown_text import cell, code
from pydantic import BaseModel
from pydantic.fields import FieldInfo

NAME = "NAME"  # the placeholder key of a mapping of sections


def config_reference() -> str:
    """Markdown: one table per section of a run config, then the ``search`` section of ``mocme hpo``."""
    from mocme.config import RunConfig
    from mocme.hpo.space import Dimension

    parts: list[str] = []
    _section(RunConfig, (), RunConfig().model_dump(mode="json"), parts)
    parts.append(
        "## `search` (`mocme hpo` only)\n\n"
        "A config given to `mocme hpo` may add a `search` section that maps dotted keys of the "
        "sections above to search dimensions, for example `training.lr: {type: float, low: 1.0e-4, "
        "high: 1.0e-2, log: true}`. Each dimension takes these fields:\n\n" + _table(Dimension, ("search", NAME), None)
    )
    return "\n\n".join(parts) + "\n"


def _section(model: type[BaseModel], path: tuple[str, ...], defaults: dict[str, Any] | None, out: list[str]) -> None:
    """Append ``model``'s table (under ``path``) and then, recursively, its sub-sections."""
    title = "## Top level" if not path else f"## `{'.'.join(path)}`"
    intro = _first_paragraph(model.__doc__)
    body = [title, intro] if intro else [title]
    if path and path[-1] == NAME and defaults:
        nested: dict[str, Any] = defaults
        for part in reversed(path[:-1]):
            nested = {part: nested}
        listing = yaml.safe_dump(nested, sort_keys=False, allow_unicode=True).rstrip()
        body.append(f"Default entries:\n\n```yaml\n{listing}\n```")
    body.append(_table(model, path, defaults if not (path and path[-1] == NAME) else None))
    out.append("\n\n".join(body))
    for name, field in model.model_fields.items():
        sub = _section_model(field.annotation)
        if sub is not None:
            _section(sub, (*path, name), (defaults or {}).get(name), out)
            continue
        mapped = _mapping_model(field.annotation)
        if mapped is not None:
            _section(mapped, (*path, name, NAME), (defaults or {}).get(name), out)


def _table(model: type[BaseModel], path: tuple[str, ...], defaults: dict[str, Any] | None) -> str:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        key = ".".join((*path, name))
        if _section_model(field.annotation) is not None:
            anchor = key.replace(".", "").lower()
            rows.append(f"| `{key}` | section | | [below](#{anchor}) |")
            continue
        if _mapping_model(field.annotation) is not None:
            anchor = f"{key}{NAME}".replace(".", "").lower()
            default = _mapping_default(field, defaults, name)
            text = f"{cell(_describe(field))} [below](#{anchor})"
            rows.append(f"| `{key}` | mapping of `{NAME}` to a section | {default} | {text} |")
            continue
        kind = _type_text(field.annotation) + _bounds(field)
        default = _default_text(field, defaults, name)
        rows.append(f"| `{key}` | {cell(kind)} | {default} | {cell(_describe(field))} |")
    return "\n".join(rows)


def _describe(field: FieldInfo) -> str:
    return field.description or "(no description)"


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _section_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _mapping_model(annotation: Any) -> type[BaseModel] | None:
    """The value model of ``dict[str, Model]``, else ``None``."""
    if typing.get_origin(annotation) is dict:
        return _section_model(typing.get_args(annotation)[1])
    return None


def _type_text(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(code(_yaml_scalar(a)) for a in args)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a) for a in options)
        return f"{text} or null" if len(options) < len(args) else text
    if origin is list:
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {_type_text(args[0])} to {_type_text(args[1])}" if args else "mapping"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _bounds(field: FieldInfo) -> str:
    """`` ≥ 1``, `` in (0, 1)``, ... from the field's constraints."""
    lower = upper = ""
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            lower = f"≥ {item.ge:g}"
        elif isinstance(item, annotated_types.Gt):
            lower = f"> {item.gt:g}"
        elif isinstance(item, annotated_types.Le):
            upper = f"≤ {item.le:g}"
        elif isinstance(item, annotated_types.Lt):
            upper = f"< {item.lt:g}"
        elif isinstance(item, annotated_types.MinLen):
            lower = f"at least {item.min_length} long"
    return ", " + ", ".join(b for b in (lower, upper) if b) if lower or upper else ""


def _default_text(field: FieldInfo, defaults: dict[str, Any] | None, name: str) -> str:
    if defaults is not None and name in defaults:
        return code(_yaml_scalar(defaults[name]))
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, Path):
        value = str(value)
    return code(_yaml_scalar(value))


def _mapping_default(field: FieldInfo, defaults: dict[str, Any] | None, name: str) -> str:
    value = defaults.get(name) if defaults is not None else field.get_default(call_default_factory=True)
    if not value:
        return "none"
    return ", ".join(code(str(key)) for key in value)


def _yaml_scalar(value: Any) -> str:
    """``value`` as it would be written in the YAML file (flow style)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**6).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()
