"""How much each negative counts: uniform, self-adversarial, or entropy-guided (EGNS).

All weights are detached and normalised over the valid negatives of each row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from mocme.training.config import EGNSConfig


def binary_entropy_from_logits(scores: Tensor) -> Tensor:
    """``H(σ(s)) = -p log p - (1-p) log(1-p)`` from logits; highest at ``s = 0``."""
    return binary_entropy(scores, F.softplus(scores), torch.sigmoid(scores))


def binary_entropy(scores: Tensor, softplus: Tensor, probability: Tensor) -> Tensor:
    """``H(σ(s)) = softplus(s) - s σ(s)`` from ``s`` and its parts ``softplus(s)``, ``σ(s)`` (reused by the loss).

    (``-log p = softplus(-s) = softplus(s) - s`` and ``-log(1-p) = softplus(s)``.) For ``|s| ≫ 1`` the
    difference loses about ``|s|`` units in the last place, far below what the weights resolve.
    """
    return torch.addcmul(softplus, scores, probability, value=-1)


def normalised_weights(log_weights: Tensor, valid: Tensor) -> Tensor:
    """Softmax of ``log_weights`` over the valid entries of each row; rows without any are 0."""
    masked = log_weights.masked_fill(~valid, -math.inf)
    weights = torch.softmax(masked, dim=-1)
    return torch.nan_to_num(weights, nan=0.0)


def uniform_weights(valid: Tensor) -> Tensor:
    """``1 / #valid`` on each valid negative."""
    return valid.float() / valid.sum(-1, keepdim=True).clamp_min(1)


def self_adversarial_weights(scores: Tensor, valid: Tensor, temperature: float) -> Tensor:
    """``π_i ∝ exp(α s_i)`` (Sun et al., 2019)."""
    return normalised_weights(temperature * scores.detach(), valid)


def egns_temperature(config: EGNSConfig, epoch: int, epochs: int) -> float | None:
    """``τ_t`` for a 0-based ``epoch``: ``None`` (uniform) during warm-up, then annealed to the end value."""
    if epoch < config.warmup_epochs:
        return None
    span = max(epochs - config.warmup_epochs - 1, 1)
    progress = min((epoch - config.warmup_epochs) / span, 1.0)
    start, end = config.temperature_start, config.temperature_end
    if config.anneal == "linear":
        return start + (end - start) * progress
    if config.anneal == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
    return start * (end / start) ** progress


def gumbel_noise(rows: int, columns: int, generator: torch.Generator) -> Tensor:
    """``(rows, columns)`` standard Gumbel noise on the CPU: ``top-k(log π + noise)`` draws ``k``
    without replacement ``∝ π`` (the Gumbel-top-k trick)."""
    uniform = torch.rand((rows, columns), generator=generator).clamp_min_(1e-20)
    return uniform.log_().neg_().log_().neg_()


def egns_weights(
    scores: Tensor,
    valid: Tensor,
    config: EGNSConfig,
    temperature: float | None,
    noise: Tensor | None = None,
) -> Tensor:
    """Entropy-guided weights over a pool of negatives; ``(B, C) -> (B, C)``, rows summing to 1.

    ``π_i ∝ exp(H_i / τ) · p_i^η``; then either every pool negative keeps its weight (``weight``),
    only the ``keep`` largest are kept and renormalised (``topk``), or ``keep`` are drawn ``∝ π``
    without replacement and weighted equally (``sample``: the ``keep`` largest ``log π + noise``,
    ``noise`` Gumbel ``(B, C)``; all of them, uniform, when ``keep`` covers the pool). With
    ``temperature=None`` (warm-up) the pool is uniform.
    """
    if temperature is None:
        return uniform_weights(valid)
    scores = scores.detach()
    log_weights = binary_entropy_from_logits(scores) / temperature
    if config.hardness:
        log_weights = log_weights + config.hardness * F.logsigmoid(scores)
    keep = min(config.keep, scores.shape[-1])
    if config.selection == "sample":
        if keep >= scores.shape[-1]:  # every negative drawn: each weighs the same
            return uniform_weights(valid)
        if noise is None:
            raise ValueError("egns selection 'sample' needs Gumbel noise")
        log_weights = log_weights + noise.to(log_weights.device)
    if config.selection == "weight" or keep >= scores.shape[-1]:
        return normalised_weights(log_weights, valid)
    top = log_weights.masked_fill(~valid, -math.inf).topk(keep, dim=-1).indices
    chosen = torch.zeros_like(valid).scatter_(-1, top, True) & valid
    return uniform_weights(chosen) if config.selection == "sample" else normalised_weights(log_weights, chosen)
