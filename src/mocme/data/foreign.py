"""Readers of the third-party dataset layouts in :data:`mocme.data.formats.FORMATS`.

Each ``is_*`` looks at file names (and at most a first line); each ``load_*`` returns a
:class:`MultiModalKG` in the dataset's own id space (its ``entity2id`` order where it ships one,
else names in order of first appearance over train, valid, test) and raises a one-line
:class:`DataError` naming file, line and problem. Feature files the folder ships are attached by
:func:`attach_shipped_features`.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import cast

import torch
import yaml

from mocme.data.columns import COLUMNS, Columns, Row, detect_columns, reorder, split_row
from mocme.data.kg import SPLITS, Modality, MultiModalKG
from mocme.data.published import align_matrix, open_published, read_row_names
from mocme.data.readers import (
    _lines,
    read_id_triples,
    read_openke_triples,
    read_openke_vocabulary,
    triples_to_ids,
    vocabularies_from_names,
)
from mocme.data.vocab import Vocabulary
from mocme.errors import DataError
from mocme.io import YAML_ERRORS, exists, read_text, resolve

# Header words by the role of their column.
HEADER_ROLES = {
    **dict.fromkeys(("head", "subject", "source", "h"), "h"),
    **dict.fromkeys(("relation", "predicate", "r"), "r"),
    **dict.fromkeys(("tail", "object", "target", "t"), "t"),
}
SHIPPED_FEATURES = {"img_features": "visual", "text_features": "text", "visual": "visual", "textual": "text"}


def first_line(path: Path) -> str:
    """The first line of a plain or gzipped text file (BOM dropped), ``""`` when empty or unreadable."""
    path = resolve(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace") as handle:
            return handle.readline().rstrip("\r\n")
    except OSError:
        return ""


def _split_file(folder: Path, split: str, suffix: str, dev: bool = False) -> Path:
    name = "dev" if dev and split == "valid" else split
    return folder / f"{name}{suffix}"


# -- detection ---------------------------------------------------------------------------------------
def is_openke(folder: Path) -> bool:
    return exists(folder / "entity2id.txt") and exists(folder / "train2id.txt")


def is_libkge(folder: Path) -> bool:
    return exists(folder / "entity_ids.del") and exists(folder / "train.del")


def _ids_line(line: str) -> bool:
    parts = line.split()
    return len(parts) == 3 and all(p.lstrip("-").isdigit() for p in parts)


MYGO_ENTITIES = ("entity2id.txt", "entities.txt")
MYGO_RELATIONS = ("relation2id.txt", "relations.txt")


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if exists(folder / n)), None)


def is_mygo(folder: Path) -> bool:
    return (
        exists(folder / "train.txt")
        and _first_existing(folder, MYGO_ENTITIES) is not None
        and _ids_line(first_line(folder / "train.txt"))
    )


def is_momok(folder: Path) -> bool:
    return exists(folder / "train.txt") and first_line(folder / "train.txt").rstrip().endswith(" .")


def is_kb2e(folder: Path) -> bool:
    return exists(folder / "train.txt") and not _ids_line(first_line(folder / "train.txt"))


def _header_roles(line: str) -> str:
    """The role (``h``, ``r``, ``t``, ``?`` for a non-header word) of each tab-separated field of ``line``."""
    return "".join(HEADER_ROLES.get(p.strip().lower(), "?") for p in line.split("\t"))


def _has_header(path: Path) -> bool:
    return sorted(_header_roles(first_line(path))) == ["h", "r", "t"]


def is_pykeen(folder: Path) -> bool:
    train = folder / "train.tsv"
    return exists(train) and (exists(folder / "valid.tsv") or _has_header(train))


def is_kgbert(folder: Path) -> bool:
    return exists(folder / "train.tsv") and exists(folder / "dev.tsv")


# -- OpenKE and MyGO (ids) -------------------------------------------------------------------------------
def load_openke(folder: Path, name: str, columns: Columns | None = None) -> MultiModalKG:
    """OpenKE: count lines everywhere; ``*2id.txt`` triples in ``h t r`` order."""
    entities = read_openke_vocabulary(folder / "entity2id.txt")
    relations = read_openke_vocabulary(folder / "relation2id.txt")
    splits = {split: read_openke_triples(folder / f"{split}2id.txt", len(entities), len(relations)) for split in SPLITS}
    return attach_shipped_features(MultiModalKG(name, entities, relations, **splits), folder)


def load_mygo(folder: Path, name: str, columns: Columns | None = None) -> MultiModalKG:
    """MyGO / C2RS: ``{train,valid,test}.txt`` of tab-separated ids (``h r t`` unless ``columns`` says
    otherwise). Entity names from ``entity2id.txt`` (``name id`` lines, a count line optional) or
    ``entities.txt`` (one per line, in id order); relation names likewise from ``relation2id.txt`` or
    ``relations.txt``, or, where the folder has neither (MyGO's MKG-Y), the relation ids themselves."""
    entities = Vocabulary(read_row_names(_first_existing(folder, MYGO_ENTITIES)))
    relation_file = _first_existing(folder, MYGO_RELATIONS)
    relations = Vocabulary(read_row_names(relation_file)) if relation_file is not None else None
    order = columns or "hrt"
    unbounded = 2**62  # no relation list: every id is in range, and the list is the ids seen
    splits = {
        split: read_id_triples(
            folder / f"{split}.txt", len(entities), len(relations) if relations else unbounded, order, count_line=False
        )
        for split in SPLITS
    }
    if relations is None:
        used = max((int(t[:, 1].max()) + 1 for t in splits.values() if len(t)), default=0)
        relations = Vocabulary(str(i) for i in range(used))
    return attach_shipped_features(MultiModalKG(name, entities, relations, **splits), folder)


# -- names (KB2E, MoMoK, PyKEEN, kg-bert) ------------------------------------------------------------------
def _read_rows(path: Path, dotted: bool, header: bool) -> tuple[Path, list[Row], int, Columns | None]:
    """Raw three-name rows of one split file, its resolved path, the line number of its first row and
    the column order its header line gives (``None``: no header)."""
    path, lines = _lines(path)
    start, order = 1, None
    if header and lines and (order := header_columns(path, lines[0])) is not None:
        lines, start = lines[1:], 2
    rows = [split_row(path, line, number, dotted) for number, line in enumerate(lines, start=start)]
    return path, rows, start, order


def header_columns(path: Path, line: str) -> Columns | None:
    """The column order a header line names (one head, one relation and one tail word, e.g.
    ``head<TAB>relation<TAB>tail``), or ``None`` when the line is not a header but data."""
    roles = _header_roles(line)
    if sorted(roles) != ["h", "r", "t"]:
        return None
    if roles not in COLUMNS:
        raise DataError(path, f"header puts the columns in the order {roles!r}; supported: {', '.join(COLUMNS)}", 1)
    return cast(Columns, roles)


def _named_graph(
    folder: Path,
    name: str,
    files: list[Path],
    columns: Columns | None,
    dotted: bool = False,
    header: bool = False,
    fixed: Columns | None = None,
) -> MultiModalKG:
    """A graph from three split files of name rows; the vocabularies from ``*2id.txt`` when shipped."""
    read = [_read_rows(f, dotted, header) for f in files]
    headed = {order for *_, order in read if order is not None}
    if len(headed) > 1:
        raise DataError(folder, f"the split files' headers give different column orders ({', '.join(sorted(headed))})")
    vocab_files = [folder / "entity2id.txt", folder / "relation2id.txt"]
    entities = relations = None
    if exists(vocab_files[0]):
        entities = read_openke_vocabulary(vocab_files[0], count_line=False)
    if exists(vocab_files[1]):
        relations = read_openke_vocabulary(vocab_files[1], count_line=False)
    order = columns or next(iter(headed), None) or fixed or detect_columns(folder, [r[1] for r in read], relations)
    named = [(path, reorder(rows, order), start) for path, rows, start, _ in read]
    if entities is None or relations is None:
        found_entities, found_relations = vocabularies_from_names([rows for _, rows, _ in named])
        entities, relations = entities or found_entities, relations or found_relations
    train, valid, test = (triples_to_ids(path, rows, entities, relations, start) for path, rows, start in named)
    return attach_shipped_features(MultiModalKG(name, entities, relations, train, valid, test), folder)


def load_names_txt(folder: Path, name: str, columns: Columns | None = None) -> MultiModalKG:
    """KB2E / IKRL and MoMoK ``{train,valid,test}.txt``: ``h r t .`` lines or tab-separated names, order detected."""
    dotted = is_momok(folder)
    files = [_split_file(folder, split, ".txt") for split in SPLITS]
    return _named_graph(folder, name, files, columns, dotted=dotted, fixed="hrt" if dotted else None)


def load_tsv(folder: Path, name: str, columns: Columns | None = None) -> MultiModalKG:
    """kg-bert ``{train,dev,test}.tsv`` and PyKEEN ``{train,valid,test}.tsv`` (an optional header line)."""
    dev = exists(folder / "dev.tsv")
    files = [_split_file(folder, split, ".tsv", dev) for split in SPLITS]
    return _named_graph(folder, name, files, columns, header=True, fixed="hrt")


# -- LibKGE ------------------------------------------------------------------------------------------------
def _libkge_files(folder: Path) -> dict[str, str]:
    """Split and map file names from ``dataset.yaml`` (``dataset.files.<key>.filename``), else the defaults."""
    files = {"entity_ids": "entity_ids.del", "relation_ids": "relation_ids.del"}
    files |= {split: f"{split}.del" for split in SPLITS}
    if not (folder / "dataset.yaml").is_file():
        return files
    path, text = read_text(folder / "dataset.yaml")
    try:
        meta = yaml.safe_load(text) or {}
    except YAML_ERRORS as err:
        line = err.problem_mark.line + 1 if getattr(err, "problem_mark", None) else None
        raise DataError(path, f"invalid YAML ({getattr(err, 'problem', err)})", line) from None
    dataset = meta.get("dataset", {}) if isinstance(meta, dict) else {}
    if not isinstance(dataset, dict):
        raise DataError(path, "dataset must be a mapping")
    listed = dataset.get("files", {})
    if not isinstance(listed, dict):
        raise DataError(path, "dataset.files must be a mapping")
    for key in files:
        entry = listed.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
            files[key] = entry["filename"]
        flat = dataset.get(f"files.{key}.filename")  # LibKGE writes its keys flattened
        if isinstance(flat, str):
            files[key] = flat
    return files


def read_libkge_map(path: Path) -> Vocabulary:
    """A LibKGE ``*_ids.del`` map: ``index<TAB>name`` lines covering ids ``0 .. n-1``."""
    path, lines = _lines(path)
    names: list[str | None] = [None] * len(lines)
    for number, line in enumerate(lines, start=1):
        index, sep, label = line.partition("\t")
        if not sep or not label.strip():
            raise DataError(path, "expected 'index<TAB>name'", number)
        if not (index.strip().isascii() and index.strip().isdigit()) or int(index) >= len(lines):
            raise DataError(path, f"index {index.strip()[:40]!r} is not in [0, {len(lines)})", number)
        if names[int(index)] is not None:
            raise DataError(path, f"index {int(index)} appears twice", number)
        names[int(index)] = label.strip()
    try:
        return Vocabulary([n for n in names if n is not None])
    except ValueError as err:
        raise DataError(path, str(err)) from None


def load_libkge(folder: Path, name: str, columns: Columns | None = None) -> MultiModalKG:
    """LibKGE: ``entity_ids.del`` / ``relation_ids.del`` maps and ``s<TAB>p<TAB>o`` id triples."""
    files = _libkge_files(folder)
    entities = read_libkge_map(folder / files["entity_ids"])
    relations = read_libkge_map(folder / files["relation_ids"])
    splits = {
        split: read_id_triples(folder / files[split], len(entities), len(relations), "hrt", count_line=False)
        for split in SPLITS
    }
    return MultiModalKG(name, entities, relations, **splits)


# -- shipped feature files -----------------------------------------------------------------------------------
def shipped_feature_files(folder: Path) -> dict[str, Path]:
    """``*.pth`` files in ``folder`` or ``folder/embeddings``, by modality name.

    MoMoK's ``img_features.pth`` / ``text_features.pth`` and NativE's ``<ds>-visual.pth`` /
    ``<ds>-textual.pth`` become ``visual`` and ``text``; any other ``NAME.pth`` is modality ``NAME``.
    """
    found: dict[str, Path] = {}
    for path in sorted([*folder.glob("*.pth"), *folder.glob("embeddings/*.pth")]):
        stem = path.stem
        key = stem if stem in SHIPPED_FEATURES else stem.rsplit("-", 1)[-1]
        found.setdefault(SHIPPED_FEATURES.get(key, stem), path)
    return found


def attach_shipped_features(kg: MultiModalKG, folder: Path) -> MultiModalKG:
    """Attach the folder's shipped ``*.pth`` matrices, their rows in ``entity2id.txt`` order, aligned by name.

    Without ``entity2id.txt`` the rows must follow the graph's own entity order. Entities the rows
    do not name, and all-zero rows (how those repositories fill a missing image), are masked.
    """
    names_path = folder / "entity2id.txt"
    row_names = read_row_names(names_path) if exists(names_path) else None
    for modality, path in shipped_feature_files(folder).items():
        with open_published(path) as data:
            if not isinstance(data, torch.Tensor):
                raise DataError(path, f"expected a tensor of shape (entities, dim), found {type(data).__name__}")
            matrix = data.float()
        features, mask, _ = align_matrix(
            path, matrix, kg.entities, row_names, resolve(names_path) if row_names else None, partial=True
        )
        mask &= ~(features == 0).all(1)
        if not torch.isfinite(features[mask]).all():
            raise DataError(path, "contains a NaN or infinite value")
        kg.add_modality(Modality(modality, features, mask, source=str(path)))
    return kg
