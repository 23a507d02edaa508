"""The floor a trained model must clear: a ranker that knows nothing about the query entity."""

from __future__ import annotations

import torch
from torch import Tensor

from mocme.data.kg import MultiModalKG


class RelationPopularity:
    """Scores each candidate by how often it answers the query's relation, in that direction, in
    the training triples (``score_all`` like a model's, so the evaluator ranks it the same way)."""

    def __init__(self, kg: MultiModalKG):
        heads, relations, tails = kg.train.unique(dim=0).unbind(1)
        counts = torch.zeros(2 * kg.num_relations, kg.num_entities)
        counts.index_put_((relations, tails), torch.ones(len(tails)), accumulate=True)  # (h, r, ?) answers
        counts.index_put_((relations + kg.num_relations, heads), torch.ones(len(heads)), accumulate=True)
        self.counts = counts

    def score_all(self, queries: Tensor) -> Tensor:
        """``(B, 2)`` queries ``(entity, relation or relation + R)`` -> ``(B, N)`` scores."""
        return self.counts[queries[:, 1].cpu()].clone()
