"""Scoring functions ("interactions"): how a query ``(e, r')`` meets a candidate entity.

Each interaction owns its relation parameters (one set per head) and splits scoring in two:
``query(h, r)`` turns the query entity's representation and relation into a query vector ``q``,
then ``score_all(q, t)`` scores ``q`` against a candidate matrix with one matrix multiply
(never a ``(B, C, d)`` tensor) and ``score_gathered(q, t, index)`` against per-row candidates
(see :mod:`mocme.models.gathered`).

- DistMult (Yang et al., 2015): ``<h, r, t>``.
- ComplEx (Trouillon et al., 2016): ``Re(<h, r, conj(t)>)``, halves of a vector as real/imaginary.
- TuckER (Balažević et al., 2019): ``W ×1 r ×2 h ×3 t`` with a shared core tensor.
- TransE (Bordes et al., 2013): ``γ - ||h + r - t||₂``.
- RotatE (Sun et al., 2019): ``γ - ||h ∘ r - t||₂`` with unit-modulus complex ``r``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mocme.models.dropout import Dropout
from mocme.models.gathered import gathered_dot


class Interaction(nn.Module):
    """Base class. ``num_relations`` counts reciprocal relations too (``2R``)."""

    name: ClassVar[str]
    bilinear: ClassVar[bool] = True  # score = <query(h, r), t>: DURA applies

    def __init__(self, dim: int, num_relations: int):
        super().__init__()
        self.dim = dim
        self.num_relations = num_relations

    def query(self, h: Tensor, relations: Tensor) -> Tensor:
        """Query vectors; ``h`` ``(B, d)``, ``relations`` ``(B,)`` -> ``(B, d)``."""
        raise NotImplementedError

    def undropped_query(self, h: Tensor, relations: Tensor) -> Tensor:
        """:meth:`query` without the interaction's own dropout (what DURA penalises), same shapes."""
        return self.query(h, relations)

    def score_all(self, q: Tensor, t: Tensor) -> Tensor:
        """Scores of every candidate; ``q`` ``(B, d)``, ``t`` ``(C, d)`` -> ``(B, C)``."""
        return q @ t.T

    def score_gathered(self, q: Tensor, t: Tensor, index: Tensor) -> Tensor:
        """Scores of per-row candidates ``t[index]``.

        Shapes: ``q`` ``(B, d)``, ``t`` ``(C, d)``, ``index`` ``(B, k)`` -> ``(B, k)``.
        """
        return gathered_dot(q, t, index)

    def factors(self, h: Tensor, relations: Tensor, t: Tensor) -> list[Tensor]:
        """The magnitudes of a triple's factors, each ``(B, ·)``, that N3 penalises (Lacroix et al., 2018).

        Default: ``|h|``, ``|r|`` and ``|t|`` for a model with one relation vector per relation.
        """
        return [h.abs(), F.embedding(relations, self.relation).abs(), t.abs()]


class DistMult(Interaction):
    name = "distmult"

    def __init__(self, dim: int, num_relations: int):
        super().__init__(dim, num_relations)
        self.relation = nn.Parameter(torch.empty(num_relations, dim))
        nn.init.normal_(self.relation, 1.0, 0.1)

    def query(self, h: Tensor, relations: Tensor) -> Tensor:
        return h * F.embedding(relations, self.relation)


