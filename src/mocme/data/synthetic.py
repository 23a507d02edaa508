"""A synthetic multimodal graph with planted, complementary modality signal.

Every entity has a latent vector ``z`` made of disjoint blocks: a structural block that only the
graph reveals, and one block per feature modality. In each block the entities fall into clusters
(a centroid plus a little spread), so a block says "which kind of thing" an entity is along one
facet. Relation ``r`` rotates each block separately (a block-diagonal rotation ``Q_r``); the tails
of ``(h, r)`` are the ``k_r`` entities nearest in cosine to ``z_h Q_r``. Every facet matters for
every relation, and each facet is revealed by one source only: modality ``m`` is a noisy linear
projection of its own block (so modalities complement each other) and is missing for a
configurable share of entities (imbalance). A modality with ``factors: 0`` is pure noise.
Everything is fixed by ``seed``.
"""

from __future__ import annotations

import math

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mocme.data.kg import Modality, MultiModalKG
from mocme.data.vocab import Vocabulary


class SyntheticModality(BaseModel):
    """One planted feature modality."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    factors: int = Field(8, ge=0, description="Latent factors this modality reveals; 0 makes it pure noise.")
    dim: int = Field(32, ge=1, description="Feature dimension.")
    noise: float = Field(0.5, ge=0, description="Std of the Gaussian noise added to the unit-variance signal.")
    missing: float = Field(0.2, ge=0, lt=1, description="Share of entities without this modality.")


def _default_modalities() -> dict[str, SyntheticModality]:
    return {
        "text": SyntheticModality(factors=8, dim=48, noise=0.5, missing=0.2),
        "visual": SyntheticModality(factors=8, dim=32, noise=0.5, missing=0.4),
    }


class SyntheticSpec(BaseModel):
    """Settings of the synthetic generator (the built-in default dataset)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seed: int = Field(
        0, ge=0, le=2**63 - 1, description="Fixes the graph, features and split (independent of the training seed)."
    )
    num_entities: int = Field(1000, ge=10, description="Number of entities N.")
    num_relations: int = Field(8, ge=1, description="Number of relations R.")
    structure_factors: int = Field(4, ge=0, description="Latent factors revealed only by the graph.")
    clusters: int = Field(8, ge=1, description="Clusters per latent block (kinds of entity along one facet).")
    spread: float = Field(0.35, ge=0, description="Within-cluster spread, relative to the centroids' scale.")
    modalities: dict[str, SyntheticModality] = Field(
        default_factory=_default_modalities, description="Feature modalities by name ({} = structure only)."
    )
    triples_per_entity: float = Field(10.0, gt=0, description="Average number of triples an entity takes part in.")
    max_tails: int = Field(3, ge=1, description="Relations have 1..max_tails tails per head.")
    degree_skew: float = Field(0.8, ge=0, description="Zipf exponent of head popularity (0 = uniform).")
    valid_fraction: float = Field(
        0.1, ge=0, lt=0.5, description="Share of triples held out for validation (unless an entity is unseen in train)."
    )
    test_fraction: float = Field(
        0.1, ge=0, lt=0.5, description="Share of triples held out for testing (unless an entity is unseen in train)."
    )

    @model_validator(mode="after")
    def _tails_fit(self) -> SyntheticSpec:
        if self.max_tails >= self.num_entities:  # a head's tails are other entities: at most N - 1
            raise ValueError(f"max_tails ({self.max_tails}) must be below num_entities ({self.num_entities})")
        return self


def generate(spec: SyntheticSpec | None = None) -> MultiModalKG:
    """Generate the synthetic multimodal graph described by ``spec``."""
    spec = spec or SyntheticSpec()
    gen = torch.Generator().manual_seed(spec.seed)
    n = spec.num_entities
    blocks = [spec.structure_factors] + [m.factors for m in spec.modalities.values()]
    z = _latents(spec, blocks, gen)

    triples = _planted_triples(spec, z, gen)
    train, valid, test = _split(spec, triples, gen)

    modalities = {}
    start = spec.structure_factors
    for name, m in spec.modalities.items():
        signal = z[:, start : start + m.factors] if m.factors else torch.zeros(n, 0)
        start += m.factors
        features = _project(signal, m, gen)
        mask = torch.rand(n, generator=gen) >= m.missing
        modalities[name] = Modality(name, features, mask, source=f"synthetic(seed={spec.seed})")

    width = len(str(n - 1))
    entities = Vocabulary(f"e{i:0{width}d}" for i in range(n))
    relations = Vocabulary(f"r{j:0{len(str(spec.num_relations - 1))}d}" for j in range(spec.num_relations))
    return MultiModalKG("synthetic", entities, relations, train, valid, test, modalities)


