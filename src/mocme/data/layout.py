"""The project's own on-disk dataset layout, which every supported format converts into.

::

    my_graph/
      dataset.yaml          optional: name, description, source
      entities.txt          one entity name per line; line i (from 0) is entity id i
      relations.txt         one relation name per line
      train.tsv             head<TAB>relation<TAB>tail, by name
      valid.tsv
      test.tsv
      entity_text.tsv       optional: name<TAB>text (descriptions for feature extraction)
      features/
        text.safetensors    optional, one file per modality: "features" float32 (N, d)
        visual.safetensors  and "mask" bool (N,), row i = entity id i

Names may contain spaces but not tabs or newlines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from safetensors.torch import save_file

from mocme.data.kg import SPLITS, Modality, MultiModalKG
from mocme.data.readers import (
    ENTITIES_KEY,
    read_entity_text,
    read_features,
    read_name_list,
    read_name_triples,
    triples_to_ids,
)
from mocme.data.vocab import Vocabulary
from mocme.errors import DataError, MocmeError
from mocme.io import YAML_ERRORS, create_beside, exists, fsync_dir, fsync_tree, read_text

PathLike = str | os.PathLike[str]
MARKER = "entities.txt"


def is_layout(directory: PathLike) -> bool:
    """``entities.txt`` beside ``train.tsv``, and no kg-bert ``dev.tsv`` (kg-bert and MyGO folders
    ship an ``entities.txt`` too, with other split files)."""
    directory = Path(directory)
    return (directory / MARKER).is_file() and exists(directory / "train.tsv") and not exists(directory / "dev.tsv")


def load_layout(directory: PathLike, name: str | None = None) -> MultiModalKG:
    """Load a dataset saved in the project's layout."""
    directory = Path(directory)
    meta: dict = {}
    if (directory / "dataset.yaml").is_file():
        path, text = read_text(directory / "dataset.yaml")
        try:
            meta = yaml.safe_load(text) or {}
        except YAML_ERRORS as err:
            line = err.problem_mark.line + 1 if getattr(err, "problem_mark", None) else None
            raise DataError(path, f"invalid YAML ({getattr(err, 'problem', err)})", line) from None
        if not isinstance(meta, dict):
            raise DataError(path, "expected a mapping")
    entities = read_name_list(directory / "entities.txt")
    relations = read_name_list(directory / "relations.txt")
    splits = {}
    for split in SPLITS:
        path, named = read_name_triples(directory / f"{split}.tsv")
        splits[split] = triples_to_ids(path, named, entities, relations)
    text = None
    if (directory / "entity_text.tsv").is_file():
        text = read_entity_text(directory / "entity_text.tsv", entities, strict=True)
    kg = MultiModalKG(str(name or meta.get("name") or directory.name), entities, relations, **splits, entity_text=text)
    features_dir = directory / "features"
    if features_dir.is_dir():
        for path in sorted(features_dir.glob("*.safetensors")):
            kg.add_modality(read_features(path, entities, name=path.name.removesuffix(".safetensors")))
    return kg


def save_layout(
    kg: MultiModalKG,
    directory: PathLike,
    overwrite: bool = False,
    description: str = "",
    sidecars: Mapping[str, dict[str, Any]] | None = None,
) -> Path:
    """Write ``kg`` in the project's layout. The directory appears complete or not at all.

    ``overwrite`` replaces a dataset saved in this layout (or an empty folder), never a folder of
    other files. ``sidecars``: per modality, the record of how its features were made (a feature
    file's sidecar: ``mocme.features.feature_sidecars(kg)``), written beside the saved features with
    its extraction checksum in their header; without it, no sidecar is written, and new entities
    cannot later be given to a run on this folder by their text.
    """
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise MocmeError(f"{directory}: already exists (pass overwrite to replace it)")
    if directory.exists() and not (directory / MARKER).is_file() and any(directory.iterdir()):
        raise MocmeError(f"{directory}: exists and is not a dataset in the project's layout; refusing to replace it")
    for vocab in (kg.entities, kg.relations):
        bad = next((n for n in vocab if not _storable(n)), None)
        if bad is not None:
            raise MocmeError(
                f"cannot save name {bad!r}: names must be non-empty, free of tabs and line breaks, "
                "without surrounding whitespace and not starting with a byte-order mark"
            )
    for name in kg.modalities:
        if not re.fullmatch(r"[\w-]+", name):
            raise MocmeError(f"cannot save modality {name!r}: its file name must be letters, digits, '_' or '-'")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_beside(directory.parent, f".{directory.name}.", "", folder=True)
    try:
        meta = {"name": kg.name, "description": description, **kg.statistics()}
        (tmp / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
        (tmp / "entities.txt").write_text("".join(n + "\n" for n in kg.entities), encoding="utf-8")
        (tmp / "relations.txt").write_text("".join(n + "\n" for n in kg.relations), encoding="utf-8")
        ent, rel = kg.entities.names, kg.relations.names
        for split in SPLITS:
            rows = (f"{ent[h]}\t{rel[r]}\t{ent[t]}\n" for h, r, t in kg.split(split).tolist())
            (tmp / f"{split}.tsv").write_text("".join(rows), encoding="utf-8")
        if kg.entity_text is not None:
            rows = (f"{ent[i]}\t{' '.join(t.split())}\n" for i, t in enumerate(kg.entity_text) if t)
            (tmp / "entity_text.tsv").write_text("".join(rows), encoding="utf-8")
        if kg.modalities:
            (tmp / "features").mkdir()
            for modality in kg.modalities.values():
                target = tmp / "features" / f"{modality.name}.safetensors"
                record = (sidecars or {}).get(modality.name)
                save_modality(modality, target, kg.entities, record.get("checksum") if record else None)
                if record is not None:  # what made the features (a text encoder, for entities added later)
                    record = {**record, "file": target.name}
                    target.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        fsync_tree(tmp)
        _replace_directory(tmp, directory)
        fsync_dir(directory.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


def _replace_directory(new: Path, directory: Path) -> None:
    """Rename ``new`` to ``directory``; an existing one is moved aside first and deleted only afterwards."""
    if not directory.exists():
        os.replace(new, directory)
        return
    if not directory.is_dir():
        raise MocmeError(f"{directory}: exists and is not a directory")
    old = create_beside(directory.parent, f".{directory.name}.old.", "", folder=True)
    os.replace(directory, old)
    os.replace(new, directory)
    shutil.rmtree(old)


def _storable(name: str) -> bool:
    """Whether a name survives a write and read of the layout's line- and tab-separated files."""
    return (
        bool(name) and name == name.strip() and not name.startswith("\ufeff") and not any(c in name for c in "\t\n\r")
    )


def save_modality(modality: Modality, path: PathLike, entities: Vocabulary, checksum: str | None = None) -> None:
    """Write one modality as a safetensors file with ``features`` and ``mask``, rows in ``entities``' order
    (``checksum``: the extraction's, which its sidecar record states too)."""
    metadata = {"name": modality.name, "source": modality.source, ENTITIES_KEY: entities.digest()}
    save_file(
        {"features": modality.features.contiguous(), "mask": modality.mask.contiguous()},
        str(path),
        metadata=metadata | ({"checksum": checksum} if checksum else {}),
    )
