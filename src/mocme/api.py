"""``mocme.train``: one call from a config (object, mapping, YAML file or keyword sections) to a run.

Everything else the top-level package offers is re-exported as it is: :func:`mocme.evaluate` is
:func:`mocme.evaluation.evaluate`, :func:`mocme.predict` is :func:`mocme.inductive.predict` (which is
:func:`mocme.prediction.predict` with ``new_entities``), and so on (see :mod:`mocme`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from mocme.config import RunConfig, read_config, validate_config
from mocme.data.kg import MultiModalKG
from mocme.errors import ConfigError
from mocme.pipeline import EpochCallback, RunResult
from mocme.pipeline import train as train_run

ConfigLike = RunConfig | Mapping[str, Any] | str | os.PathLike[str] | None


def make_config(config: ConfigLike = None, **sections: Any) -> RunConfig:
    """A validated :class:`~mocme.config.RunConfig` from a config, a mapping or a YAML file, plus overrides.

    Args:
        config: a ``RunConfig``, a mapping shaped like the YAML file, the path of a YAML run
            config, or ``None`` for the defaults (MoCME on the built-in synthetic graph).
        sections: overrides merged into ``config`` key by key: a section as a mapping
            (``training={"epochs": 20}`` changes only the epochs), a top-level value
            (``seed=3``), or a dotted key (``**{"model.dim": 128}``).

    Raises:
        ConfigError: an unknown key or an invalid value, in one line naming it.
    """
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(config, RunConfig):
        data, source = config.model_dump(), "RunConfig"
    elif isinstance(config, Mapping):
        data, source = _plain(config), "config mapping"
    elif isinstance(config, str | os.PathLike):
        data, source, lines = read_config(config)
    elif config is not None:
        raise ConfigError(
            f"config must be a RunConfig, a mapping or the path of a YAML file, got {type(config).__name__}"
        )
    else:
        data, source = {}, "defaults"
    for key, value in sections.items():
        path = tuple(key.split("."))
        _merge(data, path, value)
        lines = {k: v for k, v in lines.items() if k[: len(path)] != path}  # not from the file any more
    if sections:
        source = f"{source} + keyword arguments"
    return validate_config(data, source, lines)


def train(
    config: ConfigLike = None,
    out: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    kg: MultiModalKG | None = None,
    progress: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    **sections: Any,
) -> RunResult:
    """Train a run: select on the validation split, score the test split once, save everything in ``out``.

    Args:
        config: a ``RunConfig``, a mapping, a YAML file, or ``None`` (defaults); see :func:`make_config`.
        out: the run directory to create (default: ``runs/<dataset>-<model>-<time>``).
        overwrite: replace an existing run directory.
        kg: an already loaded graph to train on instead of ``config.dataset`` (the run directory
            still records ``config.dataset``, so pass the same ``kg`` to ``load_run``/``resume``).
        progress: show progress bars.
        callbacks: called with every epoch's trace record (losses, ``valid`` metrics when evaluated).
        sections: config overrides, e.g. ``training={"epochs": 20}, model={"dim": 128}, seed=1``.

    Returns:
        :class:`~mocme.pipeline.RunResult`: ``directory``, ``kg``, ``model`` (at the selected
        checkpoint, in eval mode) and ``metrics`` (as in ``metrics.json``).

    Example::

        import mocme

        result = mocme.train(training={"epochs": 20}, out="runs/api")
        print(result.metrics["test"]["both"]["realistic"]["inverse_harmonic_mean_rank"])
    """
    run_config = make_config(config, **sections)
    return train_run(run_config, out, overwrite=overwrite, kg=kg, progress=progress, callbacks=callbacks)


def _merge(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``data[path]``; a mapping value is merged into an existing section instead of replacing it."""
    target = data
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    key = path[-1]
    if isinstance(value, Mapping) and isinstance(target.get(key), dict):
        for child_key, child_value in value.items():
            _merge(target[key], (str(child_key),), child_value)
    else:
        target[key] = _plain(value)


def _plain(value: Any) -> Any:
    """A deep copy in which every mapping (a read-only or custom one too) is a plain ``dict``."""
    if isinstance(value, Mapping):
        return {str(key): _plain(child) for key, child in value.items()}
    return copy.deepcopy(value)
