"""Training strategies: how a batch of training queries becomes one loss per scorer.

A strategy is registered under its name (``training.negatives``) and declares what it needs:
which queries an epoch asks (:attr:`Strategy.queries`: every triple in both directions, one
direction per triple, or each distinct query once) and whether every entity is scored
(:attr:`Strategy.scores_all`) or a sampled pool. Each computes its loss with one kernel of
:mod:`mocme.training.losses` (:attr:`Strategy.kernels`: EGNS has one per pool). The trainer builds the strategy that the
config names and calls :meth:`Strategy.begin_epoch` and :meth:`Strategy.step`; it never looks at
the name. ``mocme ls samplers`` lists :data:`STRATEGIES` with the first line of each docstring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from mocme.data.filtering import FilterIndex
from mocme.errors import ConfigError
from mocme.models.base import KGModel, ScorerScores, ScorerTable
from mocme.training import losses
from mocme.training.config import TrainingConfig
from mocme.training.full import ScorerLoss, egns_all_loss, egns_softmax_loss, full_step, k_vs_all_loss, one_vs_all_loss
from mocme.training.negatives import sample_negatives
from mocme.training.regularizers import REGULARIZERS, Regularizer
from mocme.training.sampled import NegativeWeights, sampled_losses
from mocme.training.weighting import (
    egns_temperature,
    egns_weights,
    gumbel_noise,
    self_adversarial_weights,
    uniform_weights,
)

QueryMode = Literal["both", "bernoulli", "unique"]


@dataclass(frozen=True)
class Batch:
    """One step's training queries, as a strategy sees them.

    Attributes:
        queries: ``(B, 2)`` this process's queries, on the model's device; ``targets`` ``(B,)``.
        queries_cpu: the same queries on the CPU (filter-index look-ups).
        global_queries: ``(G, 2)`` on the CPU, the whole global batch (negatives are drawn for all
            of it, so that they do not depend on the number of processes); ``share`` is this
            process's rows of it.
        known: the training triples' filter index.
        generator: the epoch's random generator.
        denominators: maps this process's counts to the denominators of the global batch's mean
            (data-parallel training); ``None``: the counts themselves.
    """

    queries: Tensor
    targets: Tensor
    queries_cpu: Tensor
    global_queries: Tensor
    share: slice
    known: FilterIndex
    generator: torch.Generator
    denominators: Callable[[Tensor], Tensor] | None = None

    def gumbel(self, columns: int) -> Tensor:
        """Gumbel noise ``(B, columns)`` for this process's rows, drawn for the whole global batch from
        the epoch's generator (so a draw does not depend on the number of processes)."""
        return gumbel_noise(len(self.global_queries), columns, self.generator)[self.share].to(self.queries.device)


class Strategy:
    """Base class. ``scorer_scores`` / ``scorer_tables`` replace the model's (e.g. compiled versions)."""

    name: ClassVar[str]
    queries: ClassVar[QueryMode] = "both"
    kernels: ClassVar[tuple[Callable[..., Tensor], ...]]

    def __init__(
        self,
        config: TrainingConfig,
        model: KGModel,
        scorer_scores: Callable[..., dict[str, ScorerScores]] | None = None,
        scorer_tables: Callable[[Tensor], dict[str, ScorerTable]] | None = None,
    ):
        self.config, self.model = config, model
        self.scorer_scores = scorer_scores or model.scorer_scores
        self.scorer_tables = scorer_tables or model.scorer_tables
        self.regularizer = _regularizer(config, model, self.scores_all)

    @property
    def scores_all(self) -> bool:
        """Whether a step scores every entity (else a sampled pool per query)."""
        return False

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        """Set up the 0-based ``epoch``; returns what the epoch's trace record should show."""
        return {}

    def step(self, batch: Batch) -> dict[str, Tensor]:
        """Forward and backward pass of ``batch``; returns the detached losses (one per scorer, plus penalties)."""
        raise NotImplementedError


class _Sampled(Strategy):
    """Scores each query's answer and ``training.num_negatives`` uniformly drawn negatives."""

    kernels = (losses.weighted_negative_loss,)

    def weights(self, batch: Batch) -> NegativeWeights:
        """How the negatives of ``batch`` count."""
        return lambda scores, valid: uniform_weights(valid)

    def step(self, batch: Batch) -> dict[str, Tensor]:
        negatives, valid = sample_negatives(
            batch.global_queries, self.config.num_negatives, self.model.num_entities, batch.known, batch.generator
        )
        device = batch.queries.device
        values = sampled_losses(
            self.model,
            batch.queries,
            batch.targets,
            negatives[batch.share].to(device, non_blocking=True),
            valid[batch.share].to(device, non_blocking=True),
            self.weights(batch),
            self.config.label_smoothing,
            batch.denominators,
            self.scorer_scores,
        )
        torch.stack(list(values.values())).sum().backward()
        return {name: value.detach() for name, value in values.items()}


