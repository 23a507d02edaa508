"""Filtered link-prediction evaluation of any model that scores all entities for ``(e, r')``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mocme.data.kg import MultiModalKG, ranking_queries
from mocme.evaluation.categories import CATEGORIES, relation_categories
from mocme.evaluation.config import EvaluationConfig
from mocme.evaluation.metrics import DEFAULT_KS, flatten, side_metrics
from mocme.evaluation.ranking import filtered_ranks


class ScoresAllEntities(Protocol):
    """What the evaluator needs from a model."""

    def score_all(self, queries: Tensor) -> Tensor:
        """Scores of every entity as the answer of each query; ``(B, 2) -> (B, N)``."""
        ...


class Sharding(Protocol):
    """A process group that splits the queries among its processes and gathers their results."""

    def shard(self, items: Tensor) -> Tensor:
        """This process's rows of ``items``; shape ``(Q, ...) -> (Q_p, ...)``."""
        ...

    def gather(self, values: Tensor, device: torch.device) -> Tensor:
        """Every process's ``values`` concatenated in rank order; shape ``(Q_p, ...) -> (Q, ...)``."""
        ...


@dataclass
class Ranks:
    """Per-query filtered ranks of one split, both directions: tail queries first, then head, each in
    the split's order (sharded evaluation gathers them back into it)."""

    optimistic: Tensor  # float64 (Q,)
    pessimistic: Tensor  # float64 (Q,)
    is_head: Tensor  # bool (Q,)
    relations: Tensor  # long (Q,), original relation id (without the reciprocal offset)
    targets: Tensor  # long (Q,)
    entities: Tensor  # long (Q,), the query entity (the triple's other entity)

    @property
    def realistic(self) -> Tensor:
        return (self.optimistic + self.pessimistic) / 2


RANK_FIELDS = ("optimistic", "pessimistic", "is_head", "relations", "targets", "entities")


