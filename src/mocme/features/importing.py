"""Published feature files converted into the project's layout, aligned by entity name.

Two shapes of published file are understood:

- **A matrix** ``(rows, d)`` whose row i belongs to the i-th name of an ``entity2id`` file: the MMKGC
  repositories' ``torch.save`` tensors (MoMoK's ``img_features.pth``/``text_features.pth``, the
  ``embeddings/<dataset>-visual.pth``/``-textual.pth`` of NativE and its successors), ``.npy``
  arrays, a named array of an ``.npz``/``.safetensors``/HDF5 file (``key``). Without an
  ``entity2id`` file the rows must follow the dataset's own entity order, one per entity.
- **A mapping** from a key to a vector: a pickled ``dict`` or an HDF5 file with one dataset per key,
  as mmkb's ``*_ImageData.h5`` (image id -> ``(1, 4096)`` VGG16 vector). Keys are entity names, or
  image keys that an ``index`` file (``name<TAB>key`` lines, mmkb's ``*_ImageIndex.txt``) assigns
  to entities; an entity with several keys gets their mean, one with none is masked.

Published files often zero-fill (or mean-fill) missing entities; all-zero rows are counted in the
sidecar and, with ``mask_zero_rows``, masked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mocme.data.kg import MultiModalKG
from mocme.data.published import align_matrix, as_tensor, open_published, read_row_names
from mocme.data.vocab import Vocabulary
from mocme.errors import DataError, MocmeError
from mocme.features.cache import FeatureFile, checksum, file_digest, manifest, up_to_date, write_features
from mocme.features.image import read_index
from mocme.io import resolve

PathLike = str | os.PathLike[str]


def align_mapping(
    path: Path, mapping: Mapping[str, Any], entities: Vocabulary, index: PathLike | None
) -> tuple[Tensor, Tensor, int]:
    """Vectors looked up by entity name (or by the keys ``index`` lists); several keys are averaged.

    Returns:
        features ``(N, d)``, mask ``(N,)`` and the number of keys that belong to no entity.
    """
    keys = read_index(index, entities) if index is not None else {i: [name] for i, name in enumerate(entities)}
    features: Tensor | None = None
    mask = torch.zeros(len(entities), dtype=torch.bool)
    used: set[str] = set()
    for ident, names in keys.items():
        vectors = []
        for key in names:
            if key in mapping:
                used.add(key)
                value = as_tensor(path, mapping[key], f"entry {key!r}")
                if value.ndim and value.shape[-1] == 0:
                    raise DataError(path, f"entry {key!r} is a vector of dimension 0")
                vectors.append(value.reshape(-1, value.shape[-1]) if value.ndim else value.reshape(1, 1))
        if not vectors:
            continue
        if features is None:
            features = torch.zeros(len(entities), vectors[0].shape[1])
        bad = [v.shape[1] for v in vectors if v.shape[1] != features.shape[1]]
        if bad:
            raise DataError(path, f"entry {names[0]!r} has dimension {bad[0]}, others {features.shape[1]}")
        features[ident] = torch.cat(vectors).mean(0)
        mask[ident] = True
    if features is None:
        example = next(iter(mapping), "")
        hint = "pass --index FILE mapping entity names to these keys" if index is None else "check the index file"
        raise DataError(path, f"no key matched an entity (keys look like {str(example)[:60]!r}); {hint}")
    return features, mask, sum(1 for k in mapping if k not in used)


# -- the whole import ---------------------------------------------------------------------------------
def import_features(
    kg: MultiModalKG,
    path: PathLike,
    source: PathLike,
    entity2id: PathLike | None = None,
    index: PathLike | None = None,
    key: str | None = None,
    partial: bool = False,
    mask_zero_rows: bool = False,
    allow_pickle: bool = False,
    force: bool = False,
) -> FeatureFile:
    """Convert a published feature file into ``path`` (``.safetensors`` plus ``.json`` sidecar).

    ``entity2id`` names the rows of a matrix; ``index`` maps entity names to the keys of a mapping;
    ``partial`` masks dataset entities that a row list lacks instead of failing.
    """
    if entity2id is not None and index is not None:
        raise MocmeError("--entity2id names the rows of a matrix, --index the keys of a mapping: give one of them")
    source, entity2id, index = (resolve(p) if p is not None else None for p in (source, entity2id, index))
    digests = [file_digest(p) if p is not None else None for p in (source, entity2id, index)]
    request = checksum("import", digests, key, partial, mask_zero_rows, list(kg.entities))
    if not force and (existing := up_to_date(path, request)):
        return existing
    started = time.perf_counter()
    row_names = read_row_names(entity2id) if entity2id is not None else None
    with open_published(source, key, allow_pickle) as data:
        if isinstance(data, Mapping):
            if entity2id is not None:
                raise DataError(source, "holds one vector per key, not a matrix; use --index instead of --entity2id")
            features, mask, unused = align_mapping(source, data, kg.entities, index)
        else:
            if index is not None:
                raise DataError(source, "holds a matrix, not one vector per key; use --entity2id instead of --index")
            matrix = as_tensor(source, data, "matrix")
            names_path = resolve(entity2id) if entity2id is not None else None
            features, mask, unused = align_matrix(source, matrix, kg.entities, row_names, names_path, partial)
    finite = torch.isfinite(features).all(1)
    if not finite[mask].all():
        entity = int((mask & ~finite).nonzero()[0])
        raise DataError(source, f"the vector of entity {kg.entities.name(entity)[:60]!r} has a NaN or infinite value")
    zero = mask & (features == 0).all(1)
    if mask_zero_rows:
        mask = mask & ~zero
    if not mask.any():
        raise DataError(source, "no entity has a usable vector")
    info = manifest(
        path,
        "import",
        kg,
        features,
        mask,
        request,
        started,
        source=str(source.resolve()),
        source_sha256=digests[0],
        entity2id=str(Path(entity2id).resolve()) if entity2id is not None else None,
        index=str(Path(index).resolve()) if index is not None else None,
        key=key,
        unused_rows_or_keys=unused,
        zero_rows=int(zero.sum()),
        zero_rows_masked=mask_zero_rows,
    )
    return write_features(path, features, mask, info)
