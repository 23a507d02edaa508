"""Readers for the file formats the field uses. Each raises :class:`DataError` naming file and line.

- OpenKE ``entity2id.txt`` / ``relation2id.txt`` (count line, then ``name<ws>id``, split on the
  last whitespace) and ``train2id.txt``-style triples (count line, then ``h t r``).
- Tab-separated name triples ``h<TAB>r<TAB>t`` (kg-bert's ``train.tsv/dev.tsv/test.tsv``).
- Entity text files ``name<TAB>text``.
- Feature matrices in ``.safetensors``, ``.npy`` and ``.pt``, row-aligned to the entity vocabulary.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mocme.data.kg import Modality
from mocme.data.vocab import Vocabulary
from mocme.errors import DataError
from mocme.io import read_text, resolve

PathLike = str | os.PathLike[str]


def _lines(path: PathLike) -> tuple[Path, list[str]]:
    """Non-trailing lines of a text file; a blank line before the end is an error."""
    path, text = read_text(path)
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError(path, "empty line", number)
    return path, lines


def _count_line(path: Path, lines: list[str]) -> int:
    """Check the OpenKE count line against the number of lines that follow it."""
    if not lines:
        raise DataError(path, "file is empty (expected a count on line 1)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise DataError(path, f"line 1 must be the number of entries, got {lines[0].strip()[:40]!r}", 1) from None
    if count != len(lines) - 1:
        raise DataError(path, f"count line says {count} entries but the file has {len(lines) - 1}", 1)
    return count


# -- OpenKE ----------------------------------------------------------------------------------
def read_openke_vocabulary(path: PathLike, count_line: bool = True) -> Vocabulary:
    """Read ``entity2id.txt`` / ``relation2id.txt``: a count, then ``name<ws>id`` lines.

    With ``count_line=False`` (thunlp KB2E, MyGO) the count line is optional: a first line that
    is a lone integer equal to the number of lines after it is taken as one.
    """
    path, lines = _lines(path)
    if count_line or (lines and lines[0].strip() == str(len(lines) - 1)):
        count, body, start = _count_line(path, lines), lines[1:], 2
    else:
        count, body, start = len(lines), lines, 1
    names: list[str | None] = [None] * count
    first_line: dict[str, int] = {}
    for number, line in enumerate(body, start=start):
        parts = line.rstrip().rsplit(None, 1)
        if len(parts) != 2:
            raise DataError(path, "expected 'name<whitespace>id'", number)
        name, ident = parts[0].strip(), parts[1]
        try:
            index = int(ident)
        except ValueError:
            raise DataError(path, f"id {ident[:40]!r} is not an integer", number) from None
        if not 0 <= index < count:
            raise DataError(path, f"id {index} out of range [0, {count})", number)
        if names[index] is not None:
            raise DataError(path, f"id {index} appears twice", number)
        if name in first_line:
            raise DataError(path, f"duplicate name {name[:60]!r} (first on line {first_line[name]})", number)
        first_line[name] = number
        names[index] = name
    return Vocabulary([n for n in names if n is not None])


def _vocabulary(path: Path, names: list[str], lines_offset: int) -> Vocabulary:
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=lines_offset):
        if name in seen:
            raise DataError(path, f"duplicate name {name[:60]!r} (first on line {seen[name]})", number)
        seen[name] = number
    return Vocabulary(names)


def read_openke_triples(path: PathLike, num_entities: int, num_relations: int) -> Tensor:
    """Read ``train2id.txt``-style files: a count, then ``head tail relation`` per line.

    Returns:
        LongTensor of shape ``(n, 3)`` in ``(h, r, t)`` order.
    """
    return read_id_triples(path, num_entities, num_relations, order="htr", count_line=True)


_COLUMN_NAMES = {"h": "head", "r": "relation", "t": "tail"}


def read_id_triples(path: PathLike, num_entities: int, num_relations: int, order: str, count_line: bool) -> Tensor:
    """Read triples of integer ids, whitespace-separated, in column ``order`` (``"htr"``, ``"hrt"``, ``"rht"``).

    ``count_line``: the first line is the number of triples (OpenKE). LibKGE ``*.del`` and MyGO
    ``train.txt`` files have none.

    Returns:
        LongTensor of shape ``(n, 3)`` in ``(h, r, t)`` order.
    """
    path, lines = _lines(path)
    first = 1
    if count_line:
        _count_line(path, lines)
        lines, first = lines[1:], 2
    rows = [line.split() for line in lines]
    for number, row in enumerate(rows, start=first):
        if len(row) != 3:
            names = " ".join(_COLUMN_NAMES[c] for c in order)
            raise DataError(path, f"expected 3 columns '{names}', got {len(row)}", number)
    for number, line in enumerate(lines, start=first):  # what numpy would misread: '1_0' as 10, '１' as 1
        if ("_" in line or not line.isascii()) and not all(_ID.fullmatch(v) for v in line.split()):
            raise DataError(path, "ids must be integers", number)
    try:
        ids = np.array(rows, dtype=np.int64).reshape(-1, 3)
    except (ValueError, OverflowError):
        _raise_first_bad_id(path, rows, num_entities, num_relations, order.index("r"), first)
        raise
    triples = torch.from_numpy(ids[:, [order.index(c) for c in "hrt"]].copy())
    _check_range(path, triples, num_entities, num_relations, first_line=first)
    return triples


_ID = re.compile(r"-?[0-9]+")


def _is_int(value: str) -> bool:
    """ASCII digits with an optional minus sign (``int`` and numpy also take ``1_0`` and ``１``)."""
    return _ID.fullmatch(value) is not None


def _raise_first_bad_id(
    path: Path, rows: list[list[str]], num_entities: int, num_relations: int, relation_column: int, first: int
) -> None:
    """Name the first row numpy could not convert: not an integer, or beyond int64."""
    for number, row in enumerate(rows, start=first):
        for column, value in enumerate(row):
            if not _is_int(value):
                raise DataError(path, "ids must be integers", number)
            if not -(2**63) <= int(value) < 2**63:
                kind, size = ("relation", num_relations) if column == relation_column else ("entity", num_entities)
                raise DataError(path, f"{kind} id {value[:40]} out of range [0, {size})", number)


def _check_range(path: Path, triples: Tensor, num_entities: int, num_relations: int, first_line: int) -> None:
    entity_bad = (triples[:, [0, 2]] < 0) | (triples[:, [0, 2]] >= num_entities)
    relation_bad = (triples[:, 1] < 0) | (triples[:, 1] >= num_relations)
    bad = entity_bad.any(1) | relation_bad
    if bad.any():
        row = int(bad.nonzero()[0])
        h, r, t = triples[row].tolist()
        if relation_bad[row]:
            problem = f"relation id {r} out of range [0, {num_relations})"
        else:
            problem = f"entity id {h if entity_bad[row, 0] else t} out of range [0, {num_entities})"
        raise DataError(path, problem, first_line + row)


# -- tab-separated names ----------------------------------------------------------------------
def read_name_triples(path: PathLike, header: bool = False) -> tuple[Path, list[tuple[str, str, str]]]:
    """Read ``h<TAB>r<TAB>t`` name triples (kg-bert ``*.tsv``, the project's own layout); ``header``:
    the first line names the columns and is skipped."""
    path, lines = _lines(path)
    triples = []
    for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(path, f"expected 3 tab-separated columns 'head relation tail', got {len(parts)}", number)
        h, r, t = (p.strip() for p in parts)
        if not (h and r and t):
            raise DataError(path, "empty name", number)
        triples.append((h, r, t))
    return path, triples


def vocabularies_from_names(named_splits: list[list[tuple[str, str, str]]]) -> tuple[Vocabulary, Vocabulary]:
    """Entity and relation vocabularies in order of first appearance over the given splits."""
    entities: dict[str, None] = {}
    relations: dict[str, None] = {}
    for triples in named_splits:
        for h, r, t in triples:
            entities.setdefault(h)
            relations.setdefault(r)
            entities.setdefault(t)
    return Vocabulary(entities), Vocabulary(relations)


def triples_to_ids(
    path: Path, triples: list[tuple[str, str, str]], entities: Vocabulary, relations: Vocabulary, first_line: int = 1
) -> Tensor:
    """Map name triples to ids; an unknown name is an error naming its line (the first is ``first_line``)."""
    ent, rel = entities.index, relations.index
    try:
        ids = [(ent[h], rel[r], ent[t]) for h, r, t in triples]
    except KeyError:
        for number, (h, r, t) in enumerate(triples, start=first_line):
            for kind, name, table in (("entity", h, ent), ("relation", r, rel), ("entity", t, ent)):
                if name not in table:
                    raise DataError(path, f"unknown {kind} {name[:60]!r}", number) from None
        raise
    return torch.tensor(ids, dtype=torch.long).reshape(-1, 3)


def read_name_list(path: PathLike) -> Vocabulary:
    """Read a vocabulary stored as one name per line (the project's own layout)."""
    path, lines = _lines(path)
    return _vocabulary(path, [line.strip() for line in lines], lines_offset=1)


# -- entity text --------------------------------------------------------------------------------
def read_entity_text(
    path: PathLike, entities: Vocabulary, strict: bool = True, skipped: list[tuple[str, int]] | None = None
) -> list[str | None]:
    """Read ``name<TAB>text`` lines into a list aligned with ``entities`` (``None`` = no text).

    Texts are normalised (``normalised_text``): an empty one is no text.

    With ``strict=False``, names outside the vocabulary are skipped (benchmark text files often
    cover a superset of a split's entities), and listed with their line in ``skipped`` if given;
    otherwise they are an error.
    """
    path, lines = _lines(path)
    texts: list[str | None] = [None] * len(entities)
    first_seen: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        name, sep, text = line.partition("\t")
        name = name.strip()
        if not sep:
            raise DataError(path, "expected 'name<TAB>text'", number)
        ident = entities.index.get(name)
        if ident is None:
            if strict:
                raise DataError(path, f"unknown entity {name[:60]!r}", number)
            if skipped is not None:
                skipped.append((name, number))
            continue
        if ident in first_seen:
            raise DataError(path, f"entity {name[:60]!r} listed twice (first on line {first_seen[ident]})", number)
        first_seen[ident] = number
        texts[ident] = normalised_text(text)
    return texts


def normalised_text(text: str) -> str | None:
    """An entity's text as the encoder sees it: runs of whitespace become one space; empty is ``None``.

    Both readers of ``name<TAB>text`` lines (entities of a graph, entities added after training)
    use it, so the same line gives the same text, and so the same features, either way.
    """
    return " ".join(text.split()) or None


# -- entities that are not in a graph ----------------------------------------------------------------
def read_new_entity_text(path: PathLike) -> list[tuple[str, str | None, int]]:
    """Read ``name<TAB>text`` lines of entities that are not in a graph: ``(name, text, line)`` each.

    An empty text is ``None`` (the entity has no text). Each name is listed once.
    """
    path, lines = _lines(path)
    out: list[tuple[str, str | None, int]] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        name, sep, text = line.partition("\t")
        name = name.strip()
        if not sep:
            raise DataError(path, "expected 'name<TAB>text'", number)
        _check_new_name(path, name, number, first_seen)
        out.append((name, normalised_text(text), number))
    return out


def read_vector_lines(path: PathLike) -> list[tuple[str, Tensor, int]]:
    """Read ``name<TAB>v1 v2 ... vd`` lines (values apart by spaces or tabs): ``(name, vector (d,), line)`` each."""
    path, lines = _lines(path)
    out: list[tuple[str, Tensor, int]] = []
    first_seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        name, sep, rest = line.partition("\t")
        name = name.strip()
        if not sep or not rest.strip():
            raise DataError(path, "expected 'name<TAB>values' (numbers apart by spaces or tabs)", number)
        _check_new_name(path, name, number, first_seen)
        try:
            vector = torch.tensor([float(value) for value in rest.split()])
        except ValueError:
            bad = next(v for v in rest.split() if not _is_float(v))
            raise DataError(path, f"value {bad[:40]!r} is not a number", number) from None
        if out and len(vector) != len(out[0][1]):
            raise DataError(path, f"{len(vector)} values, but line {out[0][2]} has {len(out[0][1])}", number)
        if not torch.isfinite(vector).all():
            raise DataError(path, "contains a NaN or an infinite value", number)
        out.append((name, vector, number))
    return out


def _check_new_name(path: Path, name: str, number: int, first_seen: dict[str, int]) -> None:
    if not name:
        raise DataError(path, "empty entity name", number)
    if name in first_seen:
        raise DataError(path, f"entity {name[:60]!r} listed twice (first on line {first_seen[name]})", number)
    first_seen[name] = number


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# -- feature files -------------------------------------------------------------------------------
FEATURE_SUFFIXES = (".safetensors", ".npy", ".pt", ".pth")


# The safetensors header key that records the entity order a feature file's rows follow.
ENTITIES_KEY = "entities_sha256"


def read_features(
    path: PathLike,
    entities: Vocabulary | int,
    name: str | None = None,
    mask_path: PathLike | None = None,
) -> Modality:
    """Read a feature matrix row-aligned to the entity vocabulary, with an optional mask.

    ``.safetensors`` and ``.pt`` files hold either one tensor or ``features`` plus ``mask``;
    ``.npy`` holds the matrix, and ``mask_path`` (any of these formats) an optional mask.
    Without a mask every entity has the modality. ``entities`` is the dataset's vocabulary (or just
    its size): a file that mocme wrote records its entity order, and one written for another order
    is refused rather than attached to the wrong entities.

    Returns:
        A :class:`Modality` whose ``features`` have shape ``(num_entities, d)``.
    """
    path = resolve(path)
    name = name or path.name.split(".")[0]
    num_entities = entities if isinstance(entities, int) else len(entities)
    if not isinstance(entities, int):
        _check_entity_order(path, entities)
    features, mask = _load_arrays(path)
    if mask_path is not None:
        if mask is not None:
            raise DataError(mask_path, f"{path.name} already contains a mask")
        mask_file = resolve(mask_path)
        mask, _ = _load_arrays(mask_file)
        mask = _as_mask(mask_file, mask, num_entities)
    elif mask is not None:
        mask = _as_mask(path, mask, num_entities)
    features = _as_features(path, features, num_entities)
    if mask is None:
        mask = torch.ones(num_entities, dtype=torch.bool)
    available = features[mask]
    finite = torch.isfinite(available).all(dim=1)
    if not finite.all():
        row = int(mask.nonzero()[~finite][0])
        kind = "a NaN" if torch.isnan(available[~finite][0]).any() else "an infinite value"
        raise DataError(path, f"row {row} (entity {row}) contains {kind}")
    return Modality(name, features, mask, source=str(path))


def _check_entity_order(path: Path, entities: Vocabulary) -> None:
    """A one-line error when ``path``'s header records another entity order than ``entities``'."""
    if path.suffix != ".safetensors":
        return
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            recorded = (handle.metadata() or {}).get(ENTITIES_KEY)
    except Exception:  # unreadable: _load_arrays says why
        return
    if recorded and recorded != entities.digest():
        raise DataError(
            path,
            f"was written for another entity list or order than this dataset's {len(entities)} entities, so its "
            "rows would belong to other entities; extract or import it again for this dataset",
        )


def _load_arrays(path: Path) -> tuple[object, object | None]:
    suffix = path.suffix
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
            return _split_dict(path, tensors)
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        if suffix in (".pt", ".pth"):
            data = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(data, dict):
                return _split_dict(path, data)
            return data, None
    except DataError:
        raise
    except Exception as err:  # truncated or corrupt files raise many library-specific types
        message = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DataError(path, f"cannot read {suffix} file ({message})") from None
    raise DataError(path, f"unsupported feature format {suffix!r} (use {', '.join(FEATURE_SUFFIXES)})")


def _split_dict(path: Path, tensors: dict) -> tuple[object, object | None]:
    if "features" in tensors:
        extra = set(tensors) - {"features", "mask"}
        if extra:
            found = sorted(map(str, extra))
            raise DataError(path, f"unexpected entries {found} (expected 'features' and optional 'mask')")
        return tensors["features"], tensors.get("mask")
    if len(tensors) == 1:
        return next(iter(tensors.values())), None
    raise DataError(path, f"expected a 'features' entry, found {sorted(map(str, tensors))[:5]}")


def _as_tensor(path: Path, value: object) -> Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise DataError(path, f"unsupported dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))
    if isinstance(value, Tensor):
        if value.layout != torch.strided or value.is_quantized or value.device.type != "cpu":
            raise DataError(path, f"expected a dense tensor, found layout {value.layout}, device {value.device.type}")
        return value
    raise DataError(path, f"expected a tensor, found {type(value).__name__}")


def _as_features(path: Path, value: object, num_entities: int) -> Tensor:
    features = _as_tensor(path, value)
    if not features.is_floating_point():
        raise DataError(path, f"features must be floating point, got {str(features.dtype).removeprefix('torch.')}")
    if features.ndim != 2:
        raise DataError(path, f"features must be a 2-D matrix (entities x dim), got shape {tuple(features.shape)}")
    if features.shape[0] != num_entities:
        raise DataError(path, f"has {features.shape[0]} rows, expected {num_entities} (one per entity)")
    if features.shape[1] == 0:
        raise DataError(path, "features have dimension 0")
    if features.dtype == torch.float64:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            features = features.float()
    return features.float().clone()


def _as_mask(path: Path, value: object, num_entities: int) -> Tensor:
    mask = _as_tensor(path, value)
    if mask.ndim != 1 or mask.shape[0] != num_entities:
        raise DataError(path, f"mask must have shape ({num_entities},), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() or mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise DataError(path, "mask must be boolean (or 0/1 integers)")
        mask = mask.bool()
    return mask
