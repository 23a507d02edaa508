"""The CSR filter index against Python sets."""

from __future__ import annotations

import torch
from hypothesis import given, settings

from mocme.data import FilterIndex
from tests.conftest import triple_lists


def graph():
    return triple_lists(min_entities=1, max_entities=8, max_size=30)


@settings(max_examples=200, deadline=None)
@given(graph())
def test_pairs_count_and_contains_match_sets(case):
    n, r, triples = case
    index = FilterIndex(torch.tensor(triples, dtype=torch.long).reshape(-1, 3), n, r)
    answers: dict[tuple[int, int], set[int]] = {}
    for h, rel, t in triples:
        answers.setdefault((h, rel), set()).add(t)
        answers.setdefault((t, rel + r), set()).add(h)
    queries = torch.tensor([(e, q) for e in range(n) for q in range(2 * r)], dtype=torch.long)
    rows, cols = index.pairs(queries)
    got: dict[int, set[int]] = {}
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        got.setdefault(row, set()).add(col)
    for i, (e, q) in enumerate(queries.tolist()):
        assert got.get(i, set()) == answers.get((e, q), set())
    assert index.count(queries).tolist() == [len(answers.get(tuple(q), ())) for q in queries.tolist()]
    candidates = torch.arange(n).expand(len(queries), n)
    member = index.contains(queries, candidates)
    for i, (e, q) in enumerate(queries.tolist()):
        assert {c for c in range(n) if member[i, c]} == answers.get((e, q), set())
    assert len(index) == sum(len(v) for v in answers.values())
