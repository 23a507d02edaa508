"""Scoring every entity in chunks under a memory budget changes neither losses, gradients nor metrics."""

from __future__ import annotations

import pytest
import torch

from mocme import pipeline
from mocme.config import validate_config
from mocme.errors import ConfigError
from mocme.evaluation import evaluate
from mocme.models import ModelConfig, build_model
from mocme.models import mocme as mocme_module
from mocme.training.config import TrainingConfig
from mocme.training.full import BYTES_PER_PAIR, entity_chunk, full_step
from mocme.training.losses import one_to_n_loss, weighted_negative_loss
from mocme.training.weighting import egns_weights
from tests.conftest import synthetic_graph

TINY_MB = 24 * 7 * BYTES_PER_PAIR / 2**20  # a budget that forces chunks of a handful of entities


def graph():
    return synthetic_graph(50)


def model_for(name: str, kg):
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, dim=8, relation_dim=4, dropout=0.0), kg).train()


def batch(kg, size: int = 12):
    queries = torch.cat([kg.train[:size, :2], kg.train[:size, [2, 1]] + torch.tensor([0, kg.num_relations])])
    targets = torch.cat([kg.train[:size, 2], kg.train[:size, 0]])
    labels = kg.train_index.pairs(queries)
    return queries, targets, labels


def run(model, kg, config: TrainingConfig, temperature, memory_mb):
    queries, targets, labels = batch(kg)
    model.zero_grad(set_to_none=True)
    losses = full_step(model, queries, targets, labels, config, temperature, memory_mb)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {n: float(v) for n, v in losses.items()}, grads


def reference(model, kg, config: TrainingConfig, temperature):
    """The dense definition: every scorer's (B, N) scores at once, losses from mocme.training.losses."""
    queries, targets, (rows, cols) = batch(kg)
    model.zero_grad(set_to_none=True)
    heads = model.scorer_scores(queries)
    labels = torch.zeros(len(queries), kg.num_entities)
    labels[rows, cols] = 1.0
    losses = {}
    for name, head in heads.items():
        available = torch.ones_like(labels, dtype=torch.bool)
        if head.available is not None:
            available = head.available.expand_as(labels)
        if config.negatives == "one_to_n":
            losses[name] = one_to_n_loss(head.scores, labels, head.available, config.label_smoothing)
            continue
        weights = egns_weights(head.scores, (labels == 0) & available, config.egns, temperature)
        positive = head.scores.gather(1, targets.unsqueeze(1)).squeeze(1)
        positive_valid = available.gather(1, targets.unsqueeze(1)).squeeze(1)
        losses[name] = weighted_negative_loss(positive, head.scores, weights, positive_valid, config.label_smoothing)
    torch.stack(list(losses.values())).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {n: float(v.detach()) for n, v in losses.items()}, grads


def assert_same(a, b):
    losses_a, grads_a = a
    losses_b, grads_b = b
    assert losses_a.keys() == losses_b.keys()
    for name in losses_a:
        assert losses_a[name] == pytest.approx(losses_b[name], rel=1e-5, abs=1e-6), name
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)


CASES = [
    ({"negatives": "one_to_n"}, None),
    ({"negatives": "one_to_n", "label_smoothing": 0.1}, None),
    ({"negatives": "egns", "pool": "all"}, None),  # warm-up: uniform weights
    ({"negatives": "egns", "pool": "all", "label_smoothing": 0.1}, 0.7),
    ({"negatives": "egns", "pool": "all", "egns": {"hardness": 0.5}}, 0.3),
    # Entropy is symmetric in the score, so hardness breaks the exact ties that top-k would split arbitrarily.
    ({"negatives": "egns", "pool": "all", "egns": {"selection": "topk", "keep": 5, "hardness": 0.5}}, 0.5),
]


@pytest.mark.parametrize("name", ["distmult", "tucker", "mocme"])
@pytest.mark.parametrize(("training", "temperature"), CASES, ids=lambda v: str(v))
def test_chunked_equals_unchunked_equals_dense(name, training, temperature):
    kg = graph()
    config = TrainingConfig(batch_size=24, **training)
    model = model_for(name, kg)
    assert entity_chunk(len(batch(kg)[0]), kg.num_entities, TINY_MB) == 7
    unchunked = run(model, kg, config, temperature, None)
    chunked = run(model, kg, config, temperature, TINY_MB)
    assert_same(chunked, unchunked)
    assert_same(unchunked, reference(model, kg, config, temperature))


def test_entity_chunk_follows_the_budget():
    assert entity_chunk(100, 1000, None) == 1000
    assert entity_chunk(100, 1000, 100 * 10 * BYTES_PER_PAIR / 2**20) == 10
    assert entity_chunk(100, 1000, 1e-9) == 1
    assert entity_chunk(1, 1000, 1e6) == 1000


def test_sampling_from_all_entities_refuses_to_chunk():
    kg = graph()
    config = TrainingConfig(batch_size=24, negatives="egns", pool="all", egns={"selection": "sample", "keep": 4})
    model = model_for("distmult", kg)
    queries, targets, labels = batch(kg)
    full_step(model, queries, targets, labels, config, 0.5, None, torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="selection 'sample' with pool 'all'"):
        full_step(model, queries, targets, labels, config, 0.5, TINY_MB, torch.Generator().manual_seed(0))


def test_mocme_scores_all_entities_in_blocks(monkeypatch):
    kg = graph()
    model = model_for("mocme", kg).eval()
    queries = batch(kg)[0]
    with torch.no_grad():
        whole = model.score_all(queries)
        monkeypatch.setattr(mocme_module, "SCORE_BLOCK", 3 * len(queries))
        torch.testing.assert_close(model.score_all(queries), whole)
        monkeypatch.setattr(mocme_module, "ENCODE_BLOCK", 7)
        with model.precomputed():
            torch.testing.assert_close(model.score_all(queries), whole)


@pytest.mark.parametrize("negatives", [{"negatives": "one_to_n"}, {"negatives": "egns", "pool": "all"}])
def test_training_runs_end_the_same_with_a_tiny_budget(tmp_path, negatives, monkeypatch):
    def config(memory_mb):
        return validate_config(
            {
                "seed": 1,
                "dataset": {"synthetic": {"num_entities": 120, "num_relations": 3}},
                "model": {"dim": 8, "relation_dim": 4, "dropout": 0.0},
                "training": {"epochs": 2, "eval_every": 1, "batch_size": 32, "memory_mb": memory_mb, **negatives},
            }
        )

    whole = pipeline.train(config(None), tmp_path / "whole")
    chunked = pipeline.train(config(TINY_MB), tmp_path / "chunked")
    for a, b in zip(whole.directory.trace(), chunked.directory.trace(), strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    monkeypatch.setattr(mocme_module, "SCORE_BLOCK", 50)
    blocked = evaluate(chunked.model, chunked.kg, "test")
    assert blocked["both"]["realistic"] == pytest.approx(whole.metrics["test"]["both"]["realistic"], rel=1e-3)
