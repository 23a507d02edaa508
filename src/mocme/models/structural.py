"""Structure-only baselines: a learned entity table and one scoring function."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mocme.models.base import Candidates, KGModel, ScorerScores, ScorerTable, candidate_set, score_candidates
from mocme.models.dropout import Dropout
from mocme.models.interactions import Interaction


class StructuralModel(KGModel):
    """Entity embeddings ``(N, d)`` scored by ``interaction``: TransE, DistMult, ComplEx, RotatE, TuckER."""

    def __init__(
        self,
        num_entities: int,
        num_relations: int,
        interaction: Interaction,
        dropout: float = 0.0,
        init_scale: float | None = None,
    ):
        super().__init__(num_entities, num_relations)
        self.entity = nn.Parameter(torch.randn(num_entities, interaction.dim) / math.sqrt(interaction.dim))
        self.interaction = interaction
        self.dropout = Dropout(dropout)
        if init_scale is not None:  # kbc: every vector small, so that N3 and Adagrad start from the origin
            with torch.no_grad():
                self.entity.normal_(0.0, init_scale)
                relation = getattr(interaction, "relation", None)
                if isinstance(relation, nn.Parameter):
                    relation.normal_(0.0, init_scale)

    def scorer_tables(self, queries: Tensor) -> dict[str, ScorerTable]:
        """The scoring table; its ``subject`` is the query entity's embedding before dropout, which is
        what N3 and DURA penalise."""
        subject = F.embedding(queries[:, 0], self.entity)
        q = self.interaction.query(self.dropout(subject), queries[:, 1])
        return {"structure": ScorerTable(self.interaction, q, self.entity, subject=subject, relations=queries[:, 1])}

    def scorer_scores(self, queries: Tensor, candidates: Candidates = None) -> dict[str, ScorerScores]:
        h = self.dropout(F.embedding(queries[:, 0], self.entity))
        q = self.interaction.query(h, queries[:, 1])
        cset = candidate_set(candidates, self.num_entities, queries.device)
        if cset.per_row:  # straight from the table: no (U, d) copy in between
            scores = self.interaction.score_gathered(q, self.entity, cset.entities)
        else:
            table = self.entity if cset.ids is None else F.embedding(cset.ids, self.entity)
            scores = score_candidates(self.interaction, q, table, cset)
        return {"structure": ScorerScores(scores)}
