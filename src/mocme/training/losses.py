"""Losses on scores (logits). ``BCEWithLogits``-style everywhere, never sigmoid + BCE."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def loss_rows(weights: Tensor, positive_valid: Tensor | None = None) -> Tensor:
    """The queries a :func:`weighted_negative_loss` averages over: rows with a positive or a negative term."""
    if positive_valid is None:
        return weights.new_tensor(float(len(weights)))
    return (positive_valid | (weights.sum(-1) > 0)).sum().to(weights.dtype)


def weighted_negative_loss(
    positive: Tensor,
    negative: Tensor,
    weights: Tensor,
    positive_valid: Tensor | None = None,
    smoothing: float = 0.0,
    rows: Tensor | None = None,
) -> Tensor:
    """``-log σ(s_pos) - Σ_i π_i log(1 - σ(s_i))``, averaged over queries.

    Args:
        positive: ``(B,)`` scores of the true answers.
        negative: ``(B, C)`` scores of the negatives.
        weights: ``(B, C)``, detached, each row summing to 1 (or 0 when it has no valid negative).
        positive_valid: ``(B,)`` bool, rows whose positive term counts (a head may be undefined).
        smoothing: label smoothing ε: targets ``1 - ε`` and ``ε``.
        rows: the denominator (default :func:`loss_rows`; data-parallel training passes the mean
            over processes, so that the averaged gradient is that of the whole global batch).
    """
    pos_term = F.binary_cross_entropy_with_logits(
        positive, positive.new_full(positive.shape, 1 - smoothing), reduction="none"
    )
    neg_term = F.binary_cross_entropy_with_logits(
        negative, negative.new_full(negative.shape, smoothing), reduction="none"
    )
    neg_term = (weights * neg_term).sum(-1)
    if positive_valid is not None:
        pos_term = pos_term * positive_valid
    rows = loss_rows(weights, positive_valid) if rows is None else rows
    return (pos_term + neg_term).sum() / rows.clamp_min(1)


def one_to_n_loss(scores: Tensor, targets: Tensor, available: Tensor | None = None, smoothing: float = 0.0) -> Tensor:
    """Binary cross-entropy of every candidate against multi-hot ``targets``, as in TuckER/MoMoK.

    Args:
        scores: ``(B, N)``.
        targets: ``(B, N)`` in {0, 1}.
        available: optional bool mask broadcastable to ``(B, N)``: entries that count.
        smoothing: ``y ← (1 - ε) y + ε / N``.
    """
    if smoothing:
        targets = (1 - smoothing) * targets + smoothing / scores.shape[-1]
    loss = F.binary_cross_entropy_with_logits(scores, targets, reduction="none")
    if available is None:
        return loss.mean()
    available = available.expand_as(loss)
    return (loss * available).sum() / available.sum().clamp_min(1)
