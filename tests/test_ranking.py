"""Filtered ranks against a brute-force reference, ties included."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mocme.errors import NumericalError
from mocme.evaluation import filtered_ranks


def brute_force(scores, targets, known):
    """Per row: (optimistic, pessimistic) by direct counting over the unfiltered entities."""
    out = []
    for i, row in enumerate(scores.tolist()):
        t = targets[i]
        others = [e for e in range(len(row)) if e == t or e not in known.get(i, set())]
        better = sum(row[e] > row[t] for e in others)
        tied = sum(row[e] == row[t] for e in others)  # includes the target itself
        out.append((1 + better, better + tied))
    return out


@st.composite
def ranking_case(draw):
    batch = draw(st.integers(1, 6))
    n = draw(st.integers(1, 12))
    # Few distinct values so that ties are frequent.
    values = draw(st.lists(st.integers(-3, 3), min_size=batch * n, max_size=batch * n))
    scores = torch.tensor(values, dtype=torch.float32).reshape(batch, n) / 2
    targets = [draw(st.integers(0, n - 1)) for _ in range(batch)]
    known = {}
    for i in range(batch):
        known[i] = set(draw(st.lists(st.integers(0, n - 1), max_size=n)))
        if draw(st.booleans()):
            known[i].add(targets[i])  # the target may itself be listed as a known answer
    return scores, targets, known


@settings(max_examples=300, deadline=None)
@given(ranking_case())
def test_filtered_ranks_match_brute_force(case):
    scores, targets, known = case
    rows = [i for i in sorted(known) for _ in known[i]]
    cols = [e for i in sorted(known) for e in sorted(known[i])]
    optimistic, pessimistic = filtered_ranks(
        scores, torch.tensor(targets), torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)
    )
    expected = brute_force(scores, targets, known)
    assert optimistic.tolist() == [float(o) for o, _ in expected]
    assert pessimistic.tolist() == [float(p) for _, p in expected]


def test_scores_are_not_modified_and_workspace_is_reused():
    scores = torch.tensor([[0.5, 0.5, 1.0, -1.0]])
    before = scores.clone()
    workspace = torch.empty(16)
    opt, pess = filtered_ranks(
        scores, torch.tensor([0]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), workspace
    )
    assert torch.equal(scores, before)
    assert (opt.item(), pess.item()) == (2.0, 3.0)


def test_tiny_differences_are_not_ties():
    one = torch.tensor(1.0)
    scores = torch.stack([one, torch.nextafter(one, torch.tensor(2.0)), torch.tensor(1e-45), torch.tensor(0.0)])[None]
    assert scores[0, 2] > 0  # a float32 subnormal
    opt, pess = filtered_ranks(
        scores, torch.tensor([0]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    )
    assert (opt.item(), pess.item()) == (2.0, 2.0)
    opt, _ = filtered_ranks(
        scores, torch.tensor([3]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    )
    assert opt.item() == 4.0  # 1e-45 (subnormal) is strictly above 0.0


def test_nan_scores_raise():
    scores = torch.tensor([[0.1, float("nan"), 0.3]])
    with pytest.raises(NumericalError):
        filtered_ranks(scores, torch.tensor([0]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))


def test_equal_infinities_tie():
    scores = torch.tensor([[float("inf"), float("inf"), 0.0]])
    opt, pess = filtered_ranks(
        scores, torch.tensor([0]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    )
    assert (opt.item(), pess.item()) == (1.0, 2.0)


def test_negative_infinity_candidates_rank_last():
    scores = torch.tensor([[0.1, float("-inf"), 0.3]])
    opt, pess = filtered_ranks(
        scores, torch.tensor([0]), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    )
    assert (opt.item(), pess.item()) == (2.0, 2.0)


def _graph_and_table_model(entities: int, train, test, seed: int):
    """A graph of ``entities`` entities and relations r, s (no valid split) and a random score table."""
    from mocme.data import MultiModalKG, Vocabulary
    from tests.conftest import TableModel

    names = Vocabulary(f"e{i}" for i in range(entities))
    kg = MultiModalKG("small", names, Vocabulary(["r", "s"]), train, torch.zeros(0, 3), test)
    scores = torch.randn(entities, 4, entities, generator=torch.Generator().manual_seed(seed))
    return kg, TableModel(scores)


def test_seen_breakdown_groups_the_splits_own_ranks():
    """Queries grouped by whether their entities occur in training; the ranks are the split's own."""
    from mocme.evaluation import evaluate, rank_triples, side_metrics
    from mocme.tables import breakdown_table

    train = torch.tensor([[0, 0, 1], [1, 0, 2], [2, 0, 3], [3, 1, 4]])  # e5 and e6 never occur in training
    test = torch.tensor([[0, 0, 5], [5, 1, 1], [1, 0, 3], [5, 0, 6], [2, 1, 4]])
    kg, model = _graph_and_table_model(7, train, test, seed=0)
    metrics = evaluate(model, kg, "test")
    groups = metrics["by_seen"]
    assert {name: (g["both"]["count"], g["triples"]) for name, g in groups.items()} == {
        "seen": (4, 2),  # both directions of (1, r, 3) and (2, s, 4)
        "unseen": (6, 3),
        "query_unseen": (2, 2),  # (5, s, 1) asked as (5, s, ?) and (0, r, 5) asked as (?, r, 5)
        "answer_unseen": (2, 2),
        "both_unseen": (2, 1),
    }
    ranks = rank_triples(model, kg, test)
    unseen = torch.tensor([True, True, False, True, False] * 2)  # the triple of each query has an unseen entity
    expected = side_metrics(ranks.optimistic[unseen], ranks.pessimistic[unseen], ranks.is_head[unseen])
    assert {k: v for k, v in groups["unseen"].items() if k != "triples"} == expected
    table = breakdown_table(metrics)
    assert "query and answer seen in training" in table and "query seen, answer unseen" in table
    assert table.splitlines()[0].split()[-2:] == ["queries", "triples"]


