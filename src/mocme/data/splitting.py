"""Cut one file of triples into train, valid and test splits, for a graph that comes as a single file.

The cut is seeded and transductive: a triple is held out only while each of its entities and its
relation keeps a training triple, so every evaluated entity and relation was seen in training.
"""

from __future__ import annotations

import torch

from mocme.errors import MocmeError

Triple = tuple[str, str, str]


def split_triples(
    triples: list[Triple], valid: float, test: float, seed: int = 0
) -> tuple[list[Triple], list[Triple], list[Triple]]:
    """``(train, valid, test)`` of the distinct ``triples``: about ``valid`` and ``test`` of them (fractions)
    held out, drawn in a seeded random order, each only if its entities and relation keep a training
    triple; every split keeps the input order."""
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise MocmeError(f"valid ({valid}) and test ({test}) must be fractions with a sum below 1")
    distinct = list(dict.fromkeys(triples))
    wanted = {"test": round(test * len(distinct)), "valid": round(valid * len(distinct))}
    degree: dict[str, int] = {}
    for h, r, t in distinct:
        for key in {("e", h), ("e", t), ("r", r)}:
            degree[key] = degree.get(key, 0) + 1
    held: dict[int, str] = {}
    order = torch.randperm(len(distinct), generator=torch.Generator().manual_seed(seed)).tolist()
    for index in order:
        split = next((s for s in ("test", "valid") if wanted[s] > 0), None)
        if split is None:
            break
        h, r, t = distinct[index]
        keys = {("e", h), ("e", t), ("r", r)}
        if all(degree[key] > 1 for key in keys):  # each keeps a training triple
            for key in keys:
                degree[key] -= 1
            held[index] = split
            wanted[split] -= 1
    if wanted["test"] or wanted["valid"]:
        raise MocmeError(
            f"cannot hold out {wanted['valid']} more valid and {wanted['test']} more test triples without leaving "
            "an entity or relation with no training triple; ask for smaller fractions"
        )
    splits: dict[str, list[Triple]] = {"train": [], "valid": [], "test": []}
    for index, triple in enumerate(distinct):
        splits[held.get(index, "train")].append(triple)
    return splits["train"], splits["valid"], splits["test"]