class _AllEntities(Strategy):
    """Scores every entity for each query, in chunks under ``training.memory_mb``."""

    kernels = (losses.weighted_bce,)

    @property
    def scores_all(self) -> bool:
        return True

    def scorer_loss(self) -> ScorerLoss:
        """The loss of one scorer in this step."""
        raise NotImplementedError

    def penalised_pairs(self, targets: Tensor, labels: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The ``(query row, entity)`` pairs whose factors N3 / DURA penalise: each query with its answer.

        ``targets`` ``(B,)``; ``labels`` every known answer of each query (``(rows, cols)``).
        """
        return torch.arange(len(targets), device=targets.device), targets

    def step(self, batch: Batch) -> dict[str, Tensor]:
        rows, cols = batch.known.pairs(batch.queries_cpu)
        device = batch.queries.device
        labels = (rows.to(device, non_blocking=True), cols.to(device, non_blocking=True))
        return full_step(
            self.model,
            batch.queries,
            batch.targets,
            labels,
            self.scorer_loss(),
            self.config.memory_mb,
            self.config.batch_size,
            batch.gumbel,
            batch.denominators,
            self.scorer_tables,
            self.regularizer,
            self.penalised_pairs(batch.targets, labels) if self.regularizer is not None else None,
        )


class Uniform(_Sampled):
    """Uniformly sampled negatives, weighted equally."""

    name = "uniform"


class Bernoulli(_Sampled):
    """Uniform negatives on one side per triple, more often the side with fewer answers (Wang et al., 2014).

    With reciprocal relations "one side" is one of the two queries ``(h, r)`` and ``(t, r⁻¹)``:
    each epoch asks half of the queries, so every relation and its reciprocal see fewer updates
    than with ``uniform``.
    """

    name = "bernoulli"
    queries = "bernoulli"


class SelfAdversarial(_Sampled):
    """Sampled negatives weighted by exp(alpha * score) (RotatE, Sun et al., 2019)."""

    name = "self_adversarial"

    def weights(self, batch: Batch) -> NegativeWeights:
        alpha = self.config.adversarial_temperature
        return lambda scores, valid: self_adversarial_weights(scores, valid, alpha)


class EGNS(_Sampled, _AllEntities):
    """Entropy-guided: pool negatives weighted by exp(H/tau), tau annealed (training.egns.*; pool training.pool).

    The pool is ``training.num_negatives`` sampled entities, or every entity (``training.pool: all``).
    Over every entity, ``training.egns.loss: softmax`` makes it the entropy-guided 1vsAll: the
    softmax cross-entropy of ``one_vs_all`` with its negatives weighted by entropy.
    """

    name = "egns"
    kernels = (losses.weighted_negative_loss, losses.weighted_bce, losses.softmax_cross_entropy)
    temperature: float | None = None

    @property
    def scores_all(self) -> bool:
        return self.config.pool == "all"

    def begin_epoch(self, epoch: int) -> dict[str, Any]:
        self.temperature = egns_temperature(self.config.egns, epoch, self.config.epochs)
        return {"egns_temperature": self.temperature} if self.temperature is not None else {}

    def weights(self, batch: Batch) -> NegativeWeights:
        config, temperature = self.config.egns, self.temperature
        drawn = config.selection == "sample" and temperature is not None

        def weigh(scores: Tensor, valid: Tensor) -> Tensor:
            noise = batch.gumbel(scores.shape[-1]) if drawn else None
            return egns_weights(scores, valid, config, temperature, noise)

        return weigh

    def scorer_loss(self) -> ScorerLoss:
        if self.config.egns.loss == "softmax":
            return egns_softmax_loss(self.config, self.temperature)
        return egns_all_loss(self.config, self.temperature)

    def step(self, batch: Batch) -> dict[str, Tensor]:
        return _AllEntities.step(self, batch) if self.scores_all else _Sampled.step(self, batch)


class OneVsAll(_AllEntities):
    """1vsAll: softmax cross-entropy of each query's answer against every entity (kbc; Lacroix et al., 2018).

    Every triple is asked in both directions; the query's other known answers stay in the
    softmax unless ``training.mask_known``. Pair it with ``training.regularizer: n3`` or ``dura``.
    """

    name = "one_vs_all"
    kernels = (losses.softmax_cross_entropy,)

    def scorer_loss(self) -> ScorerLoss:
        return one_vs_all_loss(self.config.label_smoothing, self.config.mask_known)


class KvsAll(_AllEntities):
    """KvsAll: each distinct query once, all its known answers as multi-label BCE targets (TuckER, LibKGE)."""

    name = "k_vs_all"
    queries = "unique"

    def scorer_loss(self) -> ScorerLoss:
        return k_vs_all_loss(self.config.label_smoothing, self.config.k_vs_all_average)

    def penalised_pairs(self, targets: Tensor, labels: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Each distinct query with every known answer (its queries carry no single answer)."""
        return labels


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (EGNS, Uniform, Bernoulli, SelfAdversarial, OneVsAll, KvsAll)
}


def build_strategy(config: TrainingConfig, model: KGModel, **overrides: Any) -> Strategy:
    """The strategy ``config.negatives`` names, for ``model``."""
    if config.negatives not in STRATEGIES:
        raise ConfigError(
            f"training.negatives: unknown strategy {config.negatives!r}; choose one of {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[config.negatives](config, model, **overrides)


def _regularizer(config: TrainingConfig, model: KGModel, scores_all: bool) -> Regularizer | None:
    if config.regularizer == "none":
        return None
    assert scores_all, "TrainingConfig refuses a regularizer with a sampled strategy"
    regularizer = REGULARIZERS[config.regularizer](config.regularizer_weight)
    for module in model.modules():
        if hasattr(module, "bilinear") and hasattr(module, "query"):
            regularizer.check(module)
    return regularizer
