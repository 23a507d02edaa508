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


class Views:
    """The ``K`` expert views of ``n`` entities, ``(n, K, d)``, as whatever representation is cheapest.

    Fusion needs only two things of the views: their Gram matrices (for the cosines of the
    complementarity terms) and weighted sums. :class:`DenseViews` holds the ``(n, K, d)`` tensor;
    :class:`ResidualViews` holds the factors of ``x + B_k A_k x`` and never forms it.
    """

    experts: int
    dtype: torch.dtype
    _cos: Tensor | None = None

    def gram(self) -> Tensor:
        """``G_ij = <v_i, v_j>`` in at least float32; ``(n, K, K)``."""
        raise NotImplementedError

    def weighted_sum(self, weights: Tensor) -> Tensor:
        """``Σ_k w_k v_k``; ``weights`` ``(n, K)`` -> ``(n, d)``."""
        raise NotImplementedError

    def dense(self) -> Tensor:
        """The views themselves, ``(n, K, d)`` (for inspection; fusion does not need them)."""
        raise NotImplementedError

    def cosines(self) -> Tensor:
        """Pairwise cosines ``G_ij / (|v_i| |v_j|)`` with ``|v| = max(√G_ii, 1e-12)``; ``(n, K, K)``, computed once."""
        if self._cos is None:
            gram = self.gram()
            norms = gram.diagonal(dim1=-2, dim2=-1).clamp_min(1e-24).sqrt()
            self._cos = gram / (norms.unsqueeze(-1) * norms.unsqueeze(-2))
        return self._cos


class DenseViews(Views):
    """Views held as one ``(n, K, d)`` tensor."""

    def __init__(self, views: Tensor):
        self.views, self.experts, self.dtype = views, views.shape[1], views.dtype

    def gram(self) -> Tensor:
        return _Gram.apply(self.views)

    def weighted_sum(self, weights: Tensor) -> Tensor:
        return _WeightedSum.apply(weights, self.views)

    def dense(self) -> Tensor:
        return self.views


class ResidualViews(Views):
    """Views ``v_k = x + u_k`` with ``u_k = l_k B_k`` of rank ``r``, kept as their factors.

    Shapes: ``x`` ``(n, d)`` the views' shared part, ``low`` ``(n, K, r)`` (``l_k = z A_k`` of the
    experts' input ``z``: ``x`` itself for residual experts), ``up`` ``(K, r, d)`` (``B_k``),
    ``projected`` ``(n, K, r)`` (``x B_kᵀ``).
    Every product below is over ``n × K·r`` or ``(K·r)²`` numbers instead of ``n × K × d``.
    """

    def __init__(self, x: Tensor, low: Tensor, up: Tensor, projected: Tensor):
        self.x, self.low, self.up, self.projected = x, low, up, projected
        self.experts, self.dtype = up.shape[0], x.dtype

    def gram(self) -> Tensor:
        """``G_ij = |x|² + <x, u_i> + <x, u_j> + <u_i, u_j>``, with ``<x, u_i> = l_i (x B_iᵀ)ᵀ`` and
        ``<u_i, u_j> = l_i B_i B_jᵀ l_jᵀ``."""
        with torch.autocast(self.x.device.type, enabled=False):
            dtype = torch.promote_types(self.x.dtype, torch.float32)
            x, low, up = self.x.to(dtype), self.low.to(dtype), self.up.to(dtype)
            n, experts, rank = low.shape
            flat = up.reshape(experts * rank, -1)  # (K·r, d)
            along = (low * self.projected.to(dtype)).sum(-1)  # (n, K): <x, u_k>
            coupling = (flat @ flat.T).view(experts, rank, experts * rank)  # B_i B_jᵀ, rows of expert i
            mixed = torch.bmm(low.transpose(0, 1), coupling).view(experts, n, experts, rank)  # l_i B_i B_jᵀ
            between = (mixed.permute(1, 0, 2, 3) * low.unsqueeze(1)).sum(-1)  # (n, K, K): <u_i, u_j>
            squared = _SquaredNorm.apply(x).view(n, 1, 1)
            return squared + along.unsqueeze(2) + along.unsqueeze(1) + between

    def weighted_sum(self, weights: Tensor) -> Tensor:
        """``x + [w_k l_k]_k B`` for weights that sum to 1: one ``(n, K·r) x (K·r, d)`` product.

        (The gradient ``<g, x>`` that ``(Σ_k w_k) x`` would add to every ``w_k`` alike is removed by
        the softmax the weights come from.)
        """
        mixed = (weights.unsqueeze(-1) * self.low).flatten(1)
        return torch.addmm(self.x, mixed, self.up.flatten(0, 1))

    def dense(self) -> Tensor:
        return torch.baddbmm(self.x.unsqueeze(0), self.low.transpose(0, 1), self.up).transpose(0, 1)


