"""The format registry: every on-disk layout mocme reads, by name, with ``detect``, ``load`` and ``files``.

Both the benchmark registry (``data/registry.py``, which names each benchmark's format) and the
directory loader (``data/loading.py``, which detects it) go through :data:`FORMATS`. Formats are
tried in registry order; the first whose ``detect`` accepts a folder reads it. Readers live in
:mod:`mocme.data.foreign` (third-party layouts) and :mod:`mocme.data.layout` (the project's own).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mocme.data import foreign
from mocme.data.columns import Columns
from mocme.data.kg import MultiModalKG
from mocme.data.layout import is_layout, load_layout
from mocme.errors import MocmeError
from mocme.io import exists


@dataclass(frozen=True)
class Format:
    """One on-disk layout.

    Attributes:
        name: registry key (``dataset.format`` values, ``mocme inspect`` output).
        description: one line for docs and errors.
        detect: whether a folder is in this layout (cheap: file names and at most a first line).
        load: ``(folder, name, columns) -> MultiModalKG``; ``columns`` is ``None`` unless given by the user.
        files: the files a complete folder holds (the first existing of each ``|`` alternative).
    """

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, str, Columns | None], MultiModalKG]
    files: tuple[str, ...]


def _own(folder: Path, name: str, columns: Columns | None) -> MultiModalKG:
    return load_layout(folder, name)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "mocme",
            "the project's layout: entities.txt, relations.txt, {train,valid,test}.tsv (h r t names)",
            is_layout,
            _own,
            ("entities.txt", "relations.txt", "train.tsv", "valid.tsv", "test.tsv"),
        ),
        Format(
            "libkge",
            "LibKGE: dataset.yaml, entity_ids.del, relation_ids.del, {train,valid,test}.del (s p o ids)",
            foreign.is_libkge,
            foreign.load_libkge,
            ("entity_ids.del", "relation_ids.del", "train.del", "valid.del", "test.del"),
        ),
        Format(
            "openke",
            "OpenKE: entity2id.txt, relation2id.txt with count lines, {train,valid,test}2id.txt (h t r ids)",
            foreign.is_openke,
            foreign.load_openke,
            ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt"),
        ),
        Format(
            "mygo",
            "MyGO / C2RS: {train,valid,test}.txt of tab-separated h r t ids beside entity2id.txt or entities.txt "
            "(and relation2id.txt or relations.txt)",
            foreign.is_mygo,
            foreign.load_mygo,
            ("entity2id.txt", "relation2id.txt", "train.txt", "valid.txt", "test.txt"),
        ),
        Format(
            "momok",
            "MoMoK / MMRNS: {train,valid,test}.txt of 'h r t .' names",
            foreign.is_momok,
            foreign.load_names_txt,
            ("train.txt", "valid.txt", "test.txt"),
        ),
        Format(
            "kb2e",
            "thunlp KB2E / IKRL: {train,valid,test}.txt of tab-separated names (h t r, order detected), "
            "entity2id.txt optional, no count lines",
            foreign.is_kb2e,
            foreign.load_names_txt,
            ("train.txt", "valid.txt", "test.txt"),
        ),
        Format(
            "pykeen",
            "PyKEEN labelled TSV: {train,valid,test}.tsv of h r t names, with or without a header line",
            foreign.is_pykeen,
            foreign.load_tsv,
            ("train.tsv", "valid.tsv", "test.tsv"),
        ),
        Format(
            "kg-bert",
            "kg-bert: {train,dev,test}.tsv of tab-separated h r t names",
            foreign.is_kgbert,
            foreign.load_tsv,
            ("train.tsv", "dev.tsv", "test.tsv"),
        ),
    ]
}


def detect_format(folder: Path) -> Format:
    """The first registered format that recognises ``folder``; a one-line error when none does."""
    for fmt in FORMATS.values():
        if fmt.detect(folder):
            return fmt
    known = ", ".join(FORMATS)
    for train in ("train.tsv", "train.txt"):
        if exists(folder / train):  # a graph whose validation split is missing, not an unknown folder
            suffix = train.removeprefix("train")
            raise MocmeError(
                f"{folder}: {train} but no valid{suffix} (or dev{suffix}): give the validation split that "
                f"selects the model beside the train{suffix} and test{suffix} splits"
            )
    raise MocmeError(
        f"{folder}: no dataset found (expected entities.txt, OpenKE entity2id.txt, train.txt, train.tsv "
        f"or LibKGE entity_ids.del; known formats: {known})"
    )


def load_folder(folder: Path, columns: Columns | None = None) -> tuple[MultiModalKG, Format]:
    """Load ``folder`` in whichever registered format it is in, with shipped feature files attached.

    The graph is named after the folder, except that the project's layout may name itself in its
    ``dataset.yaml``.
    """
    fmt = detect_format(folder)
    if fmt.name == "mocme":
        return load_layout(folder), fmt
    return fmt.load(folder, folder.name, columns), fmt


__all__ = ["FORMATS", "Format", "detect_format", "load_folder"]
