"""Training objectives over every entity (1vsAll, KvsAll, EGNS with ``pool: all``), in entity chunks.

Each scorer's ``(B, N)`` scores are never held at once when they would exceed the memory budget:
the query vectors and the all-entity table of every head (:meth:`KGModel.scorer_tables`) are
computed once, detached, and scored ``chunk`` entities at a time; each chunk's loss is
back-propagated into the detached copies right away, and one final backward pass carries the
accumulated gradients through the encoders. Every loss is a sum over entities (the softmax's
log-sum-exp is collected in a first pass without gradients when there are several chunks), so the
chunked loss and gradients equal the unchunked ones up to the order of floating-point additions.

A strategy (:mod:`mocme.training.strategies`) hands :func:`full_step` one :data:`ScorerLoss` per
step: the function that turns one scorer's chunked scores into its loss.

EGNS weights every negative by a softmax over the whole row, ``π_i = exp(a_i - logsumexp_j a_j)``;
with several chunks a first pass without gradients collects the row's log-sum-exp (and, for
``selection: topk``, the row's top-k), the second pass scores with gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mocme.models.base import KGModel, ScorerTable
from mocme.training.config import TrainingConfig
from mocme.training.losses import softmax_cross_entropy, weighted_bce, with_gradient
from mocme.training.regularizers import Regularizer
from mocme.training.weighting import binary_entropy, binary_entropy_from_logits

# Bytes alive per (query, entity) pair while a chunk is scored (heads are scored one after the
# other): the scores, the gradient kept for the backward pass, and the workspaces of the loss and
# of the EGNS weights (float32).
BYTES_PER_PAIR = 32


def entity_chunk(batch: int, num_entities: int, memory_mb: float | None) -> int:
    """Entities scored at once so that the ``(batch, chunk)`` blocks fit in ``memory_mb``."""
    if memory_mb is None:
        return num_entities
    per_entity = max(batch, 1) * BYTES_PER_PAIR
    return max(1, min(num_entities, int(memory_mb * 2**20 // per_entity)))


@dataclass
class _Leaves:
    """Detached copies of one scorer's query vectors and the gradients the chunks send them.

    The query copy is float32, so its gradient sums over the chunks in float32 (a bf16 query under
    autocast would add them in bf16); ``table_grad`` sums the chunks' table gradients in float32; a
    chunk of the whole table hands its gradient over as it is (no zeroed ``(N, d)`` buffer to add it to).
    """

    table: ScorerTable
    query: Tensor
    table_grad: Tensor | None = None

    @classmethod
    def of(cls, table: ScorerTable) -> _Leaves:
        return cls(table, table.query.detach().float().requires_grad_())

    def scores(self, start: int, end: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Chunk scores with gradients into the copies; also the detached table rows and availability."""
        rows = self.table.table[start:end].detach().requires_grad_()
        head = self.table.scores(start, end, self.query, rows)
        return head.scores, rows, head.available

    def collect(self, rows: Tensor, start: int, end: int) -> None:
        if rows.grad is None:
            return
        if self.table_grad is None:
            if start == 0 and end == len(self.table.table):
                self.table_grad = rows.grad
                return
            self.table_grad = torch.zeros_like(self.table.table, dtype=torch.float32)
        self.table_grad[start:end] += rows.grad

    def roots(self) -> tuple[list[Tensor], list[Tensor]]:
        """The real tensors and their accumulated gradients, for the final backward pass."""
        tensors, grads = [], []
        if self.query.grad is not None:
            tensors.append(self.table.query)
            grads.append(self.query.grad.to(self.table.query.dtype))
        if self.table.table.requires_grad and self.table_grad is not None:
            tensors.append(self.table.table)
            grads.append(self.table_grad.to(self.table.table.dtype))
        return tensors, grads