class ModalityExperts(nn.Module):
    """``K`` experts turning one modality's input into ``K`` views: ``(n, d_in) -> Views (n, K, d)``.

    ``kind``:
    - ``linear``: each expert ``A_k x + b_k``, all of them one ``Linear(d_in, K·d)``;
    - ``mlp``: a hidden layer per expert, batched as one grouped multiply;
    - ``residual`` (``d_in = d``): ``x + B_k A_k x`` with rank-``rank`` factors and ``B_k = 0`` at the
      start, so every view starts as the input itself (the structural modality anchored on its
      embedding: structure-only MoCME starts as its scoring function's baseline);
    - ``shared``: one shared map ``W x + b`` plus each expert's rank-``rank`` correction ``B_k A_k x``
      (``B_k = 0`` at the start): about a ``K``-th of ``linear``'s products for a wide input.
    Residual and shared views are kept as their factors (:class:`ResidualViews`).

    Weights start as ``N(0, s²)`` with ``s = 1/√d_in`` (every view about the norm of its input;
    PyTorch's default ``Linear`` start shrinks it by about √3, which slows training markedly on real
    graphs) or ``s = init_scale`` (views as small as kbc-style structural vectors); biases at 0.
    """

    def __init__(
        self,
        d_in: int,
        dim: int,
        experts: int,
        kind: str = "linear",
        hidden: int = 0,
        rank: int = 16,
        init_scale: float | None = None,
    ):
        super().__init__()
        self.experts, self.dim, self.kind = experts, dim, kind
        if kind in ("residual", "shared"):
            if kind == "residual" and d_in != dim:
                raise ValueError(f"residual experts need d_in = d, not {d_in} and {dim}")
            self.down = nn.Parameter(torch.randn(d_in, experts * rank) / math.sqrt(d_in))
            self.up = nn.Parameter(torch.zeros(experts, rank, dim))
            if kind == "residual":
                return
        width = dim if kind in ("linear", "shared") else hidden or dim  # of the first layer's output, per expert
        self.first = nn.Linear(d_in, width if kind == "shared" else experts * width)
        with torch.no_grad():
            self.first.weight.normal_(0.0, init_scale if init_scale is not None else 1.0 / math.sqrt(d_in))
            self.first.bias.zero_()
        if kind == "mlp":
            self.second = nn.Parameter(torch.randn(experts, width, dim) / math.sqrt(width))
            self.second_bias = nn.Parameter(torch.zeros(experts, dim))

    def forward(self, x: Tensor, gate: nn.Linear) -> tuple[Views, Tensor]:
        """The views of ``x`` ``(n, d_in)`` and the view gate's logits ``gate(x)`` ``(n, K)``.

        Residual experts take ``x A_k``, ``x B_kᵀ`` and ``gate(x)`` from one pass over ``x``; shared
        experts take ``x A_k`` and ``gate(x)`` from one, and ``(W x + b) B_kᵀ`` from the shared part.
        """
        if self.kind == "residual":
            weights = torch.cat([self.down, self.up.flatten(0, 1).T, gate.weight.T], 1)
            both = x @ weights
            factors, gated = both[:, : -self.experts], both[:, -self.experts :] + gate.bias
            low, projected = factors.reshape(len(x), 2 * self.experts, -1).split(self.experts, 1)
            return ResidualViews(x, low, self.up, projected), gated
        if self.kind == "shared":
            shared = self.first(x)
            both = x @ torch.cat([self.down, gate.weight.T], 1)
            low, gated = both[:, : -self.experts], both[:, -self.experts :] + gate.bias
            low = low.reshape(len(x), self.experts, -1)
            projected = (shared @ self.up.flatten(0, 1).T).view_as(low)
            return ResidualViews(shared, low, self.up, projected), gated
        out = self.first(x).view(len(x), self.experts, -1)
        if self.kind == "mlp":
            out = torch.einsum("nkh,khd->nkd", F.gelu(out), self.second) + self.second_bias
        return DenseViews(out), gate(x)


