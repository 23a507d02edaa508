"""Loss kernels on scores (logits): the one function each training strategy computes its loss with.

``BCEWithLogits``-style everywhere, never sigmoid + BCE. The all-entity kernels form their
gradient in the forward pass, so that no second ``(B, C)`` tensor is kept for the backward pass,
and score a block of candidate entities at a time (see :mod:`mocme.training.full`).
"""

from __future__ import annotations

import torch
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
    """``-log σ(s_pos) - Σ_i π_i log(1 - σ(s_i))``, averaged over queries (sampled negatives).

    Args:
        positive: ``(B,)`` scores of the true answers.
        negative: ``(B, C)`` scores of the negatives.
        weights: ``(B, C)``, detached, each row summing to 1 (or 0 when it has no valid negative).
        positive_valid: ``(B,)`` bool, rows whose positive term counts (a scorer may be undefined).
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


class _FormedGradient(torch.autograd.Function):
    """A loss ``value`` of ``scores`` whose gradient ``grad`` (shape of ``scores``) was formed with it."""

    @staticmethod
    def forward(ctx, scores: Tensor, value: Tensor, grad: Tensor) -> Tensor:
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (grad,) = ctx.saved_tensors
        return (grad if bool(grad_output == 1) else grad * grad_output), None, None


def with_gradient(scores: Tensor, value: Tensor, grad: Tensor) -> Tensor:
    """``value`` (a detached scalar computed from ``scores``) as a function of ``scores`` with gradient ``grad``.

    The all-entity kernels form their gradient while computing their value, so that no other
    ``(B, C)`` tensor is kept for the backward pass.
    """
    return _FormedGradient.apply(scores, value, grad)


@torch.no_grad()
def _weighted_bce_parts(
    scores: Tensor,
    weight: Tensor | None,
    target: float,
    label_rows: Tensor,
    label_cols: Tensor,
    label_target: float,
    denom: float | Tensor,
    parts: tuple[Tensor, Tensor] | None,
) -> tuple[Tensor, Tensor]:
    """Value and gradient ``w (σ(s) - y) / denom`` of :func:`weighted_bce` (``parts`` are overwritten)."""
    s = scores.detach().float()
    loss, grad = parts if parts is not None else (F.softplus(s), torch.sigmoid(s))
    if target:
        loss.sub_(s, alpha=target)
        grad.sub_(target)
    if len(label_rows):
        loss.index_put_((label_rows, label_cols), -label_target * s[label_rows, label_cols], accumulate=True)
        grad.index_put_((label_rows, label_cols), torch.full_like(grad[label_rows, label_cols], -label_target), True)
    if weight is not None:
        loss.mul_(weight)
        grad.mul_(weight)
    return loss.sum() / denom, grad.div_(denom)


def weighted_bce(
    scores: Tensor,
    weight: Tensor | None,
    denom: float | Tensor,
    target: float = 0.0,
    labels: tuple[Tensor, Tensor] | None = None,
    label_target: float = 0.0,
    parts: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """``Σ_ij w_ij BCE(s_ij, y_ij) / denom``; ``y = target`` except ``target + label_target`` at ``labels``.

    KvsAll (every known answer a positive, ``labels``) and EGNS over all entities (weights ``w``)
    train with it. ``parts``: float32 ``softplus(s)`` and ``σ(s)``, computed already by the caller;
    they are consumed.
    """
    rows, cols = labels if labels is not None else (scores.new_zeros(0, dtype=torch.long),) * 2
    return with_gradient(scores, *_weighted_bce_parts(scores, weight, target, rows, cols, label_target, denom, parts))


@torch.no_grad()
def _softmax_cross_entropy_parts(
    scores: Tensor,
    targets: Tensor,
    valid: Tensor | None,
    lse: Tensor,
    count: Tensor,
    smoothing: float,
    weight: Tensor,
    denom: float | Tensor,
    offsets: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """One block of candidates' share of a softmax cross-entropy whose row log-sum-exp is known.

    Value: ``Σ_b w_b (-(1 - ε) s_b,t_b - ε Σ_j (s_bj + o_bj) / n_b) / denom`` over the block (the
    ``log Σ exp`` term is the caller's); gradient ``w_b (p_bj - (1 - ε) [j = t_b] - ε / n_b) / denom``
    with ``p = exp(s + o - lse)`` (``o``: constant log-weights of the candidates, 0 by default and at
    the answer); excluded candidates get none.
    """
    s = scores.detach().float()
    logits = s if offsets is None else s + offsets
    grad = torch.exp(logits - lse.unsqueeze(1))
    scale = (weight / denom).unsqueeze(1)
    value = s.new_zeros(len(s))
    inside = targets >= 0
    rows = inside.nonzero().squeeze(1)
    if valid is not None:
        grad.masked_fill_(~valid, 0.0)
    if smoothing:
        share = (smoothing / count).unsqueeze(1)
        picked = logits if valid is None else logits.masked_fill(~valid, 0.0)
        value -= (picked * share).sum(1)
        grad.sub_(share if valid is None else share * valid)
    if len(rows):
        value.index_add_(0, rows, -(1 - smoothing) * s[rows, targets[rows]])
        grad[rows, targets[rows]] -= 1 - smoothing
    return (value * scale.squeeze(1)).sum(), grad.mul_(scale)


def softmax_cross_entropy(
    scores: Tensor,
    targets: Tensor,
    valid: Tensor | None = None,
    smoothing: float = 0.0,
    weight: Tensor | None = None,
    denom: float | Tensor | None = None,
    lse: Tensor | None = None,
    count: Tensor | None = None,
    offsets: Tensor | None = None,
) -> Tensor:
    """1vsAll: ``Σ_b w_b (logsumexp_j s_bj - (1 - ε) s_b,t_b - ε mean_j s_bj) / denom`` (Lacroix et al., 2018).

    Args:
        scores: ``(B, C)`` logits of the candidates.
        targets: ``(B,)`` the column of each row's true answer (``-1``: not among these candidates).
        valid: ``(B, C)`` bool, the candidates in each row's softmax (``None``: all).
        smoothing: label smoothing ε, spread over the row's valid candidates.
        weight: ``(B,)`` per-row weights (``None``: 1).
        denom: the denominator (default ``B``).
        lse: ``(B,)`` the row's log-sum-exp over *all* its candidate blocks, when ``scores`` is one
            block of several; the ``lse`` term is then the caller's to add (once per row).
            Default: computed from ``scores``, and the term included.
        count: ``(B,)`` the row's number of valid candidates over all its blocks (with ``lse``).
        offsets: ``(B, C)`` constant log-weights ``o``, 0 at each row's answer: ``s + o`` replaces ``s`` in
            the ``logsumexp`` and the smoothing mean. The entropy-guided 1vsAll weighs its negatives this way.
    """
    s = scores.detach().float()
    s_lse = s if offsets is None else s + offsets
    weight = torch.ones(len(s), device=s.device) if weight is None else weight.float()
    denom = float(len(s)) if denom is None else denom
    whole = lse is None
    if whole:
        lse = torch.logsumexp(s_lse if valid is None else s_lse.masked_fill(~valid, -torch.inf), 1)
        count = s.new_full((len(s),), s.shape[1]) if valid is None else valid.sum(1).float()
    assert lse is not None and count is not None
    lse = lse.masked_fill(~torch.isfinite(lse), 0.0)  # a row without candidates (weight 0) adds nothing
    value = with_gradient(
        scores,
        *_softmax_cross_entropy_parts(
            scores, targets, valid, lse, count.clamp_min(1), smoothing, weight, denom, offsets
        ),
    )
    if whole:
        value = value + (weight * lse).sum() / denom
    return value
