"""Name <-> id vocabularies for entities and relations."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


class Vocabulary:
    """An ordered list of unique names; the id of a name is its position."""

    def __init__(self, names: Iterable[str]):
        self.names: list[str] = list(names)
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        if len(self.index) != len(self.names):
            seen: set[str] = set()
            duplicate = next(n for n in self.names if n in seen or seen.add(n))
            raise ValueError(f"duplicate name {duplicate!r}")

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def __iter__(self):
        return iter(self.names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.names == other.names

    def digest(self) -> str:
        """SHA-256 of the names in id order: equal exactly when two vocabularies give every name the same id."""
        return hashlib.sha256("\0".join(self.names).encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} names)"

    def id(self, name: str) -> int:
        """The id of ``name``; raises ``KeyError`` with a readable message when unknown."""
        try:
            return self.index[name]
        except KeyError:
            raise KeyError(f"unknown name {name!r}") from None

    def name(self, ident: int) -> str:
        return self.names[ident]

    def lookup(self, names: Sequence[str]) -> list[int]:
        return [self.id(n) for n in names]