@dataclass(frozen=True)
class Rows:
    """What every scorer's loss of one step shares.

    Attributes:
        targets: ``(B,)`` the answer of each query (``-1`` for KvsAll's distinct queries).
        labels: ``(rows, cols)`` every known training answer of each query.
        chunks: the ``[start, end)`` entity ranges scored at once.
        num_entities: ``N``.
        denominators: maps this process's count of averaged terms to the denominator to use.
        gumbel: Gumbel noise ``(B, columns)`` for EGNS ``selection: sample``, drawn for the global batch.
    """

    targets: Tensor
    labels: tuple[Tensor, Tensor]
    chunks: list[tuple[int, int]]
    num_entities: int
    denominators: Callable[[Tensor], Tensor]
    gumbel: Callable[[int], Tensor] | None = None


ScorerLoss = Callable[["_Leaves", Rows], tuple[Tensor, Tensor | None]]
"""One scorer's loss: ``(leaves, rows) -> (value, term)``. The function back-propagates its chunks
into the leaves itself; ``term`` (or ``None``) still has to be back-propagated through the real graph."""


def full_step(
    model: KGModel,
    queries: Tensor,
    targets: Tensor,
    labels: tuple[Tensor, Tensor],
    scorer_loss: ScorerLoss,
    memory_mb: float | None,
    batch_size: int,
    gumbel: Callable[[int], Tensor] | None = None,
    denominators: Callable[[Tensor], Tensor] | None = None,
    scorer_tables: Callable[[Tensor], dict[str, ScorerTable]] | None = None,
    regularizer: Regularizer | None = None,
    penalised: tuple[Tensor, Tensor] | None = None,
) -> dict[str, Tensor]:
    """One batch scored against every entity; accumulates gradients and returns the detached losses.

    Args:
        queries: ``(B, 2)`` on the model's device.
        targets: ``(B,)`` the answer of each query (``-1``: none, KvsAll).
        labels: ``(rows, cols)`` every known training answer of each query, on the model's device.
        scorer_loss: the strategy's loss of one scorer (see :data:`ScorerLoss`).
        memory_mb: budget of the score blocks (see :func:`entity_chunk`; sized for ``batch_size``
            queries, so that every batch is cut alike); ``None``: no limit.
        denominators: maps this process's count of averaged terms to the denominator to use
            (data-parallel training: the mean over processes); default: the count itself.
        scorer_tables: replaces ``model.scorer_tables`` (e.g. a compiled version of it).
        regularizer: N3 or DURA on the factors of the batch's training triples, reported as one
            more loss under its name.
        penalised: the ``(query row, entity)`` pairs of those triples (see
            ``_AllEntities.penalised_pairs``); needed with ``regularizer``.
    """
    tables = (scorer_tables or model.scorer_tables)(queries)
    num_entities = model.num_entities
    chunk = entity_chunk(max(len(queries), batch_size), num_entities, memory_mb)
    rows = Rows(targets, labels, _chunks(num_entities, chunk), num_entities, denominators or (lambda c: c), gumbel)
    losses: dict[str, Tensor] = {}
    direct: list[Tensor] = []  # terms that back-propagate through the real graph at the end
    leaves = {name: _Leaves.of(table) for name, table in tables.items()}
    for name, leaf in leaves.items():
        value, term = scorer_loss(leaf, rows)
        losses[name] = value
        if term is not None:
            direct.append(term)
    tensors, grads = [], []
    for leaf in leaves.values():
        t, g = leaf.roots()
        tensors += t
        grads += g
    if regularizer is not None:
        if penalised is None:
            raise ValueError("full_step: a regularizer needs the pairs it penalises (penalised=...)")
        penalty = sum(regularizer(table, penalised, rows.denominators) for table in tables.values())
        losses[regularizer.name] = penalty.detach()
        direct.append(penalty)
    penalty = model.regularization()
    if penalty.requires_grad:
        losses["regularization"] = penalty.detach()
        direct.append(penalty)
    for term in direct:
        tensors.append(term)
        grads.append(torch.ones_like(term))
    if tensors:
        torch.autograd.backward(tensors, grads)
    return losses