class ComplEx(Interaction):
    name = "complex"

    def __init__(self, dim: int, num_relations: int):
        if dim % 2:
            raise ValueError("ComplEx needs an even dimension (real and imaginary halves)")
        super().__init__(dim, num_relations)
        self.relation = nn.Parameter(torch.empty(num_relations, dim))
        nn.init.normal_(self.relation, 0.0, 1.0 / math.sqrt(dim))
        with torch.no_grad():
            self.relation[:, : dim // 2] += 1.0  # start near the identity rotation

    def query(self, h: Tensor, relations: Tensor) -> Tensor:
        h_re, h_im = h.chunk(2, dim=-1)
        r_re, r_im = F.embedding(relations, self.relation).chunk(2, dim=-1)
        return torch.cat([h_re * r_re - h_im * r_im, h_re * r_im + h_im * r_re], dim=-1)

    def factors(self, h: Tensor, relations: Tensor, t: Tensor) -> list[Tensor]:
        """The moduli of the complex coordinates of ``h``, ``r`` and ``t``, each ``(B, d / 2)`` (kbc's N3)."""
        return [_modulus(h), _modulus(F.embedding(relations, self.relation)), _modulus(t)]


class TuckER(Interaction):
    """TuckER with a core ``W`` of shape ``(d_r, d, d)``.

    The query is ``(r ⊗ h) @ W``: one GEMM of shape ``(B, d_r·d) x (d_r·d, d)``, so no per-query
    ``d x d`` relation matrices are ever gathered.
    """

    name = "tucker"

    def __init__(self, dim: int, num_relations: int, relation_dim: int = 32, dropout: float = 0.0):
        super().__init__(dim, num_relations)
        self.relation_dim = relation_dim
        self.relation = nn.Parameter(torch.empty(num_relations, relation_dim))
        nn.init.normal_(self.relation, 0.0, 1.0)
        self.core = nn.Parameter(torch.empty(relation_dim * dim, dim))
        # Start near "relation-independent identity": q ≈ h, so early training behaves like a dot product.
        with torch.no_grad():
            self.core.normal_(0.0, 1.0 / math.sqrt(relation_dim * dim))
            eye = torch.eye(dim) / math.sqrt(relation_dim)
            self.core.view(relation_dim, dim, dim).add_(eye)
        self.dropout = Dropout(dropout)

    def query(self, h: Tensor, relations: Tensor) -> Tensor:
        return self.dropout(self.undropped_query(h, relations))

    def undropped_query(self, h: Tensor, relations: Tensor) -> Tensor:
        r = F.embedding(relations, self.relation)
        outer = (r.unsqueeze(2) * h.unsqueeze(1)).reshape(len(h), -1)
        return outer @ self.core


class _Distance(Interaction):
    """``γ - ||q - t||₂``, computed against all candidates through ``|q|² + |t|² - 2 q·t``.

    Always in float32, autocast or not: for a good answer the two large terms nearly cancel, and a
    bfloat16 ``q·t`` would swamp the small distance left (and clamp it to zero, with no gradient).
    """

    bilinear = False

    def __init__(self, dim: int, num_relations: int, margin: float = 6.0):
        super().__init__(dim, num_relations)
        self.margin = margin

    def score_all(self, q: Tensor, t: Tensor) -> Tensor:
        with torch.autocast(q.device.type, enabled=False):
            q, t = _at_least_float32(q, t)
            squared = (q * q).sum(-1, keepdim=True) + (t * t).sum(-1) - 2 * (q @ t.T)
            return self.margin - squared.clamp_min(1e-12).sqrt()

    def score_gathered(self, q: Tensor, t: Tensor, index: Tensor) -> Tensor:
        with torch.autocast(q.device.type, enabled=False):
            q, t = _at_least_float32(q, t)
            t_squared = F.embedding(index, (t * t).sum(-1, keepdim=True)).squeeze(-1)
            squared = (q * q).sum(-1, keepdim=True) + t_squared - 2 * gathered_dot(q, t, index)
            return self.margin - squared.clamp_min(1e-12).sqrt()


def _at_least_float32(q: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``q`` and ``t`` in float32, or in their common wider type (float64 stays float64)."""
    dtype = torch.promote_types(torch.promote_types(q.dtype, t.dtype), torch.float32)
    return q.to(dtype), t.to(dtype)


class TransE(_Distance):
    name = "transe"

    def __init__(self, dim: int, num_relations: int, margin: float = 6.0):
        super().__init__(dim, num_relations, margin)
        self.relation = nn.Parameter(torch.empty(num_relations, dim))
        nn.init.normal_(self.relation, 0.0, 1.0 / math.sqrt(dim))

    def query(self, h: Tensor, relations: Tensor) -> Tensor:
        return h + F.embedding(relations, self.relation)


class RotatE(_Distance):
    name = "rotate"

    def __init__(self, dim: int, num_relations: int, margin: float = 6.0):
        if dim % 2:
            raise ValueError("RotatE needs an even dimension (real and imaginary halves)")
        super().__init__(dim, num_relations, margin)
        self.phase = nn.Parameter(torch.empty(num_relations, dim // 2))
        nn.init.uniform_(self.phase, -math.pi, math.pi)

    def query(self, h: Tensor, relations: Tensor) -> Tensor:
        h_re, h_im = h.chunk(2, dim=-1)
        phase = F.embedding(relations, self.phase)
        cos, sin = phase.cos(), phase.sin()
        return torch.cat([h_re * cos - h_im * sin, h_re * sin + h_im * cos], dim=-1)

    def factors(self, h: Tensor, relations: Tensor, t: Tensor) -> list[Tensor]:
        """The moduli of ``h`` and ``t``, each ``(B, d / 2)`` (a rotation has modulus 1 everywhere)."""
        return [_modulus(h), _modulus(t)]


def _modulus(x: Tensor) -> Tensor:
    """``|x_re + i x_im|`` of a vector whose halves are the real and imaginary parts; ``(B, d) -> (B, d / 2)``."""
    re, im = x.chunk(2, dim=-1)
    return torch.sqrt(re * re + im * im + 1e-18)


INTERACTIONS: dict[str, type[Interaction]] = {cls.name: cls for cls in (DistMult, ComplEx, TuckER, TransE, RotatE)}
