"""CMKF building blocks: multi-view experts, intra-modal and inter-modal complementarity fusion.

Shapes: ``n`` entities, ``K`` views, ``M`` modalities, ``d`` the embedding dimension. A
``context`` is a relation id in ``[0, 2R]``; ``2R`` is the neutral, relation-free context.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIN_TEMPERATURE = 0.05


class ModalityExperts(nn.Module):
    """``K`` experts turning one modality's input into ``K`` views: ``(n, d_in) -> (n, K, d)``.

    Linear experts (each with its own bias) are one ``Linear(d_in, K·d)``; MLP experts add a hidden
    layer per expert, batched as one grouped multiply.
    """

    def __init__(self, d_in: int, dim: int, experts: int, kind: str = "linear", hidden: int = 0):
        super().__init__()
        self.experts, self.dim, self.kind = experts, dim, kind
        if kind == "linear":
            self.first = nn.Linear(d_in, experts * dim)
        else:
            hidden = hidden or dim
            self.first = nn.Linear(d_in, experts * hidden)
            self.second = nn.Parameter(torch.randn(experts, hidden, dim) / math.sqrt(hidden))
            self.second_bias = nn.Parameter(torch.zeros(experts, dim))

    def forward(self, x: Tensor) -> Tensor:
        out = self.first(x).view(len(x), self.experts, -1)
        if self.kind == "linear":
            return out
        return torch.einsum("nkh,khd->nkd", F.gelu(out), self.second) + self.second_bias


def view_complementarity(views: Tensor) -> Tensor:
    """``c_k = 1 - mean_{j≠k} cos(v_k, v_j)``: how much view ``k`` adds; ``(n, K, d) -> (n, K)``."""
    experts = views.shape[1]
    if experts == 1:
        return views.new_zeros(views.shape[:2])
    unit = F.normalize(views, dim=-1)
    cos = unit @ unit.transpose(1, 2)
    return 1 - (cos.sum(-1) - cos.diagonal(dim1=1, dim2=2)) / (experts - 1)


def view_redundancy(views: Tensor) -> Tensor:
    """Mean squared cosine between distinct views (the diversity penalty); ``(n, K, d) -> ()``."""
    experts = views.shape[1]
    if experts == 1:
        return views.new_zeros(())
    unit = F.normalize(views, dim=-1)
    cos = unit @ unit.transpose(1, 2)
    off_diagonal = ~torch.eye(experts, dtype=torch.bool, device=views.device)
    return cos[:, off_diagonal].pow(2).mean()


class IntraModalFusion(nn.Module):
    """View weights ``β = softmax((g(x, r) + λ_intra c) / τ_r)`` and ``e^m = Σ_k β_k v_k``.

    ``g`` is linear in the modality input plus a per-relation bias; ``τ_r`` is a learned
    per-relation temperature. ``mode`` is ``complementarity`` (as written), ``attention`` (gate only)
    or ``mean`` (uniform weights).
    """

    def __init__(self, d_in: int, experts: int, contexts: int, mode: str, lambda_intra: float):
        super().__init__()
        self.mode, self.lambda_intra = mode, lambda_intra
        self.gate = nn.Linear(d_in, experts)
        self.relation_gate = nn.Parameter(torch.zeros(contexts, experts))
        self.log_temperature = nn.Parameter(torch.zeros(contexts))

    def forward(self, x: Tensor, views: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``(n, d_in)``, ``views`` ``(n, K, d)``, ``context`` ``(n,)`` -> ``e`` ``(n, d)``, ``β`` ``(n, K)``."""
        if self.mode == "mean":
            beta = views.new_full(views.shape[:2], 1.0 / views.shape[1])
        else:
            logits = self.gate(x) + self.relation_gate[context]
            if self.mode == "complementarity" and self.lambda_intra:
                logits = logits + self.lambda_intra * view_complementarity(views)
            temperature = self.log_temperature[context].exp().clamp_min(MIN_TEMPERATURE)
            beta = torch.softmax(logits / temperature.unsqueeze(1), dim=-1)
        return torch.einsum("nk,nkd->nd", beta, views), beta


class InterModalFusion(nn.Module):
    """Modality weights over the modalities each entity has, and the unified embedding.

    ``α^m = masked_softmax_m((q_r · W e^m + λ_inter c^m) / τ)`` with
    ``c^m = 1 - mean_{n≠m, available} cos(P e^m, P e^n)``; a missing modality gets weight exactly 0.
    """

    def __init__(
        self, dim: int, contexts: int, mode: str, lambda_inter: float, attention_dim: int, projection_dim: int
    ):
        super().__init__()
        self.mode, self.lambda_inter = mode, lambda_inter
        self.key = nn.Linear(dim, attention_dim, bias=False)
        self.query = nn.Parameter(torch.randn(contexts, attention_dim) / math.sqrt(attention_dim))
        self.projection = nn.Linear(dim, projection_dim, bias=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, modal: Tensor, available: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Fuse modalities.

        Shapes: ``modal`` ``(n, M, d)``, ``available`` ``(n, M)`` bool, ``context`` ``(n,)``;
        returns ``e*`` ``(n, d)`` and ``α`` ``(n, M)``.
        """
        if self.mode == "mean":
            alpha = available.float() / available.sum(1, keepdim=True)
        else:
            logits = (self.key(modal) * self.query[context].unsqueeze(1)).sum(-1)
            if self.mode == "complementarity" and self.lambda_inter:
                logits = logits + self.lambda_inter * self.complementarity(modal, available)
            logits = logits / self.log_temperature.exp().clamp_min(MIN_TEMPERATURE)
            alpha = torch.softmax(logits.masked_fill(~available, -math.inf), dim=-1)
        return torch.einsum("nm,nmd->nd", alpha, modal), alpha

    def complementarity(self, modal: Tensor, available: Tensor) -> Tensor:
        """``c^m`` over available pairs; 0 for an entity with a single modality; ``(n, M)``."""
        unit = F.normalize(self.projection(modal), dim=-1)
        cos = unit @ unit.transpose(1, 2)
        pair = available.unsqueeze(1) & available.unsqueeze(2)
        pair = pair & ~torch.eye(modal.shape[1], dtype=torch.bool, device=modal.device)
        others = pair.sum(-1)
        mean_cos = (cos * pair).sum(-1) / others.clamp_min(1)
        return torch.where(others > 0, 1 - mean_cos, torch.zeros_like(mean_cos))