def one_vs_all_loss(smoothing: float, mask_known: bool) -> ScorerLoss:
    """1vsAll: softmax cross-entropy of each query's answer against every entity (kbc, LibKGE).

    ``mask_known``: leave the query's other known answers out of its softmax (filtered); by
    default they stay in as negatives, as in kbc.
    """

    def loss(leaf: _Leaves, rows: Rows) -> tuple[Tensor, None]:
        head = leaf.table
        weight = _positive_valid(head, rows.targets).float()
        denom = float(rows.denominators(weight.sum().to(torch.float64)).clamp_min(1))
        others = _other_answers(rows.labels, rows.targets) if mask_known else None
        lse = count = None
        if len(rows.chunks) > 1:  # pass 1: each row's log-sum-exp and candidate count over all chunks
            lse = torch.full((len(weight),), -math.inf, device=weight.device)
            count = torch.zeros(len(weight), device=weight.device)
            with torch.no_grad():
                for start, end in rows.chunks:
                    scores = head.scores(start, end)
                    valid = _softmax_valid(scores.available, others, start, end, weight)
                    s = scores.scores.float()
                    s = s if valid is None else s.masked_fill(~valid, -math.inf)
                    lse = torch.logaddexp(lse, torch.logsumexp(s, 1))
                    count += s.shape[1] if valid is None else valid.sum(1)
        total = head.query.new_zeros((), dtype=torch.float32)
        for start, end in rows.chunks:
            scores, table_rows, available = leaf.scores(start, end)
            valid = _softmax_valid(available, others, start, end, weight)
            inside = (rows.targets >= start) & (rows.targets < end)
            targets = torch.where(inside, rows.targets - start, -1)
            value = softmax_cross_entropy(scores, targets, valid, smoothing, weight, denom, lse, count)
            value.backward()
            leaf.collect(table_rows, start, end)
            total += value.detach()
        if lse is not None:  # the log-sum-exp term, once per row
            total += (weight * lse.masked_fill(~torch.isfinite(lse), 0.0)).sum() / denom
        return total, None

    return loss


