"""Inductive prediction: entities the graph never saw, placed by a trained MoCME from their modalities.

A new entity is a name plus the inputs of its modalities: a text, which the text encoder that made
the run's text features encodes again (the one the feature file's sidecar records), and/or a raw
feature vector per modality, as the run's feature files hold them. :func:`add_entities` returns
the model and the graph extended by the new entities (ids ``N`` to ``N + n - 1``): structure is
unavailable for them, so their representation comes from the trained experts and fusion of the
modalities they have, and ranking, prediction and explanation work on them unchanged, as query
entities and as answers, without retraining. A structure-only model cannot do this: it knows an
entity only by the embedding it trained for it.

    import mocme

    config, kg, model = mocme.load_run("runs/demo")
    answers = mocme.predict(model, kg, "Lyon", "located_in", new_entities={"Lyon": "a city in France"})
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mocme.data.kg import Modality, MultiModalKG
from mocme.data.published import read_entity_vectors
from mocme.data.readers import normalised_text, read_new_entity_text
from mocme.errors import DataError, MocmeError
from mocme.features import text as text_features
from mocme.features.cache import source_sidecar
from mocme.features.runtime import quiet_downloads
from mocme.io import resolve
from mocme.models import KGModel, MoCME
from mocme.prediction import Direction, Prediction, check_direction
from mocme.prediction import predict as predict_known

PathLike = str | os.PathLike[str]


@dataclass
class NewEntity:
    """An entity that is not in the graph: its name and the inputs of its modalities.

    Attributes:
        name: a name that no entity of the graph has.
        text: encoded by the text encoder that made the run's text features (``None``: no text).
        features: raw feature vectors, shape ``(d,)``, by modality name.
        where: where the entity was given (``file:line``), for error messages.
        feature_where: where each vector was given, by modality name.
        text_modality: the modality a text was given under (mapping form), checked to be one of the
            run's text modalities; ``None``: the text goes to every text modality.
    """

    name: str
    text: str | None = None
    features: dict[str, Tensor] = field(default_factory=dict)
    where: str = ""
    feature_where: dict[str, str] = field(default_factory=dict)
    text_modality: str | None = None

    def location(self, modality: str | None = None) -> str:
        """Where this entity (or one of its vectors) was given, as error messages start."""
        return self.feature_where.get(modality or "", "") or self.where or f"new entity {self.name!r}"


NewEntities = NewEntity | Sequence[NewEntity] | Mapping[str, Any]
"""New entities as a :class:`NewEntity` or several, or a mapping from each name to its text (a ``str``),
its ``NewEntity``, or its inputs by modality (a ``str`` is a text to encode under a text modality, a
vector, list or array is that modality's features)."""


def as_new_entities(entities: NewEntities) -> list[NewEntity]:
    """:class:`NewEntity` objects from the forms :data:`NewEntities` allows."""
    if isinstance(entities, NewEntity):
        return _normalised([entities])
    if isinstance(entities, str) or not isinstance(entities, Mapping | Iterable):
        raise MocmeError(
            f"new entities: expected NewEntity objects or a mapping by name, got {type(entities).__name__}"
        )
    if not isinstance(entities, Mapping):
        out = list(entities)
        bad = next((e for e in out if not isinstance(e, NewEntity)), None)
        if bad is not None:
            raise MocmeError(f"new entities: expected NewEntity objects or a mapping, got {type(bad).__name__}")
        return _normalised(out)
    out = []
    for name, value in entities.items():
        where = f"new_entities[{name!r}]"
        if isinstance(value, NewEntity):
            if value.name != name:
                raise MocmeError(f"{where}: the key names another entity than its NewEntity ({value.name!r})")
            out.append(value)
        elif isinstance(value, str):
            out.append(NewEntity(str(name), value, where=where))
        elif isinstance(value, Mapping):
            entity = NewEntity(str(name), where=where)
            for modality, given in value.items():
                if isinstance(given, str):
                    if entity.text is not None:
                        raise MocmeError(f"{where}: give one text per entity")
                    entity.text, entity.text_modality = given, str(modality)
                else:
                    entity.features[str(modality)] = given
                entity.feature_where[str(modality)] = f"{where}[{modality!r}]"
            out.append(entity)
        else:
            raise MocmeError(f"{where}: expected a text or a mapping of modality inputs, got {type(value).__name__}")
    return _normalised(out)


def _normalised(entities: list[NewEntity]) -> list[NewEntity]:
    """Each text as the file readers and training see it (whitespace runs are one space, blank is no
    text) and each vector a float32 tensor; a text that is not a string or a vector that is not
    numeric is a one-line error."""
    out = []
    for entity in entities:
        if entity.text is not None and not isinstance(entity.text, str):
            where = entity.location(entity.text_modality)
            raise MocmeError(f"{where}: a text must be a string, got {type(entity.text).__name__}")
        features = {}
        for modality, given in entity.features.items():
            try:
                features[modality] = torch.as_tensor(np.asarray(given, dtype=np.float32))
            except (TypeError, ValueError):
                raise MocmeError(f"{entity.location(modality)}: not a numeric vector") from None
        text = normalised_text(entity.text) if entity.text is not None else None
        out.append(dataclasses.replace(entity, text=text, features=features))
    return out


def read_new_entities(
    text_file: PathLike | None = None,
    features: Mapping[str, PathLike] | None = None,
    modalities: Sequence[str] | None = None,
) -> list[NewEntity]:
    """New entities from files: ``name<TAB>text`` lines and feature vectors by modality.

    Args:
        text_file: ``name<TAB>text`` lines, one entity each (an empty text: the entity has none).
        features: per modality name, a file of the new entities' vectors: ``name<TAB>v1 v2 ...``
            lines (``.tsv``/``.txt``), a mapping keyed by name (a ``torch.save`` dict, ``.npz``,
            ``.safetensors``), or a matrix whose rows follow ``text_file``'s order.
        modalities: the run's feature modalities; a file for another modality is an error.

    Every error names the file and, where it has one, the line.
    """
    features = dict(features or {})
    if modalities is not None:
        for name, path in features.items():
            if name not in modalities:
                have = ", ".join(modalities) or "none"
                raise MocmeError(f"{resolve(path)}: this run has no modality {name!r} (it has: {have})")
    entities: dict[str, NewEntity] = {}
    order = None
    if text_file is not None:
        path = resolve(text_file)
        for name, text, line in read_new_entity_text(path):
            entities[name] = NewEntity(name, text, where=f"{path}:{line}")
        if not entities:
            raise DataError(path, "lists no entities (expected 'name<TAB>text' lines)")
        order = list(entities)
    for modality, path in features.items():
        rows = read_entity_vectors(path, order)
        if not rows:
            raise DataError(resolve(path), "holds no vectors")
        for name, vector, where in rows:
            entity = entities.setdefault(name, NewEntity(name, where=where))
            entity.features[modality] = vector
            entity.feature_where[modality] = where
    return list(entities.values())


def add_entities(
    model: KGModel, kg: MultiModalKG, entities: NewEntities, *, device: str = "cpu"
) -> tuple[MoCME, MultiModalKG]:
    """The model and graph extended by entities that are not in the graph, placed from their modalities.

    The new entities get ids ``N`` to ``N + n - 1`` in the returned graph (no triple has them);
    the returned model encodes them with its trained experts and fusion, structure unavailable.
    Texts are encoded (on ``device``) by the text encoder each text modality's sidecar records.

    Raises:
        MocmeError: in one line naming the entity's file and line: a structure-only model, a name
            the graph has or that is given twice, an unknown modality, a vector of the wrong
            dimension, an entity with no input, or text that this run's features cannot be made
            from (no sidecar, no text encoder, another encoder installed now).
    """
    entities = as_new_entities(entities)
    if not isinstance(model, MoCME):
        kind = type(getattr(model, "interaction", model)).__name__
        raise MocmeError(
            f"{kind} is a structure-only model: it cannot place an entity it never saw (it knows each entity "
            "only by the embedding it trained for it); new entities need a MoCME run with feature modalities"
        )
    if not kg.modalities:
        raise MocmeError(
            "this MoCME run has no feature modality (structure only), so it cannot place an entity it never saw"
        )
    if kg.num_entities != model.num_entities or list(kg.modalities) != model.modalities[1:]:
        raise MocmeError(f"{kg.name}: this graph is not the one the model was built from")
    if not entities:
        raise MocmeError("no new entities given")
    _check(entities, kg)
    texts = {e.name: e.text for e in entities if e.text is not None}
    encoded = _encode_texts(kg, texts, device) if texts else {}
    new: dict[str, Modality] = {}
    for name, modality in kg.modalities.items():
        rows = torch.zeros(len(entities), modality.dim)
        mask = torch.zeros(len(entities), dtype=torch.bool)
        for i, entity in enumerate(entities):
            vector = entity.features.get(name)
            if name in encoded and entity.text is not None:
                if vector is not None:
                    raise MocmeError(
                        f"{entity.location(name)}: modality {name!r} of {entity.name!r} is given both as a text "
                        "and as a vector; give one"
                    )
                vector = encoded[name][entity.text]
            if vector is not None:
                rows[i], mask[i] = vector, True
        new[name] = Modality(name, rows, mask, "new entities")
    names = [e.name for e in entities]
    extended_kg = kg.with_new_entities(names, new, [e.text for e in entities])
    extended = model.with_new_entities(kg, {n: m.features for n, m in new.items()}, {n: m.mask for n, m in new.items()})
    extended.eval()
    return extended, extended_kg


def predict(
    model: KGModel,
    kg: MultiModalKG,
    entity: str,
    relation: str,
    *,
    new_entities: NewEntities | None = None,
    direction: Direction = "tail",
    top: int = 10,
    exclude_known: bool = False,
    explain: bool = False,
    target: str | None = None,
) -> Prediction:
    """:func:`mocme.prediction.predict`, with entities that are not in the graph among the entities.

    ``new_entities`` (see :func:`add_entities`) may be the query ``entity`` or the ``target``, and
    are ranked among the answers. To ask many questions about the same new entities, call
    :func:`add_entities` once and :func:`mocme.prediction.predict` on its result.
    """
    check_direction(direction)
    if new_entities:
        model, kg = add_entities(model, kg, new_entities)
    return predict_known(
        model,
        kg,
        entity,
        relation,
        direction=direction,
        top=top,
        exclude_known=exclude_known,
        explain=explain,
        target=target,
    )


def _check(entities: list[NewEntity], kg: MultiModalKG) -> None:
    """Names, modalities and dimensions of the new entities, each problem one line naming where it is."""
    first: dict[str, NewEntity] = {}
    have = ", ".join(kg.modalities)
    for entity in entities:
        if not entity.name.strip() or entity.name != entity.name.strip() or any(c in entity.name for c in "\t\n\r"):
            raise MocmeError(f"{entity.location()}: invalid entity name {entity.name!r}")
        if entity.name in kg.entities:
            raise MocmeError(
                f"{entity.location()}: entity {entity.name[:60]!r} is already in the graph; "
                "a new entity needs a name of its own"
            )
        if entity.name in first:
            raise MocmeError(
                f"{entity.location()}: new entity {entity.name[:60]!r} given twice "
                f"(first at {first[entity.name].location()})"
            )
        first[entity.name] = entity
        if entity.text is None and not entity.features:
            raise MocmeError(
                f"{entity.location()}: new entity {entity.name[:60]!r} has no input for any modality of this run "
                f"({have}); give its text or a feature vector"
            )
        if entity.text is not None and entity.text_modality is not None:
            name = entity.text_modality
            if name not in kg.modalities:
                raise MocmeError(f"{entity.location(name)}: this run has no modality {name!r} (it has: {have})")
            reason = _text_sidecar(kg.modalities[name])
            if isinstance(reason, str):
                raise MocmeError(f"{entity.location(name)}: a text, but modality {name!r} is not text: {reason}")
        for name, vector in entity.features.items():
            where = entity.location(name)
            if name not in kg.modalities:
                raise MocmeError(f"{where}: this run has no modality {name!r} (it has: {have})")
            dim = kg.modalities[name].dim
            if vector.ndim != 1:
                raise MocmeError(f"{where}: expected one vector of {dim} values, got shape {tuple(vector.shape)}")
            if len(vector) != dim:
                raise MocmeError(
                    f"{where}: {vector.numel()} values, but this run's {name!r} features have dimension {dim}"
                )
            if not torch.isfinite(vector).all():
                raise MocmeError(f"{where}: contains a NaN or an infinite value")


def _encode_texts(kg: MultiModalKG, texts: dict[str, str], device: str) -> dict[str, dict[str, Tensor]]:
    """Per text modality of ``kg``, the vector of each distinct text, made by that modality's recorded encoder."""
    sidecars, reasons = {}, []
    for name, modality in kg.modalities.items():
        found = _text_sidecar(modality)
        if isinstance(found, str):
            reasons.append(f"{name}: {found}")
        else:
            sidecars[name] = found
    if not sidecars:
        raise MocmeError(
            f"cannot encode the text of new entities: no modality of this run was made by a text encoder "
            f"({'; '.join(reasons)}); give their vectors with --feature NAME=FILE instead"
        )
    distinct = list(dict.fromkeys(texts.values()))
    out = {}
    quiet_downloads()
    for name, (info, sidecar) in sidecars.items():
        encoder = text_features.load_text_encoder(text_features.recorded_encoder(info, sidecar), device)
        vectors = text_features.encode_texts(encoder, distinct)
        if vectors.shape[1] != kg.modalities[name].dim:
            raise MocmeError(
                f"{sidecar}: the encoder gives {vectors.shape[1]}-d vectors, this run's {name!r} features are "
                f"{kg.modalities[name].dim}-d"
            )
        out[name] = dict(zip(distinct, vectors, strict=True))
    return out


def _text_sidecar(modality: Modality) -> tuple[dict[str, Any], Path] | str:
    """The sidecar record of a modality made by a text encoder, or why there is none."""
    found = source_sidecar(modality.source)
    if isinstance(found, str):
        return found
    if found[0].get("kind") != "text":
        return f"{modality.source} was made by '{found[0].get('kind', '?')}', not a text encoder"
    return found
