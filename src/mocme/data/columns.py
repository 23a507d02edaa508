"""Column order of name triples: which of the three columns holds the relation.

Formats that do not fix the order (thunlp KB2E ships ``head tail relation``, MoMoK and PyKEEN
``head relation tail``) are read as raw three-column rows; the order is then either given
(``--columns`` / ``dataset.columns``) or detected. Detection is unambiguous only: exactly one column
must hold values that never appear in the two others, and fewer distinct ones than each, while
those two share entities (or, with a relation vocabulary, exactly one column must hold mostly
relation names; a name it lacks is then reported with its file and line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mocme.data.vocab import Vocabulary
from mocme.errors import DataError, MocmeError

Columns = Literal["hrt", "htr", "rht"]
COLUMNS: tuple[Columns, ...] = ("hrt", "htr", "rht")
_RELATION_COLUMN: dict[int, Columns] = {1: "hrt", 2: "htr", 0: "rht"}
Row = tuple[str, str, str]


def detect_columns(source: Path, splits: list[list[Row]], relations: Vocabulary | None = None) -> Columns:
    """The column order of ``splits`` (raw rows), or a one-line error asking for ``--columns``.

    Args:
        source: the file or folder the rows come from, named in the error.
        splits: rows of every split, each a 3-tuple of names in file order.
        relations: the relation vocabulary when the folder ships one.
    """
    values = [{row[c] for rows in splits for row in rows} for c in range(3)]
    if relations is not None:  # the column of relation names (mostly: a misspelt one is reported by line later)
        share = [len(v & relations.index.keys()) / len(v) if v else 0.0 for v in values]
        best = max(range(3), key=share.__getitem__)
        candidates = [best] if share[best] > 0 and sorted(share)[1] < share[best] / 2 else []
    else:
        candidates = []
        for c in range(3):
            others = values[(c + 1) % 3], values[(c + 2) % 3]
            disjoint = not values[c] & (others[0] | others[1])
            fewer = len(values[c]) < min(len(others[0]), len(others[1]))  # relations: fewer than entities
            if disjoint and fewer and others[0] & others[1]:
                candidates.append(c)
    if len(candidates) != 1:
        raise MocmeError(
            f"{source}: cannot tell which column holds the relations; "
            "give --columns hrt, htr or rht (config key dataset.columns)"
        )
    return _RELATION_COLUMN[candidates[0]]


def reorder(rows: list[Row], columns: Columns) -> list[Row]:
    """Rows in file order -> ``(head, relation, tail)``."""
    if columns == "hrt":
        return rows
    if columns == "htr":
        return [(h, r, t) for h, t, r in rows]
    return [(h, r, t) for r, h, t in rows]


def split_row(path: Path, line: str, number: int, dotted: bool) -> Row:
    """Three names from one line: tab-separated, or (``dotted``) ``h r t .`` separated by whitespace."""
    if dotted:
        parts = line.split()
        if len(parts) != 4 or parts[3] != ".":
            raise DataError(path, f"expected 'head relation tail .', got {len(parts)} fields", number)
        parts = parts[:3]
    else:
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 3:
            raise DataError(path, f"expected 3 tab-separated columns, got {len(parts)}", number)
    if not all(parts):
        raise DataError(path, "empty name", number)
    return parts[0], parts[1], parts[2]