def egns_softmax_loss(config: TrainingConfig, temperature: float | None) -> ScorerLoss:
    """EGNS as the entropy-guided 1vsAll: a softmax cross-entropy whose negatives weigh ``N⁻ π_i``.

    ``π_i ∝ exp(H(σ(s_i - s_t)) / τ) · σ(s_i - s_t)^η`` over each row's negatives (detached), with
    ``s_t`` the answer's score: highest for a negative the model cannot tell from the answer, low
    for one it has separated (either way). Uniform ``π`` (the warm-up epochs) is 1vsAll exactly.
    """
    if temperature is None:
        return one_vs_all_loss(config.label_smoothing, config.mask_known)
    hardness, smoothing = config.egns.hardness, config.label_smoothing

    def log_weights(scores: Tensor, positive: Tensor, valid: Tensor | None, answer_at: tuple[Tensor, Tensor]) -> Tensor:
        """Unnormalised ``log π`` ``(B, C)``; ``-inf`` off the row's negatives (invalid, or its answer)."""
        gap = scores - positive.unsqueeze(1)
        out = binary_entropy_from_logits(gap).div_(temperature)
        if hardness:
            out.add_(F.logsigmoid(gap), alpha=hardness)
        if valid is not None:
            out.masked_fill_(~valid, -math.inf)
        out[answer_at] = -math.inf
        return out

    def loss(leaf: _Leaves, rows: Rows) -> tuple[Tensor, None]:
        head = leaf.table
        weight = _positive_valid(head, rows.targets).float()
        denom = float(rows.denominators(weight.sum().to(torch.float64)).clamp_min(1))
        others = _other_answers(rows.labels, rows.targets) if config.mask_known else None
        with torch.no_grad():
            positive = head.interaction.score_gathered(head.query, head.table, rows.targets.unsqueeze(1))
            positive = positive.squeeze(1).float()
        whole = len(rows.chunks) == 1 and others is None and head.query_available is None
        if whole and not hardness and math.log(2) / temperature < _EXP_SAFE and bool((rows.targets >= 0).all()):
            scores, table_rows, _ = leaf.scores(*rows.chunks[0])  # every entity a candidate of every row
            value = _egns_softmax_whole(scores, rows.targets, positive, temperature, smoothing, weight, denom)
            value.backward()
            leaf.collect(table_rows, *rows.chunks[0])
            return value.detach(), None

        def chunk(
            scores: Tensor, available: Tensor | None, start: int, end: int
        ) -> tuple[Tensor | None, Tensor, tuple[Tensor, Tensor], Tensor]:
            """The chunk's softmax candidates (``None``: all), answer column (``-1``: none), the answers'
            ``(rows, columns)`` and ``log π`` (unnormalised). A row's answer, when in the chunk, is always
            among its candidates."""
            valid = _softmax_valid(available, others, start, end, weight)
            inside = (rows.targets >= start) & (rows.targets < end)
            targets = torch.where(inside, rows.targets - start, -1)
            answer_rows = inside.nonzero().squeeze(1)
            answer_at = (answer_rows, targets[answer_rows])
            return valid, targets, answer_at, log_weights(scores.detach().float(), positive, valid, answer_at)

        # pass 1, without gradients: each row's normaliser of π, its negatives and softmax candidates,
        # and log Σ_neg exp(s + log π) (a single chunk reuses the scores and log π in pass 2)
        single = len(rows.chunks) == 1
        first = leaf.scores(*rows.chunks[0]) if single else None
        lse_w = torch.full_like(positive, -math.inf)
        lse_sw = torch.full_like(positive, -math.inf)
        negatives, count = torch.zeros_like(positive), torch.zeros_like(positive)
        kept = None
        with torch.no_grad():
            for start, end in rows.chunks:
                scores, available = (first[0], first[2]) if first is not None else head.scores(start, end)
                kept = chunk(scores, available, start, end)
                valid, targets, _, lw = kept
                lse_w = torch.logaddexp(lse_w, torch.logsumexp(lw, 1))
                lse_sw = torch.logaddexp(lse_sw, torch.logsumexp(scores.detach().float() + lw, 1))
                candidates = valid.sum(1) if valid is not None else torch.full_like(count, end - start)
                count += candidates
                negatives += candidates - (targets >= 0).float()
        kept = kept if single else None  # chunks of several are recomputed, within the memory budget
        has_negative = torch.isfinite(lse_w)
        shift = torch.where(has_negative, negatives.clamp_min(1).log() - lse_w, 0.0)  # log N⁻ - log Σ exp(lw)
        lse = torch.where(has_negative, torch.logaddexp(positive, lse_sw + shift), positive)
        total = head.query.new_zeros((), dtype=torch.float32)
        for start, end in rows.chunks:
            scores, table_rows, available = first if first is not None else leaf.scores(start, end)
            valid, targets, answer_at, lw = kept if kept is not None else chunk(scores, available, start, end)
            offsets = lw.add_(shift.unsqueeze(1))
            if valid is not None:
                offsets.masked_fill_(~valid, 0.0)
            offsets[answer_at] = 0.0
            value = softmax_cross_entropy(scores, targets, valid, smoothing, weight, denom, lse, count, offsets)
            value.backward()
            leaf.collect(table_rows, start, end)
            total += value.detach()
        return total + (weight * lse).sum() / denom, None

    return loss


_EXP_SAFE = 80.0  # exp of a log-weight below this cannot overflow float32


