"""Training objective with sampled negatives: the answer and ``k`` negatives per query, weighted."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mocme.models.base import KGModel, ScorerScores
from mocme.training.losses import loss_rows, weighted_negative_loss

NegativeWeights = Callable[[Tensor, Tensor], Tensor]
"""``(scores, valid) -> weights``, all ``(B, k)``: how much each sampled negative counts (rows sum to 1)."""


def sampled_losses(
    model: KGModel,
    queries: Tensor,
    targets: Tensor,
    negatives: Tensor,
    valid: Tensor,
    weigh: NegativeWeights,
    smoothing: float = 0.0,
    denominators: Callable[[Tensor], Tensor] | None = None,
    scorer_scores: Callable[..., dict[str, ScorerScores]] | None = None,
) -> dict[str, Tensor]:
    """Each scorer's loss on ``(B, 1 + k)`` candidates: the answer, then the sampled negatives.

    Args:
        queries: ``(B, 2)``; ``targets`` ``(B,)``; ``negatives`` and ``valid`` ``(B, k)``, all on
            the model's device.
        weigh: the strategy's weights of the valid negatives (see :data:`NegativeWeights`).
        smoothing: label smoothing ε: targets ``1 - ε`` and ``ε``.
        denominators: maps this process's per-head row counts ``(H,)`` to the denominators to
            use (data-parallel training: their mean over processes); default: the counts.
        scorer_scores: replaces ``model.scorer_scores`` (e.g. a compiled version of it).

    Returns:
        ``{head: loss}`` (differentiable), plus ``regularization`` when the model adds one.
    """
    candidates = torch.cat([targets.unsqueeze(1), negatives], 1)
    heads = (scorer_scores or model.scorer_scores)(queries, candidates)
    parts = {}
    for name, head in heads.items():
        scores = head.scores.float()
        available = None if head.available is None else head.available.expand_as(scores)
        neg_valid = valid if available is None else valid & available[:, 1:]
        parts[name] = (scores, weigh(scores[:, 1:], neg_valid), None if available is None else available[:, 0])
    rows = torch.stack([loss_rows(weights, positive_valid) for _, weights, positive_valid in parts.values()])
    if denominators is not None:
        rows = denominators(rows)
    losses = {}
    for (name, (scores, weights, positive_valid)), count in zip(parts.items(), rows, strict=True):
        losses[name] = weighted_negative_loss(scores[:, 0], scores[:, 1:], weights, positive_valid, smoothing, count)
    penalty = model.regularization()
    if penalty.requires_grad:
        losses["regularization"] = penalty
    return losses
