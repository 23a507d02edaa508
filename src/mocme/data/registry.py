"""Known benchmarks: where their files are, how to read them, and their published sizes.

The data directory holds one folder per benchmark, laid out as the public sources serve them
(see ``mocme download`` and ``../shared/data/README.md``). It is found from, in order: an explicit
argument (``--data-dir``), the ``MOCME_DATA`` environment variable, or ``./data``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mocme.data.formats import FORMATS
from mocme.data.kg import MultiModalKG
from mocme.data.readers import normalised_text, read_entity_text
from mocme.data.vocab import Vocabulary
from mocme.errors import MocmeError
from mocme.io import resolve

PathLike = str | os.PathLike[str]
DATA_ENV = "MOCME_DATA"


@dataclass(frozen=True)
class Benchmark:
    """A known benchmark: its folder, file format, published sizes and entity-text source."""

    name: str
    folder: str
    format: str  # a key of mocme.data.formats.FORMATS
    sizes: tuple[int, int, int, int, int]  # entities, relations, train, valid, test
    text: str  # how entity text is obtained, for listings
    description: str

    def files(self) -> list[str]:
        return list(FORMATS[self.format].files)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "DB15K",
            "DB15K",
            "openke",
            (12842, 279, 79222, 9904, 9902),
            "names from DBpedia URIs",
            "DBpedia subset of MMKB (MMRNS split); valid repeats many train triples",
        ),
        Benchmark(
            "MKG-W",
            "MKG-W",
            "openke",
            (15000, 169, 34196, 4276, 4274),
            "none (Wikidata Q-ids)",
            "Wikidata subset (MMRNS split)",
        ),
        Benchmark(
            "MKG-Y",
            "MKG-Y",
            "openke",
            (15000, 28, 21310, 2665, 2663),
            "names from YAGO titles",
            "YAGO subset (MMRNS split)",
        ),
        Benchmark(
            "FB15K-237",
            "FB15K-237",
            "openke",
            (14541, 237, 272115, 17535, 20466),
            "short names",
            "Freebase subset without inverse-relation leakage",
        ),
        Benchmark(
            "WN18",
            "WN18",
            "openke",
            (40943, 18, 141442, 5000, 5000),
            "lemma + gloss",
            "WordNet subset (has inverse-relation leakage)",
        ),
        Benchmark(
            "WN18RR",
            "WN18RR",
            "kg-bert",
            (40943, 11, 86835, 3034, 3134),
            "lemma + gloss",
            "WordNet subset without inverse relations",
        ),
        Benchmark(
            "UMLS",
            "UMLS",
            "kg-bert",
            (135, 46, 5216, 652, 661),
            "name + description",
            "small biomedical ontology (fixture)",
        ),
    ]
}


def data_dir(explicit: PathLike | None = None) -> Path:
    """The benchmark data directory: the argument, else ``$MOCME_DATA``, else ``./data``."""
    if explicit:
        return Path(explicit)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path("data")


def benchmark(name: str) -> Benchmark:
    """Look up a benchmark by name, case-insensitively."""
    for key, spec in BENCHMARKS.items():
        if key.lower() == name.lower():
            return spec
    raise MocmeError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})")


def is_available(spec: Benchmark, directory: PathLike | None = None) -> bool:
    """Whether every file of ``spec`` is present (plain or gzipped) in the data directory."""
    folder = data_dir(directory) / spec.folder
    try:
        for file in spec.files():
            resolve(folder / file)
    except MocmeError:
        return False
    return True


def load_benchmark(name: str, directory: PathLike | None = None, text: bool = True) -> MultiModalKG:
    """Load a known benchmark from the data directory; ``text`` also attaches entity text."""
    spec = benchmark(name)
    folder = data_dir(directory) / spec.folder
    if not folder.is_dir():
        raise MocmeError(
            f"{folder}: benchmark {spec.name} not found; pass --data-dir, set {DATA_ENV}, "
            f"or fetch it with 'mocme download {spec.name}'"
        )
    kg = FORMATS[spec.format].load(folder, spec.name, None)
    if text:
        kg.entity_text = _TEXT_LOADERS[spec.name](folder, kg.entities)
    return kg


def resolve_exists(path: Path) -> bool:
    return path.exists() or path.with_name(path.name + ".gz").exists()


# -- entity text ------------------------------------------------------------------------------------
def readable_name(name: str) -> str:
    """Turn a URI or title into words: ``<http://dbpedia.org/resource/Rock_music>`` -> ``Rock music``."""
    name = name.strip("<>")
    name = re.sub(r"^.*/(resource|entity)/", "", name)
    return urllib.parse.unquote(name).replace("_", " ").strip()


def _names_as_text(folder: Path, entities: Vocabulary) -> list[str | None]:
    """Each name made readable, whitespace normalised as every other text source is."""
    return [normalised_text(readable_name(n)) for n in entities]


def _no_text(folder: Path, entities: Vocabulary) -> None:
    return None


def _text_file(*relative: str) -> Callable[[Path, Vocabulary], list[str | None] | None]:
    def load(folder: Path, entities: Vocabulary) -> list[str | None] | None:
        path = folder.joinpath(*relative)
        return read_entity_text(path, entities, strict=False) if resolve_exists(path) else None

    return load


def _umls_text(folder: Path, entities: Vocabulary) -> list[str | None] | None:
    if not resolve_exists(folder / "entity2textlong.txt"):
        return _text_file("entity2text.txt")(folder, entities)
    short = read_entity_text(folder / "entity2text.txt", entities, strict=False)
    long = read_entity_text(folder / "entity2textlong.txt", entities, strict=False)
    return [", ".join(p for p in (s, d) if p) or None for s, d in zip(short, long, strict=True)]


_TEXT_LOADERS: dict[str, Callable[[Path, Vocabulary], list[str | None] | None]] = {
    "DB15K": _names_as_text,
    "MKG-W": _no_text,
    "MKG-Y": _names_as_text,
    "FB15K-237": _text_file("entity2text.txt"),
    "WN18": _text_file("..", "WN18RR", "entity2text.txt"),
    "WN18RR": _text_file("entity2text.txt"),
    "UMLS": _umls_text,
}