def _egns_softmax_whole(
    scores: Tensor,
    targets: Tensor,
    positive: Tensor,
    temperature: float,
    smoothing: float,
    weight: Tensor,
    denom: float,
) -> Tensor:
    """The entropy-guided 1vsAll of :func:`egns_softmax_loss` when one block holds every entity of every row.

    Same value and gradient as the general path, in about half the passes over the ``(B, N)`` scores:
    the log-weights ``H/τ`` lie in ``[0, log 2 / τ]``, so ``exp`` of them needs no shift, and the
    softmax's numerators ``exp(s - m) exp(H/τ)`` are formed once and become the gradient in place.
    ``scores`` ``(B, N)`` (with gradients), ``targets`` ``(B,)`` (every row's answer), ``positive`` ``(B,)``
    the answers' scores (detached), ``weight`` ``(B,)``.
    """
    s = scores.detach().float()
    rows = torch.arange(len(s), device=s.device)
    answer = s[rows, targets]  # the answer's score in the softmax (``positive``, its own product, in the weights)
    with torch.no_grad():
        gap = s - positive.unsqueeze(1)
        log_weights = F.softplus(gap).addcmul_(gap, torch.sigmoid(gap), value=-1).mul_(1 / temperature)
        del gap
        log_weights[rows, targets] = 0.0
        sum_log_weights = log_weights.sum(1)  # Σ H/τ over the negatives (smoothing's share of the offsets)
        log_weights[rows, targets] = -math.inf
        weights = log_weights.exp_()  # exp(H/τ) of the negatives, 0 at each row's answer
        log_sum_w = weights.sum(1).log()
        top = s.amax(1)
        numerators = torch.sub(s, top.unsqueeze(1)).exp_().mul_(weights)  # exp(s - m + H/τ)
        del weights, log_weights
        log_sum_sw = numerators.sum(1).log() + top
        negatives = s.shape[1] - 1
        has_negative = torch.isfinite(log_sum_w)
        shift = torch.where(has_negative, math.log(max(negatives, 1)) - log_sum_w, 0.0)  # log N⁻ - log Σ exp(H/τ)
        lse = torch.where(has_negative, torch.logaddexp(positive, log_sum_sw + shift), positive)
        scale = weight / denom
        grad = numerators.mul_(((top + shift - lse).exp() * scale).unsqueeze(1))  # p_j of the negatives
        grad[rows, targets] = ((answer - lse).exp() - (1 - smoothing)) * scale
        value = (weight * (lse - (1 - smoothing) * answer)).sum() / denom
        if smoothing:
            share = smoothing / s.shape[1]
            grad.sub_((share * scale).unsqueeze(1))
            value = value - (share * scale * (s.sum(1) + sum_log_weights + negatives * shift)).sum()
    return with_gradient(scores, value, grad)


def _other_answers(labels: tuple[Tensor, Tensor], targets: Tensor) -> tuple[Tensor, Tensor]:
    """The known answers of each query except its own target: ``(rows, cols)``."""
    rows, cols = labels
    keep = cols != targets[rows]
    return rows[keep], cols[keep]


def _softmax_valid(
    available: Tensor | None, others: tuple[Tensor, Tensor] | None, start: int, end: int, weight: Tensor
) -> Tensor | None:
    """Candidates ``start:end`` in each row's softmax: defined, and not another known answer when masked.

    Rows that do not count (weight 0) keep every candidate, so that their log-sum-exp stays finite.
    """
    if available is None and others is None:
        return None
    valid = torch.ones((len(weight), end - start), dtype=torch.bool, device=weight.device)
    if available is not None:
        valid &= available
    if others is not None:
        valid[_labels_in(others, start, end)] = False
    return valid | (weight == 0).unsqueeze(1)


def k_vs_all_loss(smoothing: float, average: str = "pairs") -> ScorerLoss:
    """KvsAll: every known answer of a distinct query is a positive, every other entity a negative.

    ``average``: ``pairs`` divides the summed BCE by the number of (query, entity) pairs, ``queries``
    by the number of queries (a sum over entities, as LibKGE does).
    """

    def loss(leaf: _Leaves, rows: Rows) -> tuple[Tensor, None]:
        per_entity = average == "pairs"
        return _k_vs_all(
            leaf, rows.labels, smoothing, rows.chunks, rows.num_entities, rows.denominators, per_entity
        ), None

    return loss


def egns_all_loss(config: TrainingConfig, temperature: float | None) -> ScorerLoss:
    """EGNS over all entities (see :func:`_egns_all`)."""

    def loss(leaf: _Leaves, rows: Rows) -> tuple[Tensor, Tensor]:
        return _egns_all(leaf, rows, config, temperature)

    return loss


def _chunks(num_entities: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk, num_entities)) for start in range(0, num_entities, chunk)]


def _labels_in(labels: tuple[Tensor, Tensor], start: int, end: int) -> tuple[Tensor, Tensor]:
    rows, cols = labels
    inside = (cols >= start) & (cols < end)
    return rows[inside], cols[inside] - start