def _project(signal: torch.Tensor, m: SyntheticModality, gen: torch.Generator) -> torch.Tensor:
    """Noisy linear view of ``signal`` (shape ``(N, f)``) with unit-variance columns; ``(N, dim)``."""
    n, f = signal.shape
    if f:
        x = signal @ torch.randn(f, m.dim, generator=gen)
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-8)
        x = x + m.noise * torch.randn(n, m.dim, generator=gen)
    else:
        x = torch.randn(n, m.dim, generator=gen)
    return x / x.std(0).clamp_min(1e-8)


def _latents(spec: SyntheticSpec, blocks: list[int], gen: torch.Generator) -> torch.Tensor:
    """Clustered latent blocks side by side; shape ``(N, sum(blocks))`` (at least one column)."""
    n = spec.num_entities
    parts = []
    for f in blocks:
        centroids = torch.randn(spec.clusters, f, generator=gen)
        assignment = torch.randint(spec.clusters, (n,), generator=gen)
        parts.append(centroids[assignment] + spec.spread * torch.randn(n, f, generator=gen))
    z = torch.cat(parts, 1) if sum(blocks) else torch.randn(n, 1, generator=gen)
    return z / math.sqrt(z.shape[1])


def _block_rotations(spec: SyntheticSpec, z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One block-diagonal random rotation per relation; shape ``(R, f, f)``."""
    f = z.shape[1]
    blocks = [b for b in [spec.structure_factors] + [m.factors for m in spec.modalities.values()] if b] or [f]
    rotations = torch.zeros(spec.num_relations, f, f)
    start = 0
    for b in blocks:
        q = torch.linalg.qr(torch.randn(spec.num_relations, b, b, generator=gen)).Q
        rotations[:, start : start + b, start : start + b] = q
        start += b
    return rotations


def _planted_triples(spec: SyntheticSpec, z: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Tails of each sampled ``(h, r)`` are the nearest entities to ``z_h Q_r``; shape ``(T, 3)``."""
    n = z.shape[0]
    rotations = _block_rotations(spec, z, gen)
    tails_per_head = 1 + torch.arange(spec.num_relations) % spec.max_tails
    num_pairs = min(
        round(n * spec.triples_per_entity / 2 / tails_per_head.float().mean().item()), n * spec.num_relations
    )
    popularity = (torch.arange(n, dtype=torch.float) + 1).pow(-spec.degree_skew)[torch.randperm(n, generator=gen)]
    # Distinct (head, relation) pairs, heads drawn by popularity: exactly num_pairs of them.
    grid = popularity.repeat_interleave(spec.num_relations)
    chosen = torch.multinomial(grid, num_pairs, replacement=False, generator=gen)
    pairs = torch.stack([chosen // spec.num_relations, chosen % spec.num_relations], 1)
    unit = torch.nn.functional.normalize(z, dim=1)
    out = []
    chunk = max(1, (1 << 24) // n)
    for r in range(spec.num_relations):
        hs = pairs[pairs[:, 1] == r, 0]
        k = int(tails_per_head[r])
        for block in hs.split(chunk):
            target = torch.nn.functional.normalize(z[block] @ rotations[r], dim=1)
            sims = target @ unit.T
            sims[torch.arange(len(block)), block] = -math.inf  # no self loops
            tails = sims.topk(k, dim=1).indices
            out.append(
                torch.stack([block.repeat_interleave(k), torch.full((len(block) * k,), r), tails.reshape(-1)], 1)
            )
    return torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.long)


def _split(spec: SyntheticSpec, triples: torch.Tensor, gen: torch.Generator):
    """Random split; held-out triples whose entities never occur in train move back to train."""
    triples = triples[torch.randperm(len(triples), generator=gen)]
    n_valid = int(len(triples) * spec.valid_fraction)
    n_test = int(len(triples) * spec.test_fraction)
    test, valid, train = triples[:n_test], triples[n_test : n_test + n_valid], triples[n_test + n_valid :]
    seen = torch.zeros(spec.num_entities, dtype=torch.bool)
    seen[train[:, 0]] = True
    seen[train[:, 2]] = True
    kept = []
    for held in (valid, test):
        ok = seen[held[:, 0]] & seen[held[:, 2]]
        train = torch.cat([train, held[~ok]])
        seen[held[~ok][:, [0, 2]].reshape(-1)] = True
        kept.append(held[ok])
    return train, kept[0], kept[1]
