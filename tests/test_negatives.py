"""Negative sampling and weighting: EGNS follows binary entropy, true answers are never negatives."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mocme.data import FilterIndex
from mocme.training.config import EGNSConfig, TrainingConfig
from mocme.training.losses import weighted_negative_loss
from mocme.training.negatives import _bernoulli_head_probability, epoch_queries, sample_negatives
from mocme.training.weighting import (
    binary_entropy_from_logits,
    egns_temperature,
    egns_weights,
    gumbel_noise,
    self_adversarial_weights,
    uniform_weights,
)
from tests.conftest import triple_lists


def test_binary_entropy_peaks_at_one_half_and_is_symmetric():
    s = torch.linspace(-8, 8, 161, dtype=torch.float64)
    h = binary_entropy_from_logits(s)
    assert int(h.argmax()) == 80 and h.max() == pytest.approx(math.log(2))
    torch.testing.assert_close(h, h.flip(0))
    p = torch.sigmoid(s)
    torch.testing.assert_close(h, -(p * p.log() + (1 - p) * (1 - p).log()))
    assert torch.isfinite(binary_entropy_from_logits(torch.tensor([-1e4, 1e4]))).all()


def test_egns_weights_follow_binary_entropy():
    scores = torch.tensor([[-6.0, -2.0, -0.5, 0.0, 0.5, 3.0]])
    valid = torch.ones_like(scores, dtype=torch.bool)
    weights = egns_weights(scores, valid, EGNSConfig(), temperature=0.5)
    assert weights.sum().item() == pytest.approx(1.0)
    assert int(weights.argmax()) == 3  # p = 0.5: the most uncertain candidate
    entropy = binary_entropy_from_logits(scores)
    assert torch.equal(torch.argsort(weights, descending=True), torch.argsort(entropy, descending=True))
    expected = torch.softmax(entropy / 0.5, dim=-1)
    torch.testing.assert_close(weights, expected)


def test_egns_temperature_flattens_weights():
    scores = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)) * 3
    valid = torch.ones_like(scores, dtype=torch.bool)
    hot = egns_weights(scores, valid, EGNSConfig(), temperature=100.0)
    cold = egns_weights(scores, valid, EGNSConfig(), temperature=0.05)
    torch.testing.assert_close(hot, torch.full_like(hot, 1 / 30), atol=2e-3, rtol=0)
    assert cold.max() > 0.3


def test_egns_hardness_prefers_high_probability_negatives():
    scores = torch.tensor([[-1.0, 1.0]])  # same entropy, different p
    valid = torch.ones_like(scores, dtype=torch.bool)
    plain = egns_weights(scores, valid, EGNSConfig(), temperature=1.0)
    hard = egns_weights(scores, valid, EGNSConfig(hardness=1.0), temperature=1.0)
    torch.testing.assert_close(plain, torch.tensor([[0.5, 0.5]]))
    assert hard[0, 1] > hard[0, 0]


def test_egns_topk_and_sampling_select_k_valid_negatives():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(6, 20, generator=gen)
    valid = torch.rand(6, 20, generator=gen) > 0.2
    valid[0] = False  # a row without any valid negative
    top = egns_weights(scores, valid, EGNSConfig(selection="topk", keep=5), temperature=0.5)
    noise = gumbel_noise(6, 20, gen)
    drawn = egns_weights(scores, valid, EGNSConfig(selection="sample", keep=5), temperature=0.5, noise=noise)
    for weights in (top, drawn):
        assert torch.all(weights[~valid] == 0)
        assert torch.all(weights[0] == 0)
        torch.testing.assert_close(weights[1:].sum(1), torch.ones(5))
        assert torch.all((weights[1:] > 0).sum(1) == torch.clamp(valid[1:].sum(1), max=5))
    entropy = binary_entropy_from_logits(scores).masked_fill(~valid, -1)
    for row in range(1, 6):
        kept = set(top[row].nonzero().flatten().tolist())
        best = set(torch.topk(entropy[row], 5).indices.tolist())
        assert kept == best


def test_egns_sampling_draws_in_proportion_to_the_weights_and_all_of_a_pool_alike():
    """Gumbel-top-k with k = 1 picks negative i with probability π_i; k = the pool draws every one."""
    scores = torch.tensor([[-4.0, 0.0, 0.5, 6.0]])
    valid = torch.ones_like(scores, dtype=torch.bool)
    pi = egns_weights(scores, valid, EGNSConfig(), temperature=0.25)
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(4)
    for _ in range(4000):
        counts += egns_weights(scores, valid, EGNSConfig(selection="sample", keep=1), 0.25, gumbel_noise(1, 4, gen))[0]
    torch.testing.assert_close(counts / 4000, pi[0], atol=0.03, rtol=0)
    every = egns_weights(scores, valid, EGNSConfig(selection="sample", keep=4), temperature=0.25)
    torch.testing.assert_close(every, torch.full((1, 4), 0.25))  # as keep = pool − 1 weighs them: alike


def test_warmup_weights_are_uniform():
    scores = torch.randn(3, 8)
    valid = torch.ones_like(scores, dtype=torch.bool)
    torch.testing.assert_close(egns_weights(scores, valid, EGNSConfig(), temperature=None), uniform_weights(valid))


@pytest.mark.parametrize("anneal", ["exponential", "linear", "cosine"])
def test_annealing_schedule_does_what_the_config_says(anneal):
    config = EGNSConfig(temperature_start=2.0, temperature_end=0.25, warmup_epochs=3, anneal=anneal)
    epochs = 14
    taus = [egns_temperature(config, e, epochs) for e in range(epochs)]
    assert taus[:3] == [None, None, None]
    assert taus[3] == pytest.approx(2.0) and taus[-1] == pytest.approx(0.25)
    rest = taus[3:]
    assert all(a > b for a, b in itertools.pairwise(rest))
    middle = taus[8]
    expected = {"exponential": 2.0 * (0.25 / 2.0) ** 0.5, "linear": 1.125, "cosine": 1.125}[anneal]
    assert middle == pytest.approx(expected)


def test_self_adversarial_and_uniform_weights():
    scores = torch.tensor([[0.0, 1.0, 2.0]])
    valid = torch.tensor([[True, True, False]])
    weights = self_adversarial_weights(scores, valid, temperature=1.0)
    torch.testing.assert_close(weights, torch.tensor([[1 / (1 + math.e), math.e / (1 + math.e), 0.0]]))
    torch.testing.assert_close(uniform_weights(valid), torch.tensor([[0.5, 0.5, 0.0]]))


def graphs():
    lists = triple_lists(min_entities=2, max_entities=12, min_size=1, max_size=40)
    return lists.map(lambda graph: (graph[0], graph[1], torch.tensor(graph[2])))


@settings(max_examples=150, deadline=None)
@given(graphs(), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_true_answers_are_never_negatives(graph, count, seed):
    n, r, triples = graph
    index = FilterIndex(triples, n, r)
    queries, _ = epoch_queries(triples, r, "both", torch.Generator().manual_seed(seed))
    negatives, valid = sample_negatives(queries, count, n, index, torch.Generator().manual_seed(seed))
    assert negatives.shape == valid.shape == (len(queries), count)
    known = index.contains(queries, negatives)
    assert not (known & valid).any()
    assert torch.all(valid == ~known)


def test_rows_without_negatives_contribute_only_their_positive():
    positive = torch.tensor([2.0, -1.0])
    negative = torch.tensor([[0.5, 1.0], [3.0, 3.0]])
    weights = torch.tensor([[0.25, 0.75], [0.0, 0.0]])
    loss = weighted_negative_loss(positive, negative, weights)
    sp = torch.nn.functional.softplus
    expected = (sp(-positive).sum() + (weights * sp(negative)).sum()) / 2
    torch.testing.assert_close(loss, expected)


def test_bernoulli_corrupts_the_side_with_more_answers_less():
    # relation 0 is 1-N (one head, many tails): predicting the head is the easy side.
    triples = torch.tensor([[0, 0, t] for t in range(1, 9)] + [[h, 1, 0] for h in range(1, 9)])
    p_head = _bernoulli_head_probability(triples, 2)
    assert p_head[0] > 0.8 and p_head[1] < 0.2
    queries, _ = epoch_queries(triples, 2, "bernoulli", torch.Generator().manual_seed(0))
    assert len(queries) == len(triples)


def test_training_config_checks_keep_against_pool():
    with pytest.raises(ValueError, match=r"egns\.keep"):
        TrainingConfig(num_negatives=8, egns=EGNSConfig(selection="topk", keep=16))
