"""PyKEEN's RankBasedEvaluator, given the same filtered score matrices, agrees on every metric."""

from __future__ import annotations

import pytest
import torch

from mocme.data import ranking_queries
from mocme.evaluation import flatten, rank_triples, side_metrics
from tests.conftest import TableModel, tiny_kg

pykeen_eval = pytest.importorskip("pykeen.evaluation")


def test_metrics_agree_with_pykeen_on_identical_scores():
    kg = tiny_kg(num_entities=30, seed=3, with_modality=False)
    gen = torch.Generator().manual_seed(0)
    # Rounded scores: many ties, which is where conventions differ.
    table = (torch.randn(kg.num_entities, 2 * kg.num_relations, kg.num_entities, generator=gen) * 2).round() / 2
    model = TableModel(table)
    ranks = rank_triples(model, kg, kg.test)
    ours = flatten(side_metrics(ranks.optimistic, ranks.pessimistic, ranks.is_head))

    evaluator = pykeen_eval.RankBasedEvaluator(filtered=True)
    queries, targets, is_head = ranking_queries(kg.test, kg.num_relations)
    rows, cols = kg.filter_index.pairs(queries)
    scores = model.score_all(queries)
    true_scores = scores.gather(1, targets[:, None])
    keep_target = cols == targets[rows]
    scores[rows[~keep_target], cols[~keep_target]] = float("nan")  # PyKEEN's filtering convention
    hrt = kg.test.repeat(2, 1)
    for side, selected in (("head", is_head), ("tail", ~is_head)):
        evaluator.process_scores_(hrt[selected], side, scores[selected], true_scores[selected])
    theirs = evaluator.finalize().to_flat_dict()

    compared = 0
    for key, value in ours.items():
        if key.endswith(".count"):
            continue
        assert key in theirs, key
        assert theirs[key] == pytest.approx(value, abs=1e-6), key
        compared += 1
    assert compared == 3 * 3 * 5