def test_degree_breakdown_groups_triples_by_their_less_known_entity():
    """A triple's group is the smaller training degree of its entities, in powers of two; both of its
    queries fall in that group and the ranks are the split's own."""
    from mocme.evaluation import DEGREE_GROUPS, evaluate, rank_triples, side_metrics
    from mocme.tables import breakdown_table

    # degrees in train: e0 5, e1 1, e2 2, e3 1, e4 1, e5 0 (e0 is in every triple)
    train = torch.tensor([[0, 0, 1], [0, 0, 2], [2, 0, 0], [0, 1, 3], [4, 1, 0]])
    test = torch.tensor([[0, 0, 5], [0, 1, 2], [1, 0, 3], [0, 0, 4], [2, 1, 0]])
    kg, model = _graph_and_table_model(6, train, test, seed=1)
    metrics = evaluate(model, kg, "test")
    groups = metrics["by_degree"]
    assert {name: (g["both"]["count"], g["triples"]) for name, g in groups.items()} == {
        "0": (2, 1),  # (0, r, 5): e5 never occurs in training
        "1": (4, 2),  # (1, r, 3) and (0, r, 4)
        "2-3": (4, 2),  # (0, s, 2) and (2, s, 0): e2 has two training triples
    }
    assert list(groups) == [g for g in DEGREE_GROUPS if g in groups]
    assert groups["0"]["both"] == metrics["by_seen"]["unseen"]["both"]
    ranks = rank_triples(model, kg, test)
    two = torch.tensor([False, True, False, False, True] * 2)
    expected = side_metrics(ranks.optimistic[two], ranks.pessimistic[two], ranks.is_head[two])
    assert {k: v for k, v in groups["2-3"].items() if k != "triples"} == expected
    table = breakdown_table(metrics)
    assert "less-known entity in 1 train triple " in table and "less-known entity in 2-3 train triples" in table


def test_training_degree_counts_a_self_loop_once():
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation.evaluator import training_degrees

    train = torch.tensor([[0, 0, 1], [2, 0, 3], [3, 0, 3], [3, 1, 3]])  # e3: in three triples, two of them loops
    kg = MultiModalKG(
        "loops", Vocabulary(["a", "b", "c", "d", "e"]), Vocabulary(["r", "s"]), train, train[:0], train[:0]
    )
    assert training_degrees(kg).tolist() == [1, 1, 1, 3, 0]
    repeated = dataclasses.replace(kg, train=torch.cat([train, train[:1]]))  # a line given twice counts once
    assert training_degrees(repeated).tolist() == [1, 1, 1, 3, 0]


