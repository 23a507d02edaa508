"""mocme: multimodal knowledge graph completion with MoCME (Mixture of Complementary Modality Experts).

The objects most users need, importable from here::

    import mocme

    result = mocme.train(training={"epochs": 20}, out="runs/api")      # MoCME on the synthetic graph
    metrics = mocme.evaluate(result.model, result.kg, "test")            # filtered ranking metrics
    answers = mocme.predict(result.model, result.kg, "e003", "r5", top=5, explain=True)
    vector = result.kg.modalities["text"].features[3]                 # an entity not in the graph, by its features
    answers = mocme.predict(result.model, result.kg, "new", "r5", new_entities={"new": {"text": vector}})

    kg = mocme.load_dataset("pykeen:Nations")                           # or a benchmark, or a directory
    config, kg, model = mocme.load_run("runs/api")                      # a saved run, best checkpoint

- :func:`train` (:mod:`mocme.api`): a run from a :class:`RunConfig`, a mapping, a YAML file or
  keyword sections; :func:`resume` continues a killed one; :func:`load_run` loads a saved one.
- :func:`load_dataset` -> :class:`MultiModalKG`; :class:`MoCME` (with :class:`ModelConfig`) is
  the model; :func:`evaluate` and :func:`predict` work on any model and graph; ``predict`` also
  places entities that are not in the graph from their modalities (:mod:`mocme.inductive`:
  :class:`NewEntity`, :func:`add_entities`).
- :func:`load_config` reads a YAML run config with ``key.path=value`` overrides.

The names are imported on first use, so ``import mocme`` (and ``mocme --version``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mocme.version import package_version

__version__ = package_version()

if TYPE_CHECKING:
    from mocme.api import train
    from mocme.config import RunConfig, load_config
    from mocme.data.kg import MultiModalKG
    from mocme.data.loading import load_dataset
    from mocme.evaluation import evaluate
    from mocme.inductive import NewEntity, add_entities, predict
    from mocme.models import MoCME, ModelConfig
    from mocme.pipeline import RunResult, load_run, resume

_EXPORTS = {
    "train": "mocme.api",
    "resume": "mocme.pipeline",
    "load_run": "mocme.pipeline",
    "RunResult": "mocme.pipeline",
    "RunConfig": "mocme.config",
    "load_config": "mocme.config",
    "load_dataset": "mocme.data.loading",
    "MultiModalKG": "mocme.data.kg",
    "MoCME": "mocme.models",
    "ModelConfig": "mocme.models",
    "evaluate": "mocme.evaluation",
    "predict": "mocme.inductive",
    "NewEntity": "mocme.inductive",
    "add_entities": "mocme.inductive",
}

__all__ = [  # spelled out for static tools; the same names as _EXPORTS
    "MoCME",
    "ModelConfig",
    "MultiModalKG",
    "NewEntity",
    "RunConfig",
    "RunResult",
    "__version__",
    "add_entities",
    "evaluate",
    "load_config",
    "load_dataset",
    "load_run",
    "predict",
    "resume",
    "train",
]


def __getattr__(name: str) -> Any:
    """Import an exported name on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mocme' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
