"""The model contract: ``score(triples)`` and ``score_all(queries)``; everything builds on these.

Queries are ``(entity, relation')`` pairs with ``relation' < 2R``: ids ``r >= R`` are the
reciprocals, so head prediction ``(?, r, t)`` is the query ``(t, r + R)``.

Models may have several scorers (MoCME has one per modality plus a unified one). Training
sums the scorers' losses over :meth:`KGModel.scorer_scores`; ranking and prediction use the scorers'
joint decision, :meth:`KGModel.score_all`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

Candidates = None | slice | Tensor


class ScorerScores(NamedTuple):
    """One scorer's scores and where they are defined.

    ``scores`` has shape ``(B, C)``; ``available`` is ``None`` (everywhere) or a bool tensor that
    broadcasts to ``(B, C)``: a modality scorer is undefined where the query or the candidate
    entity lacks that modality.
    """

    scores: Tensor
    available: Tensor | None = None


@dataclass
class ScorerTable:
    """One scorer's query vectors and the vectors of every entity, for scoring all entities in pieces.

    ``interaction.score_all(query, table[a:b])`` gives the scorer's scores of entities ``a:b``;
    a modality scorer is defined where both ``query_available`` and ``table_available`` hold.

    Attributes:
        interaction: the scorer's scoring function (its ``score_all`` uses no parameters of its own).
        query: ``(B, d)`` query vectors.
        table: ``(N, d)`` candidate vectors of all entities.
        query_available: ``(B,)`` bool, or ``None`` (everywhere).
        table_available: ``(N,)`` bool, or ``None`` (everywhere).
        subject: ``(B, d)`` the query entity's vectors that ``query`` was made from (before any
            input dropout), and
        relations: ``(B,)`` the query relations; both for regularisers (N3, DURA), ``None`` if unknown.
    """

    interaction: nn.Module
    query: Tensor
    table: Tensor
    query_available: Tensor | None = None
    table_available: Tensor | None = None
    subject: Tensor | None = None
    relations: Tensor | None = None

    def scores(self, start: int, end: int, query: Tensor | None = None, table: Tensor | None = None) -> ScorerScores:
        """Scores of entities ``start:end``, shape ``(B, end - start)``.

        ``query`` and ``table`` replace ``self.query`` and ``self.table[start:end]`` (for example
        detached copies, to run the backward pass chunk by chunk).
        """
        query = self.query if query is None else query
        table = self.table[start:end] if table is None else table
        scores = self.interaction.score_all(query, table)
        if self.query_available is None:
            return ScorerScores(scores)
        available = self.query_available.unsqueeze(1) & self.table_available[start:end].unsqueeze(0)
        return ScorerScores(scores, available)


class KGModel(nn.Module):
    """Base class of all link-prediction models.

    Args:
        num_entities: ``N``.
        num_relations: ``R``, the original relations (the model holds ``2R``).
    """

    def __init__(self, num_entities: int, num_relations: int):
        super().__init__()
        self.num_entities = num_entities
        self.num_relations = num_relations

    # -- to implement ----------------------------------------------------------------------------
    def scorer_scores(self, queries: Tensor, candidates: Candidates = None) -> dict[str, ScorerScores]:
        """Scores of every scorer.

        Args:
            queries: shape ``(B, 2)``.
            candidates: ``None`` (all ``N`` entities), a ``slice`` of entity ids, a ``(C,)`` tensor
                shared by all rows, or a ``(B, k)`` tensor of per-row candidates.

        Returns:
            ``{scorer name: ScorerScores}`` with scores of shape ``(B, C)`` (or ``(B, k)``).
        """
        raise NotImplementedError

    def scorer_tables(self, queries: Tensor) -> dict[str, ScorerTable]:
        """Every scorer's query vectors and all-entity table, for ``queries`` ``(B, 2)``.

        ``scorer_tables(q)[h].scores(0, N)`` equals ``scorer_scores(q)[h]``; scoring the table in
        slices bounds memory by ``B × slice`` instead of ``B × N``.
        """
        raise NotImplementedError

    def combine(self, scorers: dict[str, ScorerScores]) -> Tensor:
        """The joint decision of the scorers, higher is better; shape ``(B, C)``."""
        (only,) = scorers.values()
        return only.scores

    def regularization(self) -> Tensor:
        """A penalty added to the training loss (0 by default)."""
        return torch.zeros((), device=self.device)

    # -- built on the above ------------------------------------------------------------------------
    def score_all(self, queries: Tensor, candidates: Candidates = None) -> Tensor:
        """Joint scores of candidates for each query; ``(B, 2) -> (B, C)`` (``N`` when ``None``)."""
        return self.combine(self.scorer_scores(queries, candidates))

    def forward(self, queries: Tensor, candidates: Candidates = None) -> Tensor:
        """Same as :meth:`score_all`."""
        return self.score_all(queries, candidates)

    def score(self, triples: Tensor) -> Tensor:
        """Joint scores of triples ``(h, r', t)``; ``(B, 3) -> (B,)``."""
        return self.score_all(triples[:, :2], triples[:, 2:3]).squeeze(1)

    @contextlib.contextmanager
    def precomputed(self) -> Iterator[None]:
        """Within this context the model may cache per-pass work (e.g. every entity's encoding).

        Use it only while the parameters do not change (evaluation, prediction).
        """
        yield

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


@dataclass(frozen=True)
class CandidateSet:
    """Which entities a scoring call needs, in the form that scores them cheapest.

    Attributes:
        ids: ``(U,)`` entity ids to represent once, or ``None`` for all ``N`` entities in order.
        columns: ``None`` when every row is scored against every id (result ``(B, U)``), else
            ``(B, k)`` positions into ``ids``: each row's own candidates (result ``(B, k)``).
        per_row: score each row's ``columns`` only (:meth:`Interaction.score_gathered`) instead of one
            ``(B, U)`` matrix multiply followed by a gather (cheaper when ``U`` is much larger than ``k``).
        entities: ``(B, k)`` entity ids of the per-row candidates (``ids[columns]``), or ``None``;
            a model whose entity vectors are a plain table scores these directly.
    """

    ids: Tensor | None
    columns: Tensor | None = None
    per_row: bool = False
    entities: Tensor | None = None


# One multiply-add of a (B, U) GEMM costs far less than one gathered (B, k, d) element with its
# scatter-add backward; a GEMM over the unique candidates wins until U exceeds about this many k.
GEMM_OVER_GATHER = 64


def candidate_set(candidates: Candidates, num_entities: int, device: torch.device) -> CandidateSet:
    """Normalise a candidate spec (see :meth:`KGModel.scorer_scores`) into a :class:`CandidateSet`."""
    if candidates is None:
        return CandidateSet(None)
    if isinstance(candidates, slice):
        return CandidateSet(torch.arange(num_entities, device=device)[candidates])
    if candidates.ndim == 1:
        return CandidateSet(candidates)
    ids, columns = unique_inverse(candidates, num_entities)
    per_row = len(ids) > GEMM_OVER_GATHER * candidates.shape[1]
    return CandidateSet(ids, columns, per_row, candidates)


def unique_inverse(values: Tensor, num_entities: int) -> tuple[Tensor, Tensor]:
    """Sorted distinct entity ids ``(U,)`` of ``values`` and each value's position among them.

    Same result as ``torch.unique(values, return_inverse=True)``; when the ids are dense (many
    values, few entities) a presence bitmap and a prefix sum replace the sort.
    """
    if num_entities > 8 * values.numel():
        return torch.unique(values, return_inverse=True)
    present = torch.zeros(num_entities, dtype=torch.bool, device=values.device)
    present[values] = True
    position = torch.cumsum(present, 0) - 1
    return present.nonzero().squeeze(1), position[values].view_as(values)


def score_candidates(interaction: nn.Module, q: Tensor, table: Tensor, cset: CandidateSet) -> Tensor:
    """Scores of ``q`` ``(B, d)`` against candidate vectors ``table`` ``(U, d)`` laid out by ``cset``."""
    if cset.columns is None:
        return interaction.score_all(q, table)
    if cset.per_row:
        return interaction.score_gathered(q, table, cset.columns)
    return interaction.score_all(q, table).gather(1, cset.columns)


def select_candidates(values: Tensor, cset: CandidateSet) -> Tensor:
    """Per-candidate values ``(U, ...)`` laid out like the scores: ``(U, ...)`` or ``(B, k, ...)``."""
    return values if cset.columns is None else values[cset.columns]
