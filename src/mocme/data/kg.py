"""The in-memory multimodal knowledge graph every other layer reads."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from mocme.data.filtering import FilterIndex
from mocme.data.vocab import Vocabulary
from mocme.errors import MocmeError

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")


@dataclass
class Modality:
    """One feature modality: a fixed matrix plus which entities actually have it.

    Attributes:
        name: e.g. ``"text"`` or ``"visual"``.
        features: float32, shape ``(N, d)``. Rows of unavailable entities are stored as zeros
            and must never be used: every consumer reads ``mask`` first.
        mask: bool, shape ``(N,)``; ``True`` where the entity has this modality.
        source: where the features came from (a path or a generator), for the record.
    """

    name: str
    features: Tensor
    mask: Tensor
    source: str = ""

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise MocmeError(f"modality {self.name!r}: features must be 2-D, got {tuple(self.features.shape)}")
        if self.mask.shape != (self.features.shape[0],):
            raise MocmeError(
                f"modality {self.name!r}: mask has shape {tuple(self.mask.shape)}, expected ({self.features.shape[0]},)"
            )
        self.features = self.features.float().contiguous()
        self.mask = self.mask.bool()
        bad = ~torch.isfinite(self.features[self.mask]).all(dim=1)
        if bad.any():
            row = int(self.mask.nonzero()[bad][0])
            raise MocmeError(f"modality {self.name!r}: non-finite value in row {row}")
        if not bool(self.mask.all()):  # a new tensor: the caller's rows stay as they were
            self.features = self.features.masked_fill(~self.mask.unsqueeze(1), 0.0)

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    @property
    def coverage(self) -> float:
        """Share of entities that have this modality."""
        return float(self.mask.float().mean()) if len(self.mask) else 0.0


@dataclass
class MultiModalKG:
    """Entities, relations, the three splits and any number of feature modalities.

    Triples are ``LongTensor`` of shape ``(n, 3)`` in ``(h, r, t)`` order with
    ``r < num_relations``. Head prediction ``(?, r, t)`` is asked as ``(t, r + R, ?)``.
    """

    name: str
    entities: Vocabulary
    relations: Vocabulary
    train: Tensor
    valid: Tensor
    test: Tensor
    modalities: dict[str, Modality] = field(default_factory=dict)
    entity_text: list[str | None] | None = None

    def __post_init__(self) -> None:
        for split in SPLITS:
            triples = torch.as_tensor(getattr(self, split), dtype=torch.long).reshape(-1, 3)
            setattr(self, split, triples.contiguous())
            if len(triples) and (
                triples[:, [0, 2]].min() < 0
                or triples[:, [0, 2]].max() >= self.num_entities
                or triples[:, 1].min() < 0
                or triples[:, 1].max() >= self.num_relations
            ):
                raise MocmeError(f"{self.name}: {split} split has ids out of range")
        for modality in self.modalities.values():
            self._check_modality(modality)
        if self.entity_text is not None and len(self.entity_text) != self.num_entities:
            raise MocmeError(f"{self.name}: entity_text has {len(self.entity_text)} rows, expected {self.num_entities}")

    def _check_modality(self, modality: Modality) -> None:
        if modality.features.shape[0] != self.num_entities:
            raise MocmeError(
                f"modality {modality.name!r} has {modality.features.shape[0]} rows, "
                f"expected {self.num_entities} (one per entity)"
            )

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_entities(self) -> int:
        return len(self.entities)

    @property
    def num_relations(self) -> int:
        """Original relations ``R``; query relation ids range over ``2R``."""
        return len(self.relations)

    def split(self, name: str) -> Tensor:
        if name not in SPLITS:
            raise MocmeError(f"unknown split {name!r} (choose from {', '.join(SPLITS)})")
        return getattr(self, name)

    # -- modalities --------------------------------------------------------------------------
    def add_modality(self, modality: Modality) -> None:
        """Attach (or replace) a feature modality."""
        self._check_modality(modality)
        self.modalities[modality.name] = modality

    def with_modalities(self, names: list[str] | None) -> MultiModalKG:
        """A view of this graph keeping only the named modalities (all when ``None``)."""
        if names is None:
            return self
        unknown = [n for n in names if n not in self.modalities]
        if unknown:
            have = ", ".join(self.modalities) or "none"
            raise MocmeError(f"{self.name}: no modality {unknown[0]!r} (have: {have})")
        view = MultiModalKG(
            self.name,
            self.entities,
            self.relations,
            self.train,
            self.valid,
            self.test,
            {n: self.modalities[n] for n in names},
            self.entity_text,
        )
        view.__dict__.update({k: v for k, v in self.__dict__.items() if k in _CACHED})
        return view

    def with_new_entities(
        self, names: Sequence[str], modalities: dict[str, Modality], texts: Sequence[str | None] | None = None
    ) -> MultiModalKG:
        """This graph with ``n`` entities appended (ids ``N`` to ``N + n - 1``) that take part in no triple.

        Args:
            names: the new entities' names, none of them already in the graph.
            modalities: every modality of this graph, for the new entities only (``n`` rows each).
            texts: the new entities' texts (``None`` = no text), kept when this graph has entity text.
        """
        if set(modalities) != set(self.modalities):
            raise MocmeError(f"{self.name}: new entities need every modality ({', '.join(self.modalities)})")
        clash = next((name for name in names if name in self.entities), None)
        if clash is not None:
            raise MocmeError(f"{self.name}: entity {clash!r} is already in the graph")
        try:
            entities = Vocabulary([*self.entities, *names])
        except ValueError as err:
            raise MocmeError(f"{self.name}: new entities: {err}") from None
        extended = {}
        for name, modality in self.modalities.items():
            new = modalities[name]
            if new.features.shape != (len(names), modality.dim):
                raise MocmeError(
                    f"modality {name!r}: new entities need {len(names)} rows of dimension {modality.dim}, "
                    f"got {tuple(new.features.shape)}"
                )
            extended[name] = Modality(
                name,
                torch.cat([modality.features, new.features]),
                torch.cat([modality.mask, new.mask]),
                modality.source,
            )
        entity_text = None
        if self.entity_text is not None:
            entity_text = [*self.entity_text, *(texts if texts is not None else [None] * len(names))]
        return MultiModalKG(
            self.name, entities, self.relations, self.train, self.valid, self.test, extended, entity_text
        )

    def without_entities(self, names: Sequence[str]) -> MultiModalKG:
        """This graph without the named entities and every triple they take part in.

        The other entities keep their order (their ids close up); their modalities and texts stay.
        With :meth:`with_new_entities` (or :func:`mocme.inductive.add_entities`) it sets up the
        inductive case: entities held out of training entirely, added back after it.
        """
        drop = torch.zeros(self.num_entities, dtype=torch.bool)
        unknown = next((name for name in names if name not in self.entities), None)
        if unknown is not None:
            raise MocmeError(f"{self.name}: no entity {unknown!r}")
        drop[torch.tensor([self.entities.id(name) for name in names], dtype=torch.long)] = True
        keep = ~drop
        new_id = torch.cumsum(keep, 0) - 1

        def kept(triples: Tensor) -> Tensor:
            rows = triples[keep[triples[:, 0]] & keep[triples[:, 2]]]
            return torch.stack([new_id[rows[:, 0]], rows[:, 1], new_id[rows[:, 2]]], 1)

        modalities = {
            name: Modality(name, m.features[keep], m.mask[keep], m.source) for name, m in self.modalities.items()
        }
        entity_text = None
        if self.entity_text is not None:
            entity_text = [text for text, k in zip(self.entity_text, keep.tolist(), strict=True) if k]
        return MultiModalKG(
            self.name,
            Vocabulary(name for name, k in zip(self.entities, keep.tolist(), strict=True) if k),
            self.relations,
            kept(self.train),
            kept(self.valid),
            kept(self.test),
            modalities,
            entity_text,
        )

    # -- held-out hygiene --------------------------------------------------------------------
    def redundant_held_out(self, split: Split) -> Tensor:
        """``bool[n]`` over a held-out split's lines: a training triple, or a repeat of an earlier line."""
        triples = self.split(split)
        lines = torch.arange(len(triples))
        unique, inverse = torch.unique(triples, dim=0, return_inverse=True)
        first = torch.full((len(unique),), len(triples)).scatter_reduce(0, inverse, lines, "amin")
        in_train = self.train_index.contains(triples[:, :2], triples[:, 2:]).squeeze(1)
        return (first[inverse] != lines) | in_train

    def without_redundant_held_out(self) -> tuple[MultiModalKG, dict[str, int]]:
        """This graph with :meth:`redundant_held_out` lines removed from valid and test, and the counts."""
        keep = {split: ~self.redundant_held_out(split) for split in ("valid", "test")}
        dropped = {split: int((~mask).sum()) for split, mask in keep.items()}
        if not any(dropped.values()):
            return self, dropped
        clean = MultiModalKG(
            self.name,
            self.entities,
            self.relations,
            self.train,
            self.valid[keep["valid"]],
            self.test[keep["test"]],
            self.modalities,
            self.entity_text,
        )
        clean.__dict__["train_index"] = self.train_index  # the training split is unchanged
        return clean, dropped

    # -- indexes -----------------------------------------------------------------------------
    @functools.cached_property
    def filter_index(self) -> FilterIndex:
        """Known answers over train ∪ valid ∪ test: the filter of the ranking protocol."""
        return FilterIndex(torch.cat([self.train, self.valid, self.test]), self.num_entities, self.num_relations)

    @functools.cached_property
    def train_index(self) -> FilterIndex:
        """Known answers over train only: what training may treat as true."""
        return FilterIndex(self.train, self.num_entities, self.num_relations)

    def statistics(self) -> dict[str, int | float]:
        """Counts for listings and reports."""
        seen = torch.zeros(self.num_entities, dtype=torch.bool)
        seen[self.train[:, 0]] = True
        seen[self.train[:, 2]] = True
        test_unseen = (~seen[self.test[:, 0]] | ~seen[self.test[:, 2]]).sum()
        stats: dict[str, int | float] = {
            "entities": self.num_entities,
            "relations": self.num_relations,
            "train": len(self.train),
            "valid": len(self.valid),
            "test": len(self.test),
            "test_triples_with_unseen_entity": int(test_unseen),
        }
        for name, modality in self.modalities.items():
            stats[f"{name}_dim"] = modality.dim
            stats[f"{name}_coverage"] = round(modality.coverage, 4)
        return stats

    def identity(self) -> dict[str, Any]:
        """What a model trained on this graph depends on: the digests of the entity and relation lists
        (names in id order) and of each modality's features and mask."""
        return {
            "entities_sha256": self.entities.digest(),
            "relations_sha256": self.relations.digest(),
            "features_sha256": {name: _tensor_digest(m.features, m.mask) for name, m in self.modalities.items()},
        }

    def __repr__(self) -> str:
        mods = ", ".join(f"{m.name}[{m.dim}]" for m in self.modalities.values()) or "structure only"
        return (
            f"MultiModalKG({self.name!r}: {self.num_entities} entities, {self.num_relations} relations, "
            f"{len(self.train)}/{len(self.valid)}/{len(self.test)} triples, {mods})"
        )


_CACHED = ("filter_index", "train_index")


def ranking_queries(triples: Tensor, num_relations: int) -> tuple[Tensor, Tensor, Tensor]:
    """Both directions of each triple as tail-prediction queries.

    Args:
        triples: shape ``(n, 3)``, ``(h, r, t)``.
        num_relations: ``R``.

    Returns:
        queries ``(2n, 2)`` of ``(entity, relation')``; targets ``(2n,)``; and ``is_head``
        ``(2n,)``, ``True`` for the head-prediction half (``(t, r + R) -> h``).
    """
    h, r, t = triples.long().unbind(1)
    queries = torch.cat([torch.stack([h, r], 1), torch.stack([t, r + num_relations], 1)])
    targets = torch.cat([t, h])
    is_head = torch.cat([torch.zeros_like(h, dtype=torch.bool), torch.ones_like(h, dtype=torch.bool)])
    return queries, targets, is_head


def _tensor_digest(*tensors: Tensor) -> str:
    """SHA-256 of tensors' shapes, dtypes and values."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()
