"""``mocme ls``: the registered components a config can name, with one-line descriptions.

Names come from the registries and the config's choices themselves (``mocme.models.MODELS``,
``mocme.data.registry.BENCHMARKS``, the training strategies of ``mocme.training.strategies`` with
the loss kernels they use, the ``training.egns.selection`` and ``training.regularizer`` choices),
so a new component shows up here on its own; strategies describe themselves by their docstrings,
the descriptions of the other config choices live below and a test checks that every choice has one.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from enum import Enum
from typing import Annotated, Any

import typer

from mocme.cli.app import JsonOption, app

# How EGNS turns its weights into the negatives it trains on.
EGNS_SELECTIONS = {
    "weight": "every pool negative, weighted by pi",
    "topk": "the training.egns.keep negatives of largest pi, reweighted",
    "sample": "training.egns.keep negatives drawn with probability pi, weighted equally",
}
# Where EGNS draws its candidate pool from.
EGNS_POOLS = {
    "sampled": "training.num_negatives entities drawn uniformly (never a known answer)",
    "all": "every entity (a 1-N pass per batch)",
}
# Penalties on the factors of a batch's triples.
REGULARIZERS = {
    "none": "no penalty",
    "n3": "weighted nuclear 3-norm of each triple's factors (Lacroix et al., 2018), weight training.regularizer_weight",
    "dura": "squared norms of the query vector and the answer (Zhang et al., 2020), weight training.regularizer_weight",
}


class Kind(str, Enum):
    models = "models"
    datasets = "datasets"
    losses = "losses"
    samplers = "samplers"


@app.command("ls")
def ls(
    kind: Annotated[
        Kind | None,
        typer.Argument(
            metavar="KIND",
            help="What to list: models, datasets, losses or samplers (default: all).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List the components a run config can name, with one-line descriptions.

    The 'setting' column is what to put in a config (or after --set) to
    use each one, e.g. mocme train --set model.name=distmult.
    """
    kinds = [kind] if kind is not None else list(Kind)
    listing = {k.value: LISTERS[k.value]() for k in kinds}
    if as_json:
        typer.echo(json.dumps(listing, indent=2))
        return
    from mocme.tables import render

    tables = [
        render(["name", "setting", "description"], [[r["name"], r["setting"], r["description"]] for r in rows], title=k)
        for k, rows in listing.items()
    ]
    typer.echo("\n\n".join(tables))


def models() -> list[dict[str, str]]:
    """``model.name`` choices: MoCME and the structure-only baselines, named by their scoring function."""
    from mocme.models import INTERACTIONS, MODELS, MoCME, interactions

    rows = []
    for name in MODELS:
        if name == "mocme":
            description = f"multimodal: {_first_line(MoCME)}"
        else:
            cls = INTERACTIONS[name]
            description = f"structure only: {_bullet(interactions, cls.__name__) or _first_line(cls)}"
        rows.append({"name": name, "setting": f"model.name={name}", "description": description})
    return rows


def datasets() -> list[dict[str, str]]:
    """``dataset.name`` choices: the synthetic graph, the known benchmarks and PyKEEN's datasets."""
    from mocme.data import synthetic
    from mocme.data.registry import BENCHMARKS

    rows = [{"name": "synthetic", "setting": "dataset.name=synthetic", "description": _first_line(synthetic)}]
    for spec in BENCHMARKS.values():
        text = f"; entity text: {spec.text}" if spec.text else ""
        rows.append({"name": spec.name, "setting": f"dataset.name={spec.name}", "description": spec.description + text})
    rows.append(
        {
            "name": "pykeen:NAME",
            "setting": "dataset.name=pykeen:Nations",
            "description": "any PyKEEN dataset (Nations, Kinships, UMLS ship with pykeen; others download); "
            "structure only; the 'peer' extra",
        }
    )
    rows.append(
        {
            "name": "DIRECTORY",
            "setting": "dataset.name=path/to/graph",
            "description": "your own graph: mocme's layout, OpenKE (*2id.txt) or train/dev/test.tsv name triples",
        }
    )
    return rows


def losses() -> list[dict[str, str]]:
    """The loss kernels of ``mocme.training.losses`` that a training strategy computes its loss with."""
    from mocme.training.strategies import STRATEGIES

    used_by: dict[str, list[str]] = {}
    kernels = {}
    for name, strategy in STRATEGIES.items():
        for kernel in strategy.kernels:
            used_by.setdefault(kernel.__name__, []).append(name)
            kernels[kernel.__name__] = kernel
    return [
        {"name": name, "setting": f"training.negatives={'|'.join(used_by[name])}", "description": _first_line(kernel)}
        for name, kernel in sorted(kernels.items())
    ]


def samplers() -> list[dict[str, str]]:
    """Training strategies (``training.negatives``), how EGNS selects and pools, and the regularisers."""
    from mocme.training.strategies import STRATEGIES

    rows = [
        {"name": name, "setting": f"training.negatives={name}", "description": _first_line(strategy)}
        for name, strategy in STRATEGIES.items()
    ]
    rows += [
        {"name": f"egns/{name}", "setting": f"training.egns.selection={name}", "description": EGNS_SELECTIONS[name]}
        for name in config_choices("egns.selection")
    ]
    rows += [
        {"name": f"egns pool/{name}", "setting": f"training.pool={name}", "description": EGNS_POOLS[name]}
        for name in config_choices("pool")
    ]
    rows += [
        {"name": f"regularizer/{name}", "setting": f"training.regularizer={name}", "description": REGULARIZERS[name]}
        for name in config_choices("regularizer")
    ]
    return rows


def config_choices(key: str) -> tuple[str, ...]:
    """The ``Literal`` choices of a ``training`` field, e.g. ``"pool"`` or ``"egns.selection"``."""
    from mocme.training.config import TrainingConfig

    model: Any = TrainingConfig
    *sections, field = key.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    return typing.get_args(model.model_fields[field].annotation)


def _first_line(obj: object) -> str:
    """The first sentence line of a docstring, without reST markup."""
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0].replace("``", "") if doc else ""


def _bullet(module: object, name: str) -> str:
    """A module docstring's ``- Name (citation): text`` bullet about ``name``, without the dash."""
    match = re.search(rf"^- ({re.escape(name)}\b.*)$", inspect.getdoc(module) or "", re.MULTILINE)
    return match.group(1).replace("``", "") if match else ""


LISTERS = {"models": models, "datasets": datasets, "losses": losses, "samplers": samplers}
