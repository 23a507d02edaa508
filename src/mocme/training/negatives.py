"""Training queries per epoch and sampled negative candidates (never a known true answer)."""

from __future__ import annotations

import torch
from torch import Tensor

from mocme.data.filtering import FilterIndex
from mocme.data.kg import ranking_queries
from mocme.data.statistics import relation_cardinality


def epoch_queries(train: Tensor, num_relations: int, mode: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """This epoch's shuffled training queries ``(Q, 2)`` and their answers ``(Q,)``.

    ``mode``: ``both`` asks each triple in both directions; ``bernoulli`` asks one direction per
    triple, predicting the head with probability ``tph / (tph + hpt)`` of its relation (Wang et
    al., 2014), so the side with fewer answers is corrupted more often; ``unique`` gives each
    distinct query once (1-N training; its answers come from the filter index).
    """
    queries, targets, _ = ranking_queries(train, num_relations)
    if mode == "bernoulli":
        head_probability = _bernoulli_head_probability(train, num_relations)[train[:, 1]]
        pick_head = torch.rand(len(train), generator=generator) < head_probability
        n = len(train)
        chosen = torch.where(pick_head, torch.arange(n) + n, torch.arange(n))
        queries, targets = queries[chosen], targets[chosen]
    elif mode == "unique":
        queries = torch.unique(queries, dim=0)
        targets = torch.full((len(queries),), -1, dtype=torch.long)
    order = torch.randperm(len(queries), generator=generator)
    return queries[order], targets[order]


def _bernoulli_head_probability(train: Tensor, num_relations: int) -> Tensor:
    tph, hpt = relation_cardinality(train, num_relations)
    return (tph / (tph + hpt).clamp_min(1e-12)).float()


def sample_negatives(
    queries: Tensor, count: int, num_entities: int, known: FilterIndex, generator: torch.Generator, rounds: int = 8
) -> tuple[Tensor, Tensor]:
    """Uniform negatives ``(B, count)`` and a validity mask ``(B, count)``.

    Draws that hit a known (training) answer are redrawn up to ``rounds`` times; any left over are
    marked invalid, so a true answer is never used as a negative.
    """
    candidates = torch.randint(num_entities, (len(queries), count), generator=generator)
    hits = known.contains(queries, candidates)
    for _ in range(rounds):
        if not bool(hits.any()):
            break
        redraw = torch.randint(num_entities, (int(hits.sum()),), generator=generator)
        candidates[hits] = redraw
        hits = known.contains(queries, candidates)
    return candidates, ~hits
