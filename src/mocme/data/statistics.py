"""Per-relation statistics of a set of triples."""

from __future__ import annotations

import torch
from torch import Tensor


def _mean_group_size(keys: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """For each group, the mean number of rows per distinct key; shape ``(num_groups,)``."""
    span = int(keys.max()) + 1 if len(keys) else 1
    codes, counts = torch.unique(groups * span + keys, return_counts=True)  # 1-D unique: far faster than dim=0
    pair_groups = codes // span
    total = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, pair_groups, counts.double())
    distinct = torch.zeros(num_groups, dtype=torch.float64).index_add_(
        0, pair_groups, torch.ones(len(codes), dtype=torch.float64)
    )
    return total / distinct.clamp_min(1)


def relation_cardinality(triples: Tensor, num_relations: int) -> tuple[Tensor, Tensor]:
    """Tails per head and heads per tail of each relation, over distinct triples; each ``(R,)``."""
    h, r, t = triples.long().reshape(-1, 3).unbind(1)
    if len(h):  # distinct triples, through one 1-D unique of (h, r, t) codes
        num_entities = int(torch.maximum(h.max(), t.max())) + 1
        codes = torch.unique((h * num_relations + r) * num_entities + t)
        h, r, t = codes // (num_relations * num_entities), codes // num_entities % num_relations, codes % num_entities
    return _mean_group_size(h, r, num_relations), _mean_group_size(t, r, num_relations)
