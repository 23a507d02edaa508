"""CMKF building blocks: multi-view experts, intra-modal and inter-modal complementarity fusion.

Shapes: ``n`` entities, ``K`` views, ``M`` modalities, ``d`` the embedding dimension. A
``context`` is a relation id in ``[0, 2R]``; ``2R`` is the neutral, relation-free context.

Everything that does not depend on the relation context (the views, the gate's input term and the
view complementarity) is computed once per entity; :meth:`IntraModalFusion.fuse` and
:meth:`InterModalFusion.forward` add the context. Cosines come from Gram matrices of the raw
vectors (``cos_ij = <v_i, v_j> / (|v_i| |v_j|)``), so no normalised copy of a view tensor is made.
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
    layer per expert, batched as one grouped multiply. Weights start as ``N(0, 1/d_in)`` and biases
    at 0, so every view starts at about the norm of its input (PyTorch's default ``Linear`` start
    shrinks it by about √3, which slows training markedly on real graphs).
    """

    def __init__(self, d_in: int, dim: int, experts: int, kind: str = "linear", hidden: int = 0):
        super().__init__()
        self.experts, self.dim, self.kind = experts, dim, kind
        width = dim if kind == "linear" else hidden or dim  # of the first layer's output, per expert
        self.first = nn.Linear(d_in, experts * width)
        with torch.no_grad():
            self.first.weight.normal_(0.0, 1.0 / math.sqrt(d_in))
            self.first.bias.zero_()
        if kind != "linear":
            self.second = nn.Parameter(torch.randn(experts, width, dim) / math.sqrt(width))
            self.second_bias = nn.Parameter(torch.zeros(experts, dim))

    def forward(self, x: Tensor) -> Tensor:
        out = self.first(x).view(len(x), self.experts, -1)
        if self.kind == "linear":
            return out
        return torch.einsum("nkh,khd->nkd", F.gelu(out), self.second) + self.second_bias


def cosines(vectors: Tensor) -> Tensor:
    """Pairwise cosines of the ``K`` vectors of each entity; ``(n, K, d) -> (n, K, K)``."""
    return _Cosines.apply(vectors)


class _Cosines(torch.autograd.Function):
    """``cos_ij = G_ij / (|v_i| |v_j|)`` from the Gram matrix ``G = V Vᵀ``, with ``|v| = max(√G_ii, 1e-12)``.

    The backward pass works on the ``(n, K, K)`` matrices and ends in one product
    ``∂V = (A + Aᵀ) V`` (``A = ∂G``), instead of autograd's two products and a sum over ``(n, K, d)``.
    """

    @staticmethod
    def forward(ctx, vectors: Tensor) -> Tensor:
        with torch.autocast(vectors.device.type, enabled=False):  # at least float32 under mixed precision
            vectors = vectors.to(torch.promote_types(vectors.dtype, torch.float32))
            gram = vectors @ vectors.transpose(-1, -2)
        squared = gram.diagonal(dim1=-2, dim2=-1)
        floor = 1e-24  # |v| >= 1e-12, as in F.normalize (a literal: torch.compile cannot lift globals here)
        norms = squared.clamp_min(floor).sqrt()
        cos = gram / (norms.unsqueeze(-1) * norms.unsqueeze(-2))
        ctx.save_for_backward(vectors, cos, norms, squared > floor)
        return cos

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        vectors, cos, norms, above_eps = ctx.saved_tensors
        direct = grad / (norms.unsqueeze(-1) * norms.unsqueeze(-2))  # ∂L/∂G through the numerator
        product = grad * cos
        grad_norms = -(product.sum(-1) + product.sum(-2)) / norms
        diagonal = grad_norms * above_eps / (2 * norms)  # ∂L/∂G_ii through |v_i| = √G_ii
        a = direct + torch.diag_embed(diagonal)
        return (a + a.transpose(-1, -2)) @ vectors


def view_complementarity(views: Tensor) -> Tensor:
    """``c_k = 1 - mean_{j≠k} cos(v_k, v_j)``: how much view ``k`` adds; ``(n, K, d) -> (n, K)``."""
    experts = views.shape[-2]
    if experts == 1:
        return views.new_zeros(views.shape[:-1])
    cos = cosines(views)
    return 1 - (cos.sum(-1) - cos.diagonal(dim1=-2, dim2=-1)) / (experts - 1)


def view_redundancy(views: Tensor) -> Tensor:
    """Mean squared cosine between distinct views (the diversity penalty); ``(n, K, d) -> ()``."""
    experts = views.shape[1]
    if experts == 1:
        return views.new_zeros(())
    cos = cosines(views)
    off_diagonal = ~torch.eye(experts, dtype=torch.bool, device=views.device)
    return cos[:, off_diagonal].pow(2).mean()