def query_batch_size(num_entities: int, memory_mb: float = 512.0, max_batch: int = 512) -> int:
    """Queries per batch so that two ``(B, N)`` float32 blocks (scores and one intermediate) fit in ``memory_mb``."""
    per_query = num_entities * 4 * 2 + 64
    return max(1, min(max_batch, int(memory_mb * 2**20 // per_query)))


@contextlib.contextmanager
def _inference(model: Any) -> Iterator[None]:
    """Eval mode, no autograd, and the model's own per-pass cache where it has one."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    cache = model.precomputed() if hasattr(model, "precomputed") else contextlib.nullcontext()
    try:
        with torch.inference_mode(), cache:
            yield
    finally:
        if was_training:
            model.train()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run ranking, many small tensor operations, on one thread; the model keeps its threads.

    With several threads every operation ends at a barrier, and on a busy machine a thread that
    lost its core stalls the others for a scheduler slice: ranking FB15K-237 on a loaded 2-core
    machine took 28-63 s on 2 threads and 10 s on one (benchmarks/results/eval_speed.md).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rank_triples(
    model: ScoresAllEntities,
    kg: MultiModalKG,
    triples: Tensor,
    *,
    filtered: bool = True,
    memory_mb: float = 512.0,
    max_batch: int = 512,
    progress: bool = False,
    description: str = "ranking",
) -> Ranks:
    """Rank the true answer of both directions of each triple against all entities.

    Queries are processed in batches sized from ``memory_mb`` (one ``(B, N)`` score block at a
    time, never a ``(B, N, d)`` tensor), sorted by relation so that models can reuse
    relation-specific work, and returned in the original order.
    """
    queries, targets, is_head = ranking_queries(triples, kg.num_relations)
    order = torch.argsort(queries[:, 1] * kg.num_entities + queries[:, 0], stable=True)
    index = kg.filter_index if filtered else None
    optimistic = torch.empty(len(queries), dtype=torch.float64)
    pessimistic = torch.empty(len(queries), dtype=torch.float64)
    batch = query_batch_size(kg.num_entities, memory_mb, max_batch)
    device = _device_of(model)
    with _inference(model):
        for chunk in tqdm(
            order.split(batch), desc=description, disable=None if progress else True, leave=False, unit="batch"
        ):
            q, t = queries[chunk], targets[chunk]
            scores = model.score_all(q.to(device)).float().cpu()
            with _one_thread():
                if index is not None:
                    rows, cols = index.pairs(q)
                else:
                    rows = cols = torch.zeros(0, dtype=torch.long)
                optimistic[chunk], pessimistic[chunk] = filtered_ranks(scores, t, rows, cols)
    relations = queries[:, 1] % kg.num_relations
    return Ranks(optimistic, pessimistic, is_head, relations, targets, queries[:, 0].clone())


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def summarize(ranks: Ranks, kg: MultiModalKG, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Metrics overall, per relation category, per modality availability of the answer, by whether
    the query and answer entities were seen in training (:func:`seen_breakdown`) and by how many
    training triples the less-known of them has (:func:`degree_breakdown`)."""
    result: dict[str, Any] = side_metrics(ranks.optimistic, ranks.pessimistic, ranks.is_head, ks)
    categories = relation_categories(kg.train, kg.num_relations)[ranks.relations]
    result["by_relation_category"] = {
        name: side_metrics(*_select(ranks, categories == code), ks)
        for code, name in enumerate(CATEGORIES)
        if bool((categories == code).any())
    }
    result["by_modality"] = {}
    for name, modality in kg.modalities.items():
        has = modality.mask[ranks.targets]
        result["by_modality"][name] = {
            label: side_metrics(*_select(ranks, selected), ks)
            for label, selected in (("present", has), ("absent", ~has))
            if bool(selected.any())
        }
    result["by_seen"] = seen_breakdown(ranks, kg, ks)
    result["by_degree"] = degree_breakdown(ranks, kg, ks)
    return result


SEEN_GROUPS = {
    "seen": "query and answer seen in training",
    "unseen": "query or answer unseen",
    "query_unseen": "query unseen, answer seen",
    "answer_unseen": "query seen, answer unseen",
    "both_unseen": "query and answer unseen",
}
"""The groups of :func:`seen_breakdown` and what each holds."""


def seen_breakdown(ranks: Ranks, kg: MultiModalKG, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Metrics of the queries grouped by whether their entities occur in a training triple.

    The inductive case: ``unseen`` holds every query of a triple with an entity that no training
    triple has (both directions of it), split into ``query_unseen``, ``answer_unseen`` and
    ``both_unseen``; ``seen`` holds the rest. The ranks are the split's own, only grouped. Each
    non-empty group has the metrics of :func:`~mocme.evaluation.metrics.side_metrics` and
    ``triples``, the number of the split's triples with a query in the group.
    """
    seen = training_degrees(kg) > 0
    query, answer = seen[ranks.entities], seen[ranks.targets]

    def members(query: Tensor, answer: Tensor) -> dict[str, Tensor]:
        both = query & answer
        return {
            "seen": both,
            "unseen": ~both,
            "query_unseen": ~query & answer,
            "answer_unseen": query & ~answer,
            "both_unseen": ~query & ~answer,
        }

    groups = members(query, answer)
    mirrored = members(answer, query)  # the same triple's query in the other direction
    tail = ~ranks.is_head
    out = {}
    for name, selected in groups.items():
        if bool(selected.any()):
            out[name] = side_metrics(*_select(ranks, selected), ks)
            out[name]["triples"] = int((tail & (selected | mirrored[name])).sum())
    return out


DEGREE_GROUPS = ("0", "1", "2-3", "4-7", "8-15", "16-31", "32+")
"""The groups of :func:`degree_breakdown`: training triples of a triple's less-known entity."""


def degree_breakdown(ranks: Ranks, kg: MultiModalKG, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Metrics of the queries grouped by the training degree of their triple's less-known entity.

    An entity's degree is the number of training triples it occurs in; a triple's group is the
    smaller degree of its two entities, binned by powers of two (:data:`DEGREE_GROUPS`; ``"0"``
    is the ``unseen`` group of :func:`seen_breakdown`). Both directions of a triple fall in the
    same group, so ``triples`` is the number of the split's triples in it. This is where
    structure is thin and another modality can help.
    """
    degree = training_degrees(kg)
    group = degree_groups(torch.minimum(degree[ranks.entities], degree[ranks.targets]))
    out = {}
    for code, name in enumerate(DEGREE_GROUPS):
        selected = group == code
        if bool(selected.any()):
            out[name] = side_metrics(*_select(ranks, selected), ks)
            out[name]["triples"] = int((selected & ~ranks.is_head).sum())
    return out


def training_degrees(kg: MultiModalKG) -> Tensor:
    """The number of distinct training triples each entity occurs in (a self-loop ``(e, r, e)`` once,
    a repeated line once), shape ``(num_entities,)``."""
    train = torch.unique(kg.train, dim=0) if len(kg.train) else kg.train
    heads, tails = train[:, 0], train[:, 2]
    counts = torch.bincount(heads, minlength=kg.num_entities)
    return counts + torch.bincount(tails[tails != heads], minlength=kg.num_entities)


def degree_groups(degrees: Tensor) -> Tensor:
    """The index into :data:`DEGREE_GROUPS` of each of ``degrees`` (shape ``(n,)``): 0 for 0, then
    one group per power of two, the last open-ended."""
    group = torch.where(degrees > 0, torch.log2(degrees.clamp(min=1).double()).floor().long() + 1, 0)
    return group.clamp(max=len(DEGREE_GROUPS) - 1)


def _select(ranks: Ranks, selected: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return ranks.optimistic[selected], ranks.pessimistic[selected], ranks.is_head[selected]


@dataclass(frozen=True)
class Evaluator:
    """Filtered ranking of models on the splits of ``kg``, with no side effects.

    With ``sharding``, each process ranks its shard of the triples and the ranks of all are
    gathered back into one process's order, so every process computes the metrics a single process
    would, to the last bit.
    """

    kg: MultiModalKG
    filtered: bool = True
    ks: Sequence[int] = DEFAULT_KS
    memory_mb: float = 512.0
    max_batch: int = 512
    progress: bool = False
    sharding: Sharding | None = None

    @classmethod
    def of(
        cls, kg: MultiModalKG, config: EvaluationConfig, progress: bool = False, sharding: Sharding | None = None
    ) -> Evaluator:
        """The evaluator an ``evaluation`` config section describes."""
        return cls(kg, config.filtered, config.ks, config.memory_mb, config.max_batch, progress, sharding)

    def ranks(self, model: ScoresAllEntities, triples: Tensor, description: str = "ranking") -> Ranks:
        """Filtered ranks of both directions of ``triples`` (shape ``(T, 3)``); ``2T`` queries."""
        shard = triples if self.sharding is None else self.sharding.shard(triples)
        ranks = rank_triples(
            model,
            self.kg,
            shard,
            filtered=self.filtered,
            memory_mb=self.memory_mb,
            max_batch=self.max_batch,
            progress=self.progress,
            description=description,
        )
        if self.sharding is None:
            return ranks
        device = _device_of(model)
        # each process's queries are its triples' tails then heads; back in one process's order, so
        # that sums over the ranks (the metrics) add in the same order, to the last bit
        mine = self.sharding.shard(torch.arange(len(triples)))
        order = torch.sort(self.sharding.gather(torch.cat([mine, mine + len(triples)]), device)).indices
        gathered = [self.sharding.gather(getattr(ranks, name), device) for name in RANK_FIELDS]
        return Ranks(*(values[order.to(values.device)] for values in gathered))

    def validate(self, model: ScoresAllEntities, epoch: int) -> dict[str, float]:
        """Flat overall metrics on the validation split (``"both.realistic.hits_at_10"``, ...)."""
        ranks = self.ranks(model, self.kg.valid, f"validating (epoch {epoch})")
        return flatten(side_metrics(ranks.optimistic, ranks.pessimistic, ranks.is_head, self.ks))

    def evaluate(self, model: ScoresAllEntities, split: str = "valid") -> dict[str, Any]:
        """Metrics of ``model`` on a split, overall and broken down; see :func:`evaluate`."""
        ranks = self.ranks(model, self.kg.split(split), f"evaluating {split}")
        return {"split": split, "filtered": self.filtered, **summarize(ranks, self.kg, self.ks)}


def evaluate(
    model: ScoresAllEntities,
    kg: MultiModalKG,
    split: str = "valid",
    *,
    filtered: bool = True,
    ks: Sequence[int] = DEFAULT_KS,
    memory_mb: float = 512.0,
    max_batch: int = 512,
    progress: bool = False,
) -> dict[str, Any]:
    """Filtered ranking metrics of ``model`` on a split of ``kg``.

    Returns:
        ``{"split": split, "filtered": filtered, "both"|"head"|"tail": {"realistic"|"optimistic"|
        "pessimistic": {metric: value}, "count": n}, "by_relation_category": {...}, "by_modality":
        {...}, "by_seen": {...}, "by_degree": {...}}`` with PyKEEN's metric names
        (``inverse_harmonic_mean_rank`` is MRR, ``arithmetic_mean_rank`` is MR); see
        :func:`seen_breakdown` and :func:`degree_breakdown` for the last two. A side without queries
        (the head queries of a group that has only tail ones) has NaN metrics, written as null.
    """
    evaluator = Evaluator(kg, filtered, ks, memory_mb, max_batch, progress)
    return evaluator.evaluate(model, split)
