"""Memory settings never change ranks: any batch size, any workspace, the same filtered ranks."""

from __future__ import annotations

import pytest
import torch

from mocme.errors import NumericalError
from mocme.evaluation import filtered_ranks, rank_triples
from mocme.evaluation.evaluator import query_batch_size
from tests.conftest import TableModel, tiny_kg


def _table_model(kg, seed: int = 0) -> TableModel:
    gen = torch.Generator().manual_seed(seed)
    # Half-integer scores: frequent ties, where a batching bug would show.
    table = (torch.randn(kg.num_entities, 2 * kg.num_relations, kg.num_entities, generator=gen) * 2).round() / 2
    return TableModel(table)


def test_ranks_are_identical_for_any_memory_budget():
    kg = tiny_kg(num_entities=30, seed=5, with_modality=False)
    model = _table_model(kg)
    reference = rank_triples(model, kg, kg.test, memory_mb=1024.0)
    per_query = 30 * 8 + 64
    for memory_mb in (1e-6, 3 * per_query / 2**20, 7 * per_query / 2**20):
        ranks = rank_triples(model, kg, kg.test, memory_mb=memory_mb)
        assert torch.equal(ranks.optimistic, reference.optimistic), memory_mb
        assert torch.equal(ranks.pessimistic, reference.pessimistic), memory_mb
    for max_batch in (1, 2, 5):
        ranks = rank_triples(model, kg, kg.test, max_batch=max_batch)
        assert torch.equal(ranks.optimistic, reference.optimistic), max_batch
        assert torch.equal(ranks.pessimistic, reference.pessimistic), max_batch


def test_query_batch_size_follows_the_memory_budget():
    assert query_batch_size(14_541) == 512  # FB15K-237 at the defaults
    assert query_batch_size(14_541, memory_mb=1e-6) == 1
    assert query_batch_size(1_000, memory_mb=1.0, max_batch=10_000) == 2**20 // (1_000 * 8 + 64)


def test_a_reused_dirty_workspace_gives_the_same_ranks():
    gen = torch.Generator().manual_seed(1)
    scores = (torch.randn(6, 9, generator=gen) * 2).round() / 2
    targets = torch.tensor([0, 3, 3, 8, 1, 4])
    rows = torch.tensor([0, 0, 1, 3, 3, 3, 5])
    cols = torch.tensor([0, 5, 2, 8, 0, 7, 1])  # row 0 and row 3 list their own target too
    expected = filtered_ranks(scores, targets, rows, cols)
    workspace = torch.full((100,), float("nan"))
    for _ in range(2):
        got = filtered_ranks(scores, targets, rows, cols, workspace)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    # Row by row (batch 1) gives the same as the whole block.
    for i in range(len(scores)):
        keep = rows == i
        opt, pess = filtered_ranks(scores[i : i + 1], targets[i : i + 1], rows[keep] * 0, cols[keep], workspace)
        assert (opt.item(), pess.item()) == (expected[0][i].item(), expected[1][i].item())


@pytest.mark.parametrize(
    ("row", "target", "expected"),
    [
        ([float("-inf"), float("-inf"), 0.0], 0, (2.0, 3.0)),  # equal infinities tie
        ([float("inf"), 1.0, float("inf")], 0, (1.0, 2.0)),
        ([float("inf"), 1.0, float("inf")], 1, (3.0, 3.0)),
        ([float("inf"), float("-inf"), 0.0], 2, (2.0, 2.0)),  # +inf and -inf together are not NaN
    ],
)
def test_infinite_scores(row, target, expected):
    empty = torch.zeros(0, dtype=torch.long)
    opt, pess = filtered_ranks(torch.tensor([row]), torch.tensor([target]), empty, empty)
    assert (opt.item(), pess.item()) == expected


def test_filtered_infinite_scores_are_ignored():
    scores = torch.tensor([[float("inf"), 1.0, float("-inf"), 1.0]])
    opt, pess = filtered_ranks(scores, torch.tensor([1]), torch.tensor([0, 0]), torch.tensor([0, 3]))
    assert (opt.item(), pess.item()) == (1.0, 1.0)


def test_nan_is_an_error_unless_filtered_out():
    scores = torch.tensor([[0.5, float("nan"), 0.2, 0.9]])
    target = torch.tensor([0])
    with pytest.raises(NumericalError):  # an unfiltered candidate
        filtered_ranks(scores, target, torch.tensor([0]), torch.tensor([0]))
    opt, pess = filtered_ranks(scores, target, torch.tensor([0, 0]), torch.tensor([0, 1]))  # a known answer
    assert (opt.item(), pess.item()) == (2.0, 2.0)
    with pytest.raises(NumericalError):  # the target, even when it is listed as known
        filtered_ranks(scores, torch.tensor([1]), torch.tensor([0]), torch.tensor([1]))


def test_known_pairs_in_any_order_and_repeated():
    gen = torch.Generator().manual_seed(2)
    scores = (torch.randn(5, 11, generator=gen) * 2).round() / 2
    targets = torch.tensor([1, 0, 10, 4, 4])
    rows = torch.tensor([0, 0, 2, 3, 3, 4, 4, 4])
    cols = torch.tensor([1, 7, 3, 4, 9, 0, 2, 5])
    expected = filtered_ranks(scores, targets, rows, cols)
    order = torch.randperm(len(rows), generator=gen)
    got = filtered_ranks(scores, targets, rows[order], cols[order])
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    twice = filtered_ranks(scores, targets, torch.cat([rows, rows[:3]]), torch.cat([cols, cols[:3]]))
    assert torch.equal(twice[0], expected[0]) and torch.equal(twice[1], expected[1])  # duplicates count once


@pytest.mark.parametrize("tile_elements", [1, 7, 20, 45])
def test_ranks_are_identical_for_any_tile_size(monkeypatch, tile_elements):
    from mocme.evaluation import ranking

    gen = torch.Generator().manual_seed(3)
    scores = (torch.randn(9, 10, generator=gen) * 2).round() / 2
    targets = torch.randint(10, (9,), generator=gen)
    pairs = torch.unique(
        torch.stack([torch.randint(9, (30,), generator=gen), torch.randint(10, (30,), generator=gen)], 1), dim=0
    )
    rows, cols = pairs[:, 0], pairs[:, 1]
    monkeypatch.setattr(ranking, "TILE_ELEMENTS", tile_elements)
    optimistic, pessimistic = filtered_ranks(scores, targets, rows, cols)
    for i, row in enumerate(scores.tolist()):
        t = int(targets[i])
        known = {int(c) for r, c in zip(rows.tolist(), cols.tolist(), strict=True) if r == i and c != t}
        ranked = [row[e] for e in range(len(row)) if e not in known]
        assert optimistic[i].item() == 1 + sum(v > row[t] for v in ranked)
        assert pessimistic[i].item() == sum(v >= row[t] for v in ranked)


def test_ranking_leaves_the_thread_count_as_it_was():
    kg = tiny_kg(num_entities=30, seed=5, with_modality=False)
    model = _table_model(kg)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rank_triples(model, kg, kg.test)
        assert torch.get_num_threads() == 2
        model.table[:] = float("nan")
        with pytest.raises(NumericalError):
            rank_triples(model, kg, kg.test)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_scores_other_than_float32_are_refused(dtype):
    empty = torch.zeros(0, dtype=torch.long)
    with pytest.raises(TypeError, match="needs float32 scores"):
        filtered_ranks(torch.zeros(1, 3, dtype=dtype), torch.tensor([0]), empty, empty)
