"""Relation categories 1-1, 1-N, N-1, N-N from training statistics (Bordes et al., 2013)."""

from __future__ import annotations

from torch import Tensor

from mocme.data.statistics import relation_cardinality

CATEGORIES = ("1-1", "1-N", "N-1", "N-N")
THRESHOLD = 1.5


def relation_categories(train: Tensor, num_relations: int) -> Tensor:
    """Category index (into :data:`CATEGORIES`) of each relation, shape ``(R,)``.

    Tails per head (tph) and heads per tail (hpt) are averaged over distinct triples; a side is
    "N" when its average is at least 1.5. Relations without training triples count as 1-1.
    """
    tails_per_head, heads_per_tail = relation_cardinality(train, num_relations)
    return (tails_per_head >= THRESHOLD).long() + 2 * (heads_per_tail >= THRESHOLD).long()