def cosines(vectors: Tensor) -> Tensor:
    """Pairwise cosines of the ``K`` vectors of each entity; ``(n, K, d) -> (n, K, K)``."""
    return DenseViews(vectors).cosines()


class _Gram(torch.autograd.Function):
    """``G = V Vᵀ`` per entity, ``(n, K, d) -> (n, K, K)``, in at least float32 under mixed precision.

    The backward pass is one product ``∂V = (A + Aᵀ) V`` (``A = ∂G``), instead of autograd's two
    products and a sum over ``(n, K, d)``.
    """

    @staticmethod
    def forward(ctx, vectors: Tensor) -> Tensor:
        with torch.autocast(vectors.device.type, enabled=False):
            wide = vectors.to(torch.promote_types(vectors.dtype, torch.float32))
            ctx.save_for_backward(wide)
            ctx.dtype = vectors.dtype
            return wide @ wide.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (wide,) = ctx.saved_tensors
        return ((grad + grad.transpose(-1, -2)) @ wide).to(ctx.dtype)


class _SquaredNorm(torch.autograd.Function):
    """``|x|²`` of each row, ``(n, d) -> (n,)``; backward one product ``2 g x`` (the norm's own backward
    divides ``x`` by the norm and multiplies again)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.linalg.vector_norm(x, dim=-1).square()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return (2 * grad).unsqueeze(1) * x


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


def view_complementarity(views: Views) -> Tensor:
    """``c_k = 1 - mean_{j≠k} cos(v_k, v_j)``: how much view ``k`` adds; ``(n, K)``."""
    cos = views.cosines()
    if views.experts == 1:
        return cos.new_zeros(cos.shape[:-1])
    return 1 - (cos.sum(-1) - cos.diagonal(dim1=-2, dim2=-1)) / (views.experts - 1)


def view_redundancy(views: Views, available: Tensor) -> Tensor:
    """Mean squared cosine between distinct views (the diversity penalty) over the entities that have
    the modality, ``available`` ``(n,)`` bool (an entity without it has bias-only views); ``()``."""
    cos = views.cosines()
    if views.experts == 1 or not bool(available.any()):
        return cos.new_zeros(())
    off_diagonal = ~torch.eye(views.experts, dtype=torch.bool, device=cos.device)
    return cos[available][:, off_diagonal].pow(2).mean()


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

    def base_logits(self, gated: Tensor, views: Views) -> Tensor | None:
        """The context-free part of the view logits, ``g(x) + λ_intra c``, from ``gated = self.gate(x)``
        (which :meth:`ModalityExperts.forward` returns); ``(n, K)`` (``None`` for mean)."""
        if self.mode == "mean":
            return None
        logits = gated
        if self.mode == "complementarity" and self.lambda_intra:
            logits = logits + self.lambda_intra * view_complementarity(views)
        return logits

    def fuse(self, views: Views, base: Tensor | None, context: Tensor) -> tuple[Tensor, Tensor]:
        """Weigh the views in each entity's context.

        Shapes: ``views`` ``(n, K, d)`` (as :class:`Views`), ``base`` ``(n, K)`` from :meth:`base_logits`, ``context``
        ``(n,)``; returns ``e`` ``(n, d)`` and ``β`` ``(n, K)``.
        """
        if base is None:
            beta = context.new_full((len(context), views.experts), 1.0 / views.experts, dtype=views.dtype)
            return views.weighted_sum(beta), beta
        logits = base + F.embedding(context, self.relation_gate)
        temperature = F.embedding(context, self.log_temperature.unsqueeze(1)).exp().clamp_min(MIN_TEMPERATURE)
        beta = torch.softmax(logits / temperature, dim=-1)
        return views.weighted_sum(beta), beta


class InterModalFusion(nn.Module):
    """Modality weights over the modalities each entity has, and the unified embedding.

    ``α^m = masked_softmax_m((q_r · W e^m + λ_inter c^m) / τ)``; a missing modality gets weight
    exactly 0. The complementarity ``c^m`` of modality ``m`` is what it adds beyond the others the
    entity has: the norm of the part of ``P e^m`` orthogonal to the span of the other available
    ``P e^n``, divided by the mean norm of the available ``P e^n`` (0 when ``m`` is alone). Unlike
    ``1 - cos``, this is not the same for both modalities of a pair, so it carries information
    with two modalities (structure and text). ``measure: cosine`` is the first reading,
    ``c^m = 1 - mean_{n≠m} cos(P e^m, P e^n)``, which cancels in the softmax when ``M = 2``.

    ``unified``: ``convex`` is ``e* = Σ_m α^m e^m``; ``anchored`` keeps the structural embedding
    whole where the entity has it, ``e* = e^s + Σ_{m≠s} α^m e^m``, so an entity gaining a modality
    is moved by it rather than shrunk towards it (where structure is unavailable, ``e*`` is the
    convex mix of the modalities it has).
    """

    def __init__(
        self,
        dim: int,
        contexts: int,
        mode: str,
        lambda_inter: float,
        attention_dim: int,
        projection_dim: int,
        unified: str = "convex",
        measure: str = "orthogonal",
        degree_gate: bool = False,
    ):
        super().__init__()
        self.mode, self.lambda_inter, self.unified = mode, lambda_inter, unified
        self.measure = orthogonal_complementarity if measure == "orthogonal" else cosine_complementarity
        self.key = nn.Linear(dim, attention_dim, bias=False)
        self.query = nn.Parameter(torch.randn(contexts, attention_dim) / math.sqrt(attention_dim))
        self.projection = nn.Linear(dim, projection_dim, bias=False)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        # degree gate: w·log(1 + degree) on the structure logit, w from 0 (the fusion starts as without it)
        self.degree_weight = nn.Parameter(torch.zeros(())) if degree_gate else None

    def forward(
        self, modal: list[Tensor], available: Tensor, context: Tensor, log_degree: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Fuse modalities.

        Shapes: ``modal`` ``M`` tensors ``(n, d)`` (structure first), ``available`` ``(n, M)``
        bool, ``context`` ``(n,)``, ``log_degree`` ``(n,)`` the entities' ``log(1 + training degree)``
        (read by the degree gate); returns ``e*`` ``(n, d)`` and ``α`` ``(n, M)``.
        """
        if self.mode == "mean":
            alpha = available.to(modal[0].dtype) / available.sum(1, keepdim=True)
        else:
            query = F.embedding(context, self.query)  # (n, a)
            with_complementarity = self.mode == "complementarity" and bool(self.lambda_inter)
            if with_complementarity:  # W e and P e in one product per modality
                weight = torch.cat([self.key.weight, self.projection.weight])
                sizes = [len(self.key.weight), len(self.projection.weight)]
                keys, projected = torch.stack([F.linear(e, weight) for e in modal]).split(sizes, -1)
            else:
                keys, projected = torch.stack([self.key(e) for e in modal]), None
            logits = (keys * query).sum(-1).T
            if projected is not None:
                logits = logits + self.lambda_inter * self.measure(projected, available)
            if self.degree_weight is not None:
                if log_degree is None:
                    raise ValueError("the degree gate needs the entities' log_degree")
                structure = logits[:, :1] + (self.degree_weight * log_degree).unsqueeze(1)
                logits = torch.cat([structure, logits[:, 1:]], 1)
            logits = logits / self.log_temperature.exp().clamp_min(MIN_TEMPERATURE)
            alpha = torch.softmax(logits.masked_fill(~available, -math.inf), dim=-1)
        weights = view_coefficients(alpha, available, self.unified)
        joint = weights[:, :1] * modal[0]
        for m in range(1, len(modal)):
            joint = torch.addcmul(joint, weights[:, m : m + 1], modal[m])
        return joint, alpha