def _k_vs_all(
    leaf: _Leaves,
    labels: tuple[Tensor, Tensor],
    smoothing: float,
    chunks: list[tuple[int, int]],
    num_entities: int,
    denominators: Callable[[Tensor], Tensor],
    per_entity: bool = True,
) -> Tensor:
    """BCE summed over the defined (query, entity) pairs, targets ``(1 - ε) y + ε / N``, divided by
    the number of pairs (``per_entity``) or of defined queries."""
    head = leaf.table
    if head.query_available is None:
        count = float(len(head.query) * (num_entities if per_entity else 1))
    else:
        count = float(head.query_available.sum()) * (float(head.table_available.sum()) if per_entity else 1.0)
    denom = float(denominators(head.query.new_tensor(count, dtype=torch.float64)).clamp_min(1))
    total = head.query.new_zeros((), dtype=torch.float32)
    for start, end in chunks:
        scores, rows, available = leaf.scores(start, end)
        weight = None if available is None else available.to(torch.float32)
        loss = weighted_bce(
            scores, weight, denom, smoothing / num_entities, _labels_in(labels, start, end), 1 - smoothing
        )
        loss.backward()
        leaf.collect(rows, start, end)
        total += loss.detach()
    return total


def _logit_parts(scores: Tensor) -> tuple[Tensor, Tensor]:
    """``softplus(s)`` and ``σ(s)`` in float32, shared by the EGNS weights and the loss."""
    scores = scores.detach().float()
    return F.softplus(scores), torch.sigmoid(scores)


def _log_weights(
    scores: Tensor, valid: Tensor, config: TrainingConfig, temperature: float, parts: tuple[Tensor, Tensor]
) -> Tensor:
    """EGNS log-weights ``H(σ(s)) / τ + η log σ(s)`` of the valid negatives, ``-inf`` elsewhere."""
    scores = scores.detach().float()
    log_weights = binary_entropy(scores, *parts).div_(temperature)
    if config.egns.hardness:  # log σ(s) = s - softplus(s)
        log_weights.add_(scores - parts[0], alpha=config.egns.hardness)
    return log_weights.masked_fill_(~valid, -math.inf)


def _valid(available: Tensor | None, labels: tuple[Tensor, Tensor], shape: tuple[int, int]) -> Tensor:
    """Negatives of a chunk: defined pairs that are not known answers."""
    valid = torch.ones(shape, dtype=torch.bool, device=labels[0].device) if available is None else available.clone()
    valid[labels] = False
    return valid


