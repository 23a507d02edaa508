"""Rank-based metrics with PyKEEN's names, per side and per rank type."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

RANK_TYPES = ("realistic", "optimistic", "pessimistic")
SIDES = ("both", "head", "tail")
DEFAULT_KS = (1, 3, 10)
SELECTION_METRIC = "both.realistic.inverse_harmonic_mean_rank"
"""The default validation metric that runs select on: the realistic MRR over both directions."""

# PyKEEN's metric names, with the short labels used in tables.
SHORT_NAMES = {
    "inverse_harmonic_mean_rank": "MRR",
    "arithmetic_mean_rank": "MR",
}


def hits_name(k: int) -> str:
    return f"hits_at_{k}"


def short_name(metric: str) -> str:
    if metric.startswith("hits_at_"):
        return f"Hits@{metric.removeprefix('hits_at_')}"
    return SHORT_NAMES.get(metric, metric)


def rank_metrics(ranks: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """MRR, MR and Hits@k of a vector of (possibly fractional) ranks; empty input gives NaN."""
    ranks = ranks.double()
    if len(ranks) == 0:
        nan = float("nan")
        return {"inverse_harmonic_mean_rank": nan, "arithmetic_mean_rank": nan, **{hits_name(k): nan for k in ks}}
    out = {
        "inverse_harmonic_mean_rank": float(ranks.reciprocal().mean()),
        "arithmetic_mean_rank": float(ranks.mean()),
    }
    for k in ks:
        out[hits_name(k)] = float((ranks <= k).double().mean())
    return out


def side_metrics(
    optimistic: Tensor, pessimistic: Tensor, is_head: Tensor, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, dict]:
    """``{side: {rank_type: {metric: value}}}`` plus ``count`` per side."""
    realistic = (optimistic + pessimistic) / 2
    ranks = {"realistic": realistic, "optimistic": optimistic, "pessimistic": pessimistic}
    selections = {"both": torch.ones_like(is_head), "head": is_head, "tail": ~is_head}
    out: dict[str, dict] = {}
    for side, selected in selections.items():
        out[side] = {kind: rank_metrics(r[selected], ks) for kind, r in ranks.items()}
        out[side]["count"] = int(selected.sum())
    return out


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """``{"both": {"realistic": {"hits_at_10": x}}}`` -> ``{"both.realistic.hits_at_10": x}``."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat
