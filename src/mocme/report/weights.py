"""Inter-modal weights ``α`` of a trained MoCME model, gathered for the report."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mocme.data.kg import MultiModalKG, ranking_queries
from mocme.models.mocme import MoCME

RECIPROCAL = "⁻¹"
"""Suffix of a reciprocal relation's name (its queries predict heads)."""
CHUNK = 4096
"""Entities encoded per forward pass (bounds memory on large graphs)."""


@dataclass
class ModalityWeights:
    """``α`` of every entity in the neutral context, and averaged per query relation.

    Attributes:
        modalities: the ``M`` modality names, structure first.
        alpha: ``(N, M)``, every entity's weights in the neutral context (0 where unavailable).
        available: ``(N, M)`` bool, which modalities each entity has.
        relations: names of the query relations in ``by_relation`` (reciprocals as ``name⁻¹``).
        by_relation: ``(Q, M)``, mean ``α`` of the query entity over the validation queries of
            each relation, in that relation's context (empty when there are no such queries).
        queries: ``(Q,)``, how many validation queries each row of ``by_relation`` averages.
    """

    modalities: list[str]
    alpha: Tensor
    available: Tensor
    relations: list[str]
    by_relation: Tensor
    queries: Tensor

    @property
    def complete(self) -> Tensor:
        """``(N,)`` bool: the entity has every modality."""
        return self.available.all(dim=1)


@torch.no_grad()
def modality_weights(model: MoCME, kg: MultiModalKG) -> ModalityWeights:
    """``α`` of all entities (neutral context) and per relation context over ``kg.valid``."""
    model.eval()
    device = model.device
    ids = torch.arange(kg.num_entities, device=device)
    alpha, available = [], []
    for chunk in ids.split(CHUNK):
        encoding = model.encode(chunk)
        alpha.append(encoding.alpha.cpu())
        available.append(encoding.available.cpu())
    sums = torch.zeros(2 * kg.num_relations, len(model.modalities), dtype=torch.float64)
    counts = torch.zeros(2 * kg.num_relations, dtype=torch.long)
    queries, _, _ = ranking_queries(kg.valid, kg.num_relations)
    for chunk in queries.to(device).split(CHUNK) if len(queries) else ():  # an empty valid split: no contexts
        weights = model.encode(chunk[:, 0], chunk[:, 1]).alpha.double().cpu()
        relation = chunk[:, 1].cpu()
        sums.index_add_(0, relation, weights)
        counts += torch.bincount(relation, minlength=len(counts))
    seen = counts > 0
    names = [kg.relations.name(r) for r in range(kg.num_relations)]
    names += [name + RECIPROCAL for name in names]
    return ModalityWeights(
        modalities=list(model.modalities),
        alpha=torch.cat(alpha).float(),
        available=torch.cat(available),
        relations=[name for name, keep in zip(names, seen.tolist(), strict=True) if keep],
        by_relation=(sums[seen] / counts[seen].unsqueeze(1)).float(),
        queries=counts[seen],
    )