def view_coefficients(alpha: Tensor, available: Tensor, unified: str) -> Tensor:
    """The weight of each modality's view in ``e*`` (:class:`InterModalFusion`), ``(n, M)``, so that
    ``e* = Σ_m c_m e^m`` exactly: ``α`` (convex), or with ``anchored`` 1 on structure where the entity
    has it and ``α`` on the others (renormalised where it lacks structure)."""
    if unified != "anchored" or alpha.shape[1] < 2:
        return alpha
    # where structure is available it counts whole; elsewhere the others' weights already sum to 1
    structure = available[:, :1]
    rest = alpha[:, 1:].sum(1, keepdim=True)
    scale = torch.where(structure, torch.ones_like(rest), 1 / rest.clamp_min(1e-12))
    return torch.cat([structure.to(alpha.dtype), alpha[:, 1:] * scale], 1)


def orthogonal_complementarity(projected: Tensor, available: Tensor) -> Tensor:
    """``c^m`` from the projections ``P e^m`` ``(M, n, p)`` over the available ones; ``(n, M)``.

    ``|(P e^m)_⊥|² = G_mm - g_mᵀ G_o⁻¹ g_m`` with ``G`` the Gram matrix of the projections,
    ``G_o`` its block of the other available modalities and ``g_m`` their products with ``m``.
    """
    vectors = projected.transpose(0, 1)  # (n, M, p), at least float32 under mixed precision
    vectors = vectors.to(torch.promote_types(vectors.dtype, torch.float32))
    gram = vectors @ vectors.transpose(-1, -2)  # (n, M, M)
    modalities = gram.shape[-1]
    norms = gram.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).sqrt()  # (n, M)
    mean_norm = (norms * available).sum(1) / available.sum(1).clamp_min(1)
    columns = []
    eye = torch.eye(modalities, device=gram.device, dtype=gram.dtype)
    for m in range(modalities):
        others = available.clone()
        others[:, m] = False
        pair = others.unsqueeze(1) & others.unsqueeze(2)
        # the others' Gram block; unavailable rows and columns become the identity (and drop out)
        block = torch.where(pair, gram, eye) + 1e-6 * eye * norms.pow(2).mean(1).view(-1, 1, 1).clamp_min(1e-12)
        coupling = torch.where(others, gram[:, :, m], torch.zeros_like(gram[:, :, m]))
        explained = (coupling * torch.linalg.solve(block, coupling.unsqueeze(-1)).squeeze(-1)).sum(1)
        residual = (gram[:, m, m] - explained).clamp_min(1e-12).sqrt()
        alone = ~others.any(1) | ~available[:, m]
        columns.append(torch.where(alone, torch.zeros_like(residual), residual / mean_norm.clamp_min(1e-12)))
    return torch.stack(columns, 1).to(projected.dtype)


def cosine_complementarity(projected: Tensor, available: Tensor) -> Tensor:
    """``c^m = 1 - mean_{n≠m, available} cos(P e^m, P e^n)`` (0 when alone); ``(M, n, p) -> (n, M)``."""
    cos = cosines(projected.transpose(0, 1).contiguous())
    pair = available.unsqueeze(1) & available.unsqueeze(2)
    pair = pair & ~torch.eye(projected.shape[0], dtype=torch.bool, device=projected.device)
    others = pair.sum(-1)
    mean_cos = (cos * pair).sum(-1) / others.clamp_min(1)
    return torch.where(others > 0, 1 - mean_cos, torch.zeros_like(mean_cos))