def test_an_empty_split_and_an_empty_shard_give_null_metrics_not_a_crash():
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation import Evaluator, evaluate
    from tests.conftest import TableModel

    train = torch.tensor([[0, 0, 1], [1, 0, 2], [2, 0, 3]])
    kg = MultiModalKG("empty", Vocabulary(["a", "b", "c", "d"]), Vocabulary(["r"]), train, train[:0], train[:1])
    model = TableModel(torch.rand(4, 2, 4, generator=torch.Generator().manual_seed(0)))
    metrics = evaluate(model, kg, "valid")
    assert metrics["both"]["count"] == 0 and metrics["both"]["realistic"]["inverse_harmonic_mean_rank"] != 0

    class SecondOfTwo:  # the process that gets no query of a one-triple split
        def shard(self, items):
            return items[1::2][:0] if len(items) == 2 else items[1::2]

        def gather(self, values, device):
            return values

    assert len(Evaluator(kg, sharding=SecondOfTwo()).ranks(model, kg.valid).optimistic) == 0


def test_the_breakdown_table_shows_the_hits_that_were_evaluated():
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation import evaluate
    from mocme.tables import breakdown_table
    from tests.conftest import TableModel

    train = torch.tensor([[0, 0, 1], [1, 0, 2], [2, 0, 3]])
    kg = MultiModalKG("ks", Vocabulary(["a", "b", "c", "d"]), Vocabulary(["r"]), train, train[:0], train)
    model = TableModel(torch.rand(4, 2, 4, generator=torch.Generator().manual_seed(0)))
    header = breakdown_table(evaluate(model, kg, "test", ks=(3, 5))).splitlines()[0]
    assert "Hits@3" in header and "Hits@5" in header and "Hits@10" not in header and "nan" not in header


def test_degree_groups_are_powers_of_two():
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation import degree_breakdown
    from mocme.evaluation.evaluator import Ranks

    hub_degree = [1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 100]
    train = torch.tensor([[i, 0, 20 + 100 * i + j] for i, d in enumerate(hub_degree) for j in range(d)])
    kg = MultiModalKG("hubs", Vocabulary(str(i) for i in range(2000)), Vocabulary(["r"]), train, train[:0], train[:0])
    # one query per hub, its answer a second hub of higher degree; the hub decides the group
    entities = torch.arange(len(hub_degree))
    ranks = Ranks(
        torch.ones(len(entities), dtype=torch.float64),
        torch.ones(len(entities), dtype=torch.float64),
        torch.zeros(len(entities), dtype=torch.bool),
        torch.zeros(len(entities), dtype=torch.long),
        torch.full_like(entities, len(hub_degree) - 1),
        entities,
    )
    counts = {name: group["both"]["count"] for name, group in degree_breakdown(ranks, kg).items()}
    assert counts == {"1": 1, "2-3": 2, "4-7": 2, "8-15": 2, "16-31": 2, "32+": 2}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_triples_matches_a_brute_force_built_from_the_splits_alone(seed):
    """End to end, nothing shared with the library: the filter from Python sets over train, valid
    and test; each tail query (h, r, ?) scored by table[h, r], each head query (?, r, t) by
    table[t, r + R]; integer scores, so ties are common. Keyed by what each query asks."""
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation import rank_triples
    from tests.conftest import TableModel

    gen = torch.Generator().manual_seed(seed)
    n, relations = 9, 2
    triples = torch.stack([torch.randint(n, (60,), generator=gen), torch.randint(relations, (60,), generator=gen),
                           torch.randint(n, (60,), generator=gen)], 1).unique(dim=0)  # fmt: skip
    triples = triples[torch.randperm(len(triples), generator=gen)]
    train, valid, test = triples[:30], triples[30:40], triples[40:]
    kg = MultiModalKG("brute", Vocabulary(f"e{i}" for i in range(n)), Vocabulary(["r", "s"]), train, valid, test)
    table = torch.randint(0, 4, (n, 2 * relations, n), generator=gen).float()
    known = {tuple(t) for t in triples.tolist()}

    expected = {}
    for h, r, t in test.tolist():
        for is_head, entity, row, target in ((False, h, table[h, r], t), (True, t, table[t, r + relations], h)):
            filtered = {
                e for e in range(n) if e != target and ((entity, r, e) if not is_head else (e, r, entity)) in known
            }
            others = [e for e in range(n) if e != target and e not in filtered]
            greater = sum(float(row[e]) > float(row[target]) for e in others)
            tied = sum(float(row[e]) == float(row[target]) for e in others)
            expected[(is_head, entity, r, target)] = (1 + greater, 1 + greater + tied)

    ranks = rank_triples(TableModel(table), kg, test)
    got = {
        (bool(ranks.is_head[i]), int(ranks.entities[i]), int(ranks.relations[i]), int(ranks.targets[i])): (
            float(ranks.optimistic[i]),
            float(ranks.pessimistic[i]),
        )
        for i in range(len(ranks.targets))
    }
    assert got == expected