def _egns_all(leaf: _Leaves, batch: Rows, config: TrainingConfig, temperature: float | None) -> tuple[Tensor, Tensor]:
    """EGNS over all entities: ``(-log σ(s_pos) - Σ_i π_i log(1 - σ(s_i))) / rows`` (see ``egns_weights``).

    Returns the loss value and the terms still to back-propagate through the real graph (the
    positive term, and for ``topk`` and ``sample`` the chosen negatives); the other negatives already were.
    """
    head = leaf.table
    targets, labels, chunks, gumbel, denominators = (
        batch.targets,
        batch.labels,
        batch.chunks,
        batch.gumbel,
        batch.denominators,
    )
    num_entities = batch.num_entities
    smoothing = config.label_smoothing
    keep = min(config.egns.keep, num_entities)
    selection = "weight" if temperature is None or keep >= num_entities else config.egns.selection
    if config.egns.selection == "sample" and keep >= num_entities:
        temperature = None  # every negative drawn: each weighs the same
    positive_valid = _positive_valid(head, targets)
    total = head.query.new_zeros((), dtype=torch.float32)

    if selection in ("topk", "sample"):  # pass 1 finds each row's chosen k; only those are scored with gradients
        with torch.no_grad():
            top_values = top_ids = None
            for start, end in chunks:
                log_weights = _chunk_log_weights(leaf, labels, config, temperature, start, end)
                if selection == "sample":  # Gumbel-top-k: k drawn without replacement ∝ π
                    assert gumbel is not None, "egns selection 'sample' needs Gumbel noise"
                    log_weights = log_weights + gumbel(end - start)
                top_values, top_ids = _merge_top(top_values, top_ids, log_weights, start, keep)
        assert top_values is not None and top_ids is not None
        chosen_valid = torch.isfinite(top_values)
        if selection == "sample":  # drawn negatives weigh the same
            weights = chosen_valid.float() / chosen_valid.sum(1, keepdim=True).clamp_min(1)
        else:
            weights = torch.nan_to_num(torch.softmax(top_values, 1), nan=0.0)
        rows = _rows(positive_valid | chosen_valid.any(1), denominators)
        chosen = head.interaction.score_gathered(head.query, head.table, top_ids)
        negative = weighted_bce(chosen, weights, rows, smoothing)
    else:
        lse = None
        if len(chunks) > 1:  # pass 1: each row's normaliser over all its chunks
            lse = torch.full((len(targets),), -math.inf, device=targets.device)
            with torch.no_grad():
                for start, end in chunks:
                    log_weights = _chunk_log_weights(leaf, labels, config, temperature, start, end)
                    lse = torch.logaddexp(lse, torch.logsumexp(log_weights, 1))
        rows = None
        for start, end in chunks:
            scores, table_rows, available = leaf.scores(start, end)
            valid = _valid(available, _labels_in(labels, start, end), tuple(scores.shape))
            parts = _logit_parts(scores)
            log_weights = _chunk_log_weights(leaf, labels, config, temperature, start, end, scores, valid, parts)
            if lse is None:
                lse = torch.logsumexp(log_weights, 1)
            has_negative = torch.isfinite(lse)
            # exp(log π - lse), in place; a row without negatives (lse = -inf) stays 0, not NaN
            weights = log_weights.sub_(lse.masked_fill(~has_negative, 0).unsqueeze(1)).exp_()
            if rows is None:
                rows = _rows(positive_valid | has_negative, denominators)
            loss = weighted_bce(scores, weights, rows, smoothing, parts=parts)
            loss.backward()
            leaf.collect(table_rows, start, end)
            total += loss.detach()
        assert rows is not None
        negative = None

    positive = head.interaction.score_gathered(head.query, head.table, targets.unsqueeze(1)).squeeze(1).float()
    pos_term = F.binary_cross_entropy_with_logits(positive, torch.full_like(positive, 1 - smoothing), reduction="none")
    term = (pos_term * positive_valid).sum() / rows
    if negative is not None:
        term = term + negative
    return total + term.detach(), term


def _rows(counted: Tensor, denominators: Callable[[Tensor], Tensor]) -> float:
    """The denominator of a mean over the ``counted`` rows ``(B,)``."""
    return float(denominators(counted.sum().to(torch.float64)).clamp_min(1))


def _positive_valid(head: ScorerTable, targets: Tensor) -> Tensor:
    if head.query_available is None:
        return torch.ones(len(targets), dtype=torch.bool, device=targets.device)
    return head.query_available & head.table_available[targets]


def _chunk_log_weights(
    leaf: _Leaves,
    labels: tuple[Tensor, Tensor],
    config: TrainingConfig,
    temperature: float | None,
    start: int,
    end: int,
    scores: Tensor | None = None,
    valid: Tensor | None = None,
    parts: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """Masked EGNS log-weights of entities ``start:end`` (0 on every valid negative during warm-up).

    ``parts``: :func:`_logit_parts` of ``scores`` when the caller has them.
    """
    if scores is None:
        head = leaf.table.scores(start, end)
        scores = head.scores
        valid = _valid(head.available, _labels_in(labels, start, end), tuple(scores.shape))
    assert valid is not None
    if temperature is None:
        return torch.zeros_like(scores, dtype=torch.float32).masked_fill_(~valid, -math.inf)
    return _log_weights(scores, valid, config, temperature, parts if parts is not None else _logit_parts(scores))


def _merge_top(
    values: Tensor | None, ids: Tensor | None, log_weights: Tensor, start: int, keep: int
) -> tuple[Tensor, Tensor]:
    """The ``keep`` largest log-weights per row seen so far, with their entity ids."""
    chunk_values, chunk_ids = log_weights.topk(min(keep, log_weights.shape[1]), dim=1)
    chunk_ids = chunk_ids + start
    if values is None or ids is None:
        return chunk_values, chunk_ids
    values, ids = torch.cat([values, chunk_values], 1), torch.cat([ids, chunk_ids], 1)
    merged, order = values.topk(min(keep, values.shape[1]), dim=1)
    return merged, ids.gather(1, order)
