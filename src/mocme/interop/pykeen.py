"""PyKEEN interoperability (the ``peer`` extra): datasets in both directions.

- :func:`from_pykeen`: a PyKEEN dataset (an object or a name such as ``Nations``, ``Kinships``,
  ``UMLS``, which ship inside the pykeen wheel; the others download on first use) as a
  structure-only :class:`~mocme.data.kg.MultiModalKG`, so MoCME and the baselines train on it.
  In a run config: ``dataset.name: pykeen:Nations``.
- :func:`to_triples_factory` / :func:`to_pykeen_dataset`: a graph's splits as PyKEEN
  ``TriplesFactory`` objects sharing one entity and relation mapping, so PyKEEN models train on
  mocme's datasets. Feature modalities have no PyKEEN counterpart and are left out.

Ids are kept: entity ``i`` here is entity ``i`` there, so results and embeddings line up.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import torch

from mocme.data.kg import MultiModalKG
from mocme.data.vocab import Vocabulary
from mocme.errors import MocmeError
from mocme.extras import require

if TYPE_CHECKING:
    from pykeen.datasets import Dataset, EagerDataset
    from pykeen.triples import CoreTriplesFactory, TriplesFactory

PREFIX = "pykeen:"


def from_pykeen(dataset: Dataset | str, **dataset_kwargs: Any) -> MultiModalKG:
    """A PyKEEN dataset as a :class:`MultiModalKG` with the same ids and names.

    Args:
        dataset: a ``pykeen.datasets.Dataset``, or a name PyKEEN's dataset resolver knows
            (case-insensitive: ``Nations``, ``fb15k237``, ...), optionally prefixed ``pykeen:``.
        dataset_kwargs: passed to the dataset class when ``dataset`` is a name.
    """
    if isinstance(dataset, str):
        dataset = _instantiate(dataset.removeprefix(PREFIX), dataset_kwargs)
    metadata = getattr(dataset, "metadata", None)  # to_pykeen_dataset records the graph's name there
    name = (metadata.get("name") if isinstance(metadata, dict) else None) or type(dataset).__name__
    return from_triples_factories(dataset.training, dataset.validation, dataset.testing, name=name)


def from_triples_factories(
    training: CoreTriplesFactory,
    validation: CoreTriplesFactory | None = None,
    testing: CoreTriplesFactory | None = None,
    name: str = "pykeen",
) -> MultiModalKG:
    """Three PyKEEN triples factories (valid and test optional) as one :class:`MultiModalKG`.

    Names come from the training factory's ``entity_to_id`` and ``relation_to_id`` (ids as names
    for a label-less ``CoreTriplesFactory``); the other splits are mapped through their labels
    when their mappings differ.
    """
    entities = _vocabulary(training, "entity", training.num_entities, name)
    relations = _vocabulary(training, "relation", training.real_num_relations, name)
    splits = [_ids(f, entities, relations, name) if f is not None else None for f in (validation, testing)]
    empty = torch.zeros(0, 3, dtype=torch.long)
    return MultiModalKG(
        name,
        entities,
        relations,
        training.mapped_triples.long(),
        splits[0] if splits[0] is not None else empty,
        splits[1] if splits[1] is not None else empty,
    )


def to_triples_factory(kg: MultiModalKG, split: str = "train") -> TriplesFactory:
    """One split of ``kg`` as a PyKEEN ``TriplesFactory`` with ``kg``'s ids and names."""
    triples = require("pykeen.triples", extra="peer")
    return triples.TriplesFactory(
        mapped_triples=kg.split(split).clone(),
        entity_to_id=dict(kg.entities.index),
        relation_to_id=dict(kg.relations.index),
        metadata={"name": kg.name, "split": split},
    )


def to_pykeen_dataset(kg: MultiModalKG) -> EagerDataset:
    """``kg``'s train, valid and test splits as a PyKEEN ``EagerDataset`` (structure only)."""
    datasets = require("pykeen.datasets", extra="peer")
    return datasets.EagerDataset(
        training=to_triples_factory(kg, "train"),
        testing=to_triples_factory(kg, "test"),
        validation=to_triples_factory(kg, "valid"),
        metadata={"name": kg.name},
    )


def _instantiate(name: str, kwargs: dict[str, Any]) -> Dataset:
    datasets = require("pykeen.datasets", extra="peer")
    resolver = datasets.dataset_resolver
    try:
        cls = resolver.lookup(name)
    except (KeyError, ValueError):
        close = difflib.get_close_matches(resolver.normalize(name), sorted(resolver.options), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else f" (known: {', '.join(sorted(resolver.options))})"
        raise MocmeError(f"unknown PyKEEN dataset {name!r}{hint}") from None
    try:
        return cls(**kwargs)
    except Exception as err:  # downloads, parsing and bad keyword arguments raise many types
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise MocmeError(f"cannot load PyKEEN dataset {name!r} ({message})") from None


def _labels(factory: CoreTriplesFactory, kind: str) -> dict[str, int] | None:
    return getattr(factory, f"{kind}_to_id", None)


def _vocabulary(factory: CoreTriplesFactory, kind: str, count: int, name: str) -> Vocabulary:
    """Names ordered by id; PyKEEN's ids must be exactly ``0..count-1``."""
    mapping = _labels(factory, kind)
    if mapping is None:
        return Vocabulary(str(i) for i in range(count))
    by_id = sorted(mapping, key=mapping.__getitem__)
    if [mapping[label] for label in by_id] != list(range(count)):
        raise MocmeError(f"{name}: PyKEEN {kind} ids are not 0..{count - 1}")
    return Vocabulary(by_id)


def _ids(factory: CoreTriplesFactory, entities: Vocabulary, relations: Vocabulary, name: str) -> torch.Tensor:
    """A split's triples in the training factory's ids (re-mapped through labels where they differ)."""
    triples = factory.mapped_triples.long().clone()
    for column, kind, vocabulary in ((0, "entity", entities), (1, "relation", relations), (2, "entity", entities)):
        mapping = _labels(factory, kind)
        if mapping is None or dict(mapping) == vocabulary.index:
            continue
        label_of = {i: label for label, i in mapping.items()}
        try:
            ours = {i: vocabulary.index[label_of[i]] for i in triples[:, column].unique().tolist()}
        except KeyError as err:
            problem = f"{kind} {err.args[0]!r} of an evaluation split is not in the training mapping"
            raise MocmeError(f"{name}: {problem}") from None
        triples[:, column] = torch.tensor([ours[i] for i in triples[:, column].tolist()], dtype=torch.long)
    return triples
