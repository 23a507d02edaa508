"""A compressed (CSR) index of the known answers of every query ``(e, r')``.

Relations are doubled with reciprocals: ``r' < R`` asks for tails of ``(e, r')`` and
``r' = r + R`` asks for heads of ``(?, r, e)``. The index is built once, in a few vectorised
passes, and never mutated.
"""

from __future__ import annotations

import torch
from torch import Tensor


class FilterIndex:
    """All answers ``a`` of known triples, keyed by the query ``(e, r')``.

    Args:
        triples: shape ``(n, 3)``, ``(h, r, t)`` with ``r < num_relations``.
        num_entities: ``N``.
        num_relations: ``R`` (original relations; queries use ids below ``2R``).
    """

    def __init__(self, triples: Tensor, num_entities: int, num_relations: int):
        self.num_entities = num_entities
        self.num_relations = num_relations
        h, r, t = triples.long().unbind(1)
        query_entity = torch.cat([h, t])
        query_relation = torch.cat([r, r + num_relations])
        answer = torch.cat([t, h])
        keys = query_entity * (2 * num_relations) + query_relation
        # Sorted, de-duplicated codes (query key, answer): membership tests search these.
        self.codes = torch.unique(keys * num_entities + answer)
        code_keys = self.codes // num_entities
        self.answers = self.codes % num_entities
        self.keys, counts = torch.unique_consecutive(code_keys, return_counts=True)
        self.offsets = torch.zeros(len(self.keys) + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=self.offsets[1:])

    def __len__(self) -> int:
        """Number of distinct (query, answer) pairs."""
        return len(self.codes)

    def _key(self, queries: Tensor) -> Tensor:
        return queries[:, 0].long() * (2 * self.num_relations) + queries[:, 1].long()

    def _ranges(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """Start offset and number of answers of each query; shapes ``(B,)``."""
        keys = self._key(queries)
        if len(self.keys) == 0:
            zeros = torch.zeros_like(keys)
            return zeros, zeros
        pos = torch.searchsorted(self.keys, keys).clamp_(max=len(self.keys) - 1)
        found = self.keys[pos] == keys
        starts = self.offsets[pos]
        counts = torch.where(found, self.offsets[pos + 1] - starts, 0)
        return starts, counts

    def count(self, queries: Tensor) -> Tensor:
        """Number of known answers of each query; shape ``(B,)``."""
        return self._ranges(queries)[1]

    def pairs(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """Every known answer of each query as ``(row, entity)`` pairs; shapes ``(P,)``.

        ``row`` indexes ``queries``; rows are in increasing order.
        """
        starts, counts = self._ranges(queries)
        total = int(counts.sum())
        rows = torch.repeat_interleave(torch.arange(len(queries)), counts, output_size=total)
        shift = (starts - (torch.cumsum(counts, 0) - counts)).index_select(0, rows)  # answer index - pair index
        return rows, self.answers.index_select(0, shift.add_(torch.arange(total)))

    def answers_of(self, entity: int, relation: int) -> Tensor:
        """Known answers of one query ``(entity, relation)``; shape ``(k,)``."""
        return self.pairs(torch.tensor([[entity, relation]]))[1]

    def contains(self, queries: Tensor, candidates: Tensor) -> Tensor:
        """Whether each candidate is a known answer of its row's query.

        Args:
            queries: shape ``(B, 2)``.
            candidates: shape ``(B, k)`` entity ids.

        Returns:
            bool tensor of shape ``(B, k)``.
        """
        codes = self._key(queries).unsqueeze(1) * self.num_entities + candidates.long()
        if len(self.codes) == 0:
            return torch.zeros_like(codes, dtype=torch.bool)
        pos = torch.searchsorted(self.codes, codes).clamp_(max=len(self.codes) - 1)
        return self.codes[pos] == codes
