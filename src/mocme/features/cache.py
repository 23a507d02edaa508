"""Where extracted features go, how they are written, and when a repeated extraction can be skipped.

Every extractor writes ``<directory>/<modality>.safetensors`` with ``features`` float32 ``(N, d)``
and ``mask`` bool ``(N,)`` (row i = entity id i, the project's layout), plus a JSON sidecar
``<modality>.json`` describing how it was made. The request checksum (inputs + model identity) is
stored both in the safetensors header and in the sidecar; a later call whose checksum matches the
header returns at once. The header is the authority, so a crash between the two writes never leaves
a file that looks fresh for the wrong request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import save
from torch import Tensor

from mocme.data.kg import MultiModalKG
from mocme.data.readers import ENTITIES_KEY
from mocme.errors import MocmeError
from mocme.io import atomic_path, write_json_atomic
from mocme.version import package_version

PathLike = str | os.PathLike[str]


@dataclass
class FeatureFile:
    """An extraction's output: the safetensors path and its sidecar record.

    ``cached`` is ``True`` when the file was already up to date and nothing was computed.
    """

    path: Path
    info: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def sidecar(self) -> Path:
        return sidecar_path(self.path)


def feature_path(directory: PathLike, name: str) -> Path:
    """``<directory>/<name>.safetensors``; ``name`` becomes the modality name when loaded."""
    if not re.fullmatch(r"[\w-]+", name):
        raise MocmeError(f"invalid modality name {name!r} (letters, digits, '_' and '-', such as 'text' or 'visual')")
    return Path(directory) / f"{name}.safetensors"


def sidecar_path(path: PathLike) -> Path:
    return Path(path).with_suffix(".json")


def checksum(*parts: Any) -> str:
    """SHA-256 of JSON-serialisable parts (order matters): the identity of an extraction request."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def file_digest(path: PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(path: PathLike) -> str:
    """SHA-256 over every file under ``path`` (relative names and contents); a file digests itself."""
    path = Path(path)
    if path.is_file():
        return file_digest(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode("utf-8") + b"\0")
        digest.update(file_digest(file).encode("ascii"))
    return digest.hexdigest()


def stored_checksum(path: PathLike) -> str | None:
    """The request checksum in a feature file's header, or ``None`` (no file, unreadable, none stored)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("checksum")
    except Exception:  # a missing or truncated file simply is not up to date
        return None


def source_sidecar(source: str | None) -> tuple[dict[str, Any], Path] | str:
    """The sidecar record and path of the feature file a modality was read from (``Modality.source``),
    where the record describes that very file (the same extraction checksum in both), or why there is none."""
    path = Path(source) if source else None
    if path is None or path.suffix != ".safetensors" or not path.is_file():
        return f"made from {source or 'an unknown source'}, which has no feature sidecar"
    sidecar = sidecar_path(path)
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{path} has no readable feature sidecar ({sidecar.name})"
    stored = stored_checksum(path)
    if not isinstance(record, dict) or stored is None or record.get("checksum") != stored:
        return f"{sidecar} describes another extraction than {path.name}"
    return record, sidecar


def feature_sidecars(kg: MultiModalKG) -> dict[str, dict[str, Any]]:
    """Per modality of ``kg`` read from an extracted feature file, that file's sidecar record: what
    ``mocme.data.save_layout(kg, folder, sidecars=...)`` needs to keep how the features were made
    (so that new entities' text can later be encoded by the same encoder)."""
    records = {}
    for name, modality in kg.modalities.items():
        found = source_sidecar(modality.source)
        if isinstance(found, tuple):
            records[name] = found[0]
    return records


def up_to_date(path: PathLike, request: str) -> FeatureFile | None:
    """The existing output when it and its sidecar were made for exactly this request, else ``None``.

    A sidecar that is missing, unreadable or left from an earlier request (a crash between the two
    writes) means the extraction runs again, so that both describe the same request afterwards.
    """
    if stored_checksum(path) != request:
        return None
    try:
        info = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or info.get("checksum") != request:
        return None
    return FeatureFile(Path(path), info, cached=True)


def manifest(
    path: PathLike,
    kind: str,
    kg: MultiModalKG,
    features: Tensor,
    mask: Tensor,
    request: str,
    started: float,
    **details: Any,
) -> dict[str, Any]:
    """The sidecar record of a feature file: what every kind of feature file states, then ``details``.

    Args:
        kind: ``text``, ``image`` or ``import``.
        features: shape ``(N, d)``; mask: bool, shape ``(N,)``.
        request: the checksum of what was asked for (see :func:`checksum`).
        started: ``time.perf_counter()`` when the work began.
    """
    return {
        "modality": Path(path).stem,
        "kind": kind,
        "dataset": kg.name,
        "entities": kg.num_entities,
        "entities_sha256": kg.entities.digest(),
        "available": int(mask.sum()),
        "dimension": int(features.shape[1]),
        **details,
        "checksum": request,
        "seconds": round(time.perf_counter() - started, 2),
        "mocme_version": package_version(),
    }


def write_features(path: PathLike, features: Tensor, mask: Tensor, info: dict[str, Any]) -> FeatureFile:
    """Write features, mask and sidecar atomically; ``info["checksum"]`` goes into the header too.

    Args:
        features: float32, shape ``(N, d)``; rows where ``mask`` is false are written as zeros.
        mask: bool, shape ``(N,)``.
    """
    path = Path(path)
    features = features.float().contiguous().clone()
    mask = mask.bool().contiguous()
    features[~mask] = 0.0
    record = {**info, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "file": path.name}
    metadata = {
        "name": path.stem,
        "checksum": str(info.get("checksum", "")),
        "source": str(info.get("source", "")),
        ENTITIES_KEY: str(info.get("entities_sha256", "")),
    }
    payload = save({"features": features, "mask": mask}, metadata=metadata)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(payload)
    except OSError as err:
        raise MocmeError(f"{path}: cannot write features ({err.strerror or err})") from None
    write_json_atomic(sidecar_path(path), record)
    return FeatureFile(path, record)


def usage_hint(result: FeatureFile, dataset: str, data_dir: PathLike | None = None) -> str:
    """How to attach a written feature file to a run, for the command line to print."""
    name = result.path.stem
    where = str(result.path.resolve())  # a run's config.yaml must find it from any working directory
    data = f" --data-dir {data_dir}" if data_dir else ""
    return (
        f"use it in a run with:  mocme train --set dataset.name={dataset}{data}"
        f" --set dataset.features.{name}.path={where}\n"
        f"or in a run config:\n"
        f"  dataset:\n"
        f"    name: {dataset}\n"
        f"    features:\n"
        f"      {name}: {{path: {where}}}"
    )
