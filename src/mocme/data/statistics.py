"""Per-relation statistics of a set of triples."""

from __future__ import annotations

import torch
from torch import Tensor


def _mean_group_size(keys: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """For each group, the mean number of rows per distinct key; shape ``(num_groups,)``."""
    pairs, counts = torch.unique(torch.stack([groups, keys], 1), dim=0, return_counts=True)
    total = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, pairs[:, 0], counts.double())
    distinct = torch.zeros(num_groups, dtype=torch.float64).index_add_(
        0, pairs[:, 0], torch.ones(len(pairs), dtype=torch.float64)
    )
    return total / distinct.clamp_min(1)


def relation_cardinality(triples: Tensor, num_relations: int) -> tuple[Tensor, Tensor]:
    """Tails per head and heads per tail of each relation, over distinct triples; each ``(R,)``."""
    triples = torch.unique(triples, dim=0) if len(triples) else triples.reshape(0, 3)
    h, r, t = triples.long().unbind(1)
    return _mean_group_size(h, r, num_relations), _mean_group_size(t, r, num_relations)
