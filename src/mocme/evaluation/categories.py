"""Relation categories 1-1, 1-N, N-1, N-N from training statistics (Bordes et al., 2013)."""

from __future__ import annotations

import torch
from torch import Tensor

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
THRESHOLD = 1.5


def _mean_group_size(keys: Tensor, groups: Tensor, num_groups: int) -> Tensor:
    """For each group, the mean number of rows per distinct key; shape ``(num_groups,)``."""
    pairs, counts = torch.unique(torch.stack([groups, keys], 1), dim=0, return_counts=True)
    total = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, pairs[:, 0], counts.double())
    distinct = torch.zeros(num_groups, dtype=torch.float64).index_add_(
        0, pairs[:, 0], torch.ones(len(pairs), dtype=torch.float64)
    )
    return total / distinct.clamp_min(1)


def relation_categories(train: Tensor, num_relations: int) -> Tensor:
    """Category index (into :data:`CATEGORIES`) of each relation, shape ``(R,)``.

    Tails per head (tph) and heads per tail (hpt) are averaged over distinct triples; a side is
    "N" when its average is at least 1.5. Relations without training triples count as 1-1.
    """
    triples = torch.unique(train, dim=0) if len(train) else train
    h, r, t = triples.unbind(1)
    tails_per_head = _mean_group_size(h, r, num_relations)
    heads_per_tail = _mean_group_size(t, r, num_relations)
    many_tails = (tails_per_head >= THRESHOLD).long()
    many_heads = (heads_per_tail >= THRESHOLD).long()
    return many_tails + 2 * many_heads  # 0: 1-1, 1: 1-N, 2: N-1, 3: N-N
