"""Regularisers of the factors that a training batch uses: N3 and DURA.

Both act on the batch's training triples ``(e, r', a)``: each query with one of its known answers
(1vsAll and EGNS: its target; KvsAll: every label), per scorer, and are divided by the
number of queries, as in kbc.

- N3 (Lacroix et al., 2018): ``λ Σ_f Σ_i |f_i|³`` over the triple's factors (for ComplEx the
  moduli of the complex coordinates of ``h``, ``r`` and ``t``; see :meth:`Interaction.factors`).
- DURA (Zhang et al., 2020): ``λ (‖q(e, r')‖² + ‖a‖²)``, the query vector and the answer
  squared. With reciprocal relations every triple is asked in both directions, so the sum over a
  triple's two queries is DURA's symmetric form ``‖h‖² + ‖t‖² + ‖h ∘ r‖² + ‖t ∘ r⁻¹‖²``. It applies
  to scoring functions of the form ``<q(h, r), t>`` (DistMult, ComplEx, TuckER).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from mocme.errors import ConfigError
from mocme.models.base import ScorerTable


class Regularizer:
    """Base class: ``weight ×`` a penalty of the batch's ``(query, answer)`` pairs, per scorer."""

    name: ClassVar[str]

    def __init__(self, weight: float):
        self.weight = weight

    def check(self, interaction: torch.nn.Module) -> None:
        """Raise a :class:`ConfigError` when this regulariser does not apply to ``interaction``."""

    def penalty(self, table: ScorerTable, rows: Tensor, answers: Tensor) -> Tensor:
        """The penalty of each pair, ``(P,)``: query ``rows`` of ``table`` with entities ``answers``."""
        raise NotImplementedError

    def __call__(
        self, table: ScorerTable, pairs: tuple[Tensor, Tensor], denominators: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """``weight · Σ_pairs penalty / B`` over the pairs where the scorer is defined (a scalar)."""
        if table.subject is None or table.relations is None:
            raise ConfigError(f"training.regularizer {self.name!r} needs the query entities' vectors of every scorer")
        rows, answers = pairs
        values = self.penalty(table, rows, answers)
        if table.query_available is not None:
            assert table.table_available is not None
            values = values * (table.query_available[rows] & table.table_available[answers])
        count = denominators(table.query.new_tensor(float(len(table.query)), dtype=torch.float64)).clamp_min(1)
        return self.weight * values.sum() / float(count)


class N3(Regularizer):
    """N3: the weighted nuclear 3-norm of the triple's factors (Lacroix et al., 2018)."""

    name = "n3"

    def penalty(self, table: ScorerTable, rows: Tensor, answers: Tensor) -> Tensor:
        assert table.subject is not None and table.relations is not None
        factors = table.interaction.factors(table.subject[rows], table.relations[rows], table.table[answers])
        return sum((f.float() ** 3).sum(1) for f in factors)


class DURA(Regularizer):
    """DURA: the squared norms of the query vector and of the answer (Zhang et al., 2020).

    The query is rebuilt from the clean subject, without dropout, as the penalty is defined on the
    embeddings themselves rather than on a dropped-out copy.
    """

    name = "dura"

    def check(self, interaction: torch.nn.Module) -> None:
        if not getattr(interaction, "bilinear", False):
            raise ConfigError(
                f"training.regularizer 'dura' applies to scores <q(h, r), t> (distmult, complex, tucker), "
                f"not to {getattr(interaction, 'name', type(interaction).__name__)}"
            )

    def penalty(self, table: ScorerTable, rows: Tensor, answers: Tensor) -> Tensor:
        assert table.subject is not None and table.relations is not None
        query = table.interaction.undropped_query(table.subject[rows], table.relations[rows]).float()
        answer = table.table[answers].float()
        return (query * query).sum(1) + (answer * answer).sum(1)


REGULARIZERS: dict[str, type[Regularizer]] = {cls.name: cls for cls in (N3, DURA)}