def weighted_sum(weights: Tensor, vectors: Tensor) -> Tensor:
    """``Σ_k w_k v_k`` per entity; ``weights`` ``(n, K)``, ``vectors`` ``(n, K, d)`` -> ``(n, d)``."""
    return _WeightedSum.apply(weights, vectors)


class _WeightedSum(torch.autograd.Function):
    """A batched ``(1, K) x (K, d)`` product whose ``∂v = w ⊗ g`` is one broadcast multiply.

    (Autograd would form that outer product as ``n`` tiny matrix products, several times slower.)
    """

    @staticmethod
    def forward(ctx, weights: Tensor, vectors: Tensor) -> Tensor:
        ctx.save_for_backward(weights, vectors)
        return torch.bmm(weights.unsqueeze(1), vectors).squeeze(1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        weights, vectors = ctx.saved_tensors
        grad_weights = torch.bmm(vectors, grad.unsqueeze(2)).squeeze(2) if ctx.needs_input_grad[0] else None
        grad_vectors = weights.unsqueeze(2) * grad.unsqueeze(1) if ctx.needs_input_grad[1] else None
        return grad_weights, grad_vectors


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

    def base_logits(self, x: Tensor, views: Tensor) -> Tensor | None:
        """The context-free part of the view logits, ``g(x) + λ_intra c``; ``(n, K)`` (``None`` for mean)."""
        if self.mode == "mean":
            return None
        logits = self.gate(x)
        if self.mode == "complementarity" and self.lambda_intra:
            logits = logits + self.lambda_intra * view_complementarity(views)
        return logits

    def fuse(self, views: Tensor, base: Tensor | None, context: Tensor) -> tuple[Tensor, Tensor]:
        """Weigh the views in each entity's context.

        Shapes: ``views`` ``(n, K, d)``, ``base`` ``(n, K)`` from :meth:`base_logits`, ``context``
        ``(n,)``; returns ``e`` ``(n, d)`` and ``β`` ``(n, K)``.
        """
        if base is None:
            beta = views.new_full(views.shape[:2], 1.0 / views.shape[1])
            return views.mean(1), beta
        logits = base + F.embedding(context, self.relation_gate)
        temperature = F.embedding(context, self.log_temperature.unsqueeze(1)).exp().clamp_min(MIN_TEMPERATURE)
        beta = torch.softmax(logits / temperature, dim=-1)
        return weighted_sum(beta, views), beta

    def forward(self, x: Tensor, views: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``(n, d_in)``, ``views`` ``(n, K, d)``, ``context`` ``(n,)`` -> ``e`` ``(n, d)``, ``β`` ``(n, K)``."""
        return self.fuse(views, self.base_logits(x, views), context)


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

    def forward(self, modal: list[Tensor], available: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Fuse modalities.

        Shapes: ``modal`` ``M`` tensors ``(n, d)``, ``available`` ``(n, M)`` bool, ``context``
        ``(n,)``; returns ``e*`` ``(n, d)`` and ``α`` ``(n, M)``.
        """
        if self.mode == "mean":
            alpha = available.to(modal[0].dtype) / available.sum(1, keepdim=True)
        else:
            stacked = torch.stack(modal)  # (M, n, d)
            query = F.embedding(context, self.query)  # (n, a)
            with_complementarity = self.mode == "complementarity" and bool(self.lambda_inter)
            if with_complementarity:  # W e and P e in one product
                weight = torch.cat([self.key.weight, self.projection.weight])
                sizes = [len(self.key.weight), len(self.projection.weight)]
                keys, projected = F.linear(stacked, weight).split(sizes, -1)
            else:
                keys, projected = self.key(stacked), None
            logits = (keys * query).sum(-1).T
            if projected is not None:
                logits = logits + self.lambda_inter * self.complementarity(projected, available)
            logits = logits / self.log_temperature.exp().clamp_min(MIN_TEMPERATURE)
            alpha = torch.softmax(logits.masked_fill(~available, -math.inf), dim=-1)
        joint = alpha[:, :1] * modal[0]
        for m in range(1, len(modal)):
            joint = torch.addcmul(joint, alpha[:, m : m + 1], modal[m])
        return joint, alpha

    @staticmethod
    def complementarity(projected: Tensor, available: Tensor) -> Tensor:
        """``c^m`` from the projections ``P e^m`` ``(M, n, p)`` over available pairs (0 when alone); ``(n, M)``."""
        cos = cosines(projected.transpose(0, 1).contiguous())
        pair = available.unsqueeze(1) & available.unsqueeze(2)
        pair = pair & ~torch.eye(projected.shape[0], dtype=torch.bool, device=projected.device)
        others = pair.sum(-1)
        mean_cos = (cos * pair).sum(-1) / others.clamp_min(1)
        return torch.where(others > 0, 1 - mean_cos, torch.zeros_like(mean_cos))