def test_rank_metrics_by_hand_with_fractional_ranks_at_a_hits_boundary():
    from mocme.evaluation.metrics import rank_metrics

    metrics = rank_metrics(torch.tensor([1.0, 2.5, 10.0, 10.5, 11.0]), ks=(1, 3, 10))
    assert metrics["inverse_harmonic_mean_rank"] == pytest.approx((1 + 1 / 2.5 + 1 / 10 + 1 / 10.5 + 1 / 11) / 5)
    assert metrics["arithmetic_mean_rank"] == pytest.approx(35 / 5)
    assert (metrics["hits_at_1"], metrics["hits_at_3"], metrics["hits_at_10"]) == (0.2, 0.4, 0.6)  # 10.5 misses 10


def test_sharded_ranks_come_back_in_one_processs_order():
    """Two ranks in two threads, each ranking every second triple, gather into exactly the ranks
    (and so the metrics, to the last bit) of one process ranking them all."""
    import threading

    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation import Evaluator
    from mocme.evaluation.metrics import side_metrics
    from tests.conftest import TableModel

    gen = torch.Generator().manual_seed(4)
    n = 12
    triples = torch.stack([torch.randint(n, (80,), generator=gen), torch.randint(2, (80,), generator=gen),
                           torch.randint(n, (80,), generator=gen)], 1).unique(dim=0)  # fmt: skip
    train, test = triples[:40], triples[40:]
    kg = MultiModalKG("shards", Vocabulary(f"e{i}" for i in range(n)), Vocabulary(["r", "s"]), train, test[:0], test)
    model = TableModel(torch.randint(0, 5, (n, 4, n), generator=gen).float())

    world, barrier, posted = 2, threading.Barrier(2), {}

    class ThreadShard:
        def __init__(self, rank):
            self.rank, self.calls = rank, 0

        def shard(self, items):
            return items[self.rank :: world]

        def gather(self, values, device):
            key = self.calls
            self.calls += 1
            posted[(key, self.rank)] = values
            barrier.wait()
            return torch.cat([posted[(key, r)] for r in range(world)])

    results = {}

    def rank(r):
        results[r] = Evaluator(kg, sharding=ThreadShard(r)).ranks(model, test)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = Evaluator(kg).ranks(model, test)
    for r in range(world):
        for name in ("optimistic", "pessimistic", "is_head", "relations", "targets", "entities"):
            assert torch.equal(getattr(results[r], name), getattr(alone, name)), name
    metrics = side_metrics(results[1].optimistic, results[1].pessimistic, results[1].is_head)
    assert metrics == side_metrics(alone.optimistic, alone.pessimistic, alone.is_head)


def test_relation_popularity_counts_the_answers_of_each_relation_and_direction():
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.evaluation import RelationPopularity

    train = torch.tensor([[0, 0, 1], [2, 0, 1], [2, 0, 1], [1, 1, 2], [0, 0, 2]])  # a repeated line counts once
    kg = MultiModalKG("p", Vocabulary(["a", "b", "c"]), Vocabulary(["r", "s"]), train, train[:1], train[:1])
    scores = RelationPopularity(kg).score_all(torch.tensor([[0, 0], [1, 2], [0, 1], [2, 3]]))
    assert scores.tolist() == [[0, 2, 1], [2, 0, 1], [0, 0, 1], [0, 1, 0]]  # r tails; r heads; s tails; s heads
