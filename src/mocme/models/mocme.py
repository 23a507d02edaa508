"""MoCME: Mixture of Complementary Modality Experts (arXiv 2507.20620), as read in docs/method.md.

Every modality (the learned structural embedding, and each feature matrix) passes through ``K``
experts that produce ``K`` views; the views are fused with intra-modal complementarity weights
``β`` and the modalities with inter-modal complementarity weights ``α`` over the modalities the
entity has. Each modality and the unified embedding has a scorer with its own relation
parameters; the joint decision combines the scorers' probabilities.

Relation context: the query entity of ``(e, r')`` is encoded in context ``r'`` (gate bias,
temperature and attention query of ``r'``); candidate entities are encoded once per pass in the
neutral context ``2R``. Both ``score`` and ``score_all`` follow this one definition, so every
candidate costs one matrix multiply per scorer. While training, dropout perturbs the query entity's
encoding only (as TuckER's input dropout does); candidates are encoded without noise.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mocme.data.kg import MultiModalKG
from mocme.evaluation.evaluator import training_degrees
from mocme.models.base import (
    Candidates,
    CandidateSet,
    KGModel,
    ScorerScores,
    ScorerTable,
    candidate_set,
    score_candidates,
    select_candidates,
)
from mocme.models.config import ModelConfig
from mocme.models.dropout import Dropout
from mocme.models.fusion import (
    InterModalFusion,
    IntraModalFusion,
    ModalityExperts,
    Views,
    view_coefficients,
    view_redundancy,
)
from mocme.models.interactions import INTERACTIONS, Interaction, TuckER

STRUCTURE = "structure"
JOINT = "joint"
SCORE_BLOCK = 2**19  # (query, entity) pairs combined at once when scoring all entities
ENCODE_BLOCK = 2**14  # entities encoded at once for the evaluation cache
T = TypeVar("T")


@dataclass
class Encoding:
    """Representations of ``n`` entities in given contexts.

    Attributes:
        modal: ``M`` tensors ``(n, d)``, the fused embedding of each modality (structure first).
        joint: ``(n, d)``, the unified embedding ``e*``.
        available: ``(n, M)`` bool, which modalities each entity has.
        alpha: ``(n, M)``, inter-modal weights (0 where unavailable).
        beta: ``(n, M, K)``, intra-modal view weights.
    """

    modal: list[Tensor]
    joint: Tensor
    available: Tensor
    alpha: Tensor
    beta: Tensor

    def take(self, index: Tensor) -> Encoding:
        modal = [m[index] for m in self.modal]
        return Encoding(modal, *(getattr(self, f)[index] for f in ("joint", "available", "alpha", "beta")))

    def tensors(self) -> list[Tensor]:
        return [*self.modal, self.joint, self.available, self.alpha, self.beta]

    @staticmethod
    def of(tensors: list[Tensor]) -> Encoding:
        *modal, joint, available, alpha, beta = tensors
        return Encoding(modal, joint, available, alpha, beta)


@dataclass
class EntityParts:
    """The context-free part of the encodings of ``n`` entities (the same in every relation context).

    Attributes:
        views: per modality, the ``(n, K, d)`` expert views (factorised where that is cheaper).
        base: per modality, ``(n, K)`` context-free view logits ``g(x) + λ c`` (``None`` for mean fusion).
        available: ``(n, M)`` bool.
        log_degree: ``(n,)`` ``log(1 + training degree)``, for the degree gate (``None`` without it).
    """

    views: list[Views]
    base: list[Tensor | None]
    available: Tensor
    log_degree: Tensor | None = None


class MoCME(KGModel):
    """MoCME over the modalities of ``kg`` (structure is always the first modality)."""

    def __init__(self, kg: MultiModalKG, config: ModelConfig):
        super().__init__(kg.num_entities, kg.num_relations)
        self.config = config
        dim, experts = config.dim, config.experts
        self.modalities = [STRUCTURE, *kg.modalities]
        contexts = 2 * kg.num_relations + 1
        self.neutral = 2 * kg.num_relations

        self.trained_entities = kg.num_entities  # the rows the standardisation of new entities refers to
        self.entity = nn.Parameter(torch.randn(kg.num_entities, dim) / math.sqrt(dim))
        if config.init_scale is not None:  # kbc: every vector small, so that N3 and Adagrad start near the origin
            with torch.no_grad():
                self.entity.normal_(0.0, config.init_scale)
        self.register_buffer("structure_mask", _structure_mask(kg, config.unseen_structure), persistent=False)
        if config.degree_gate:  # how well structure knows each entity; 0 for one unseen in training
            self.register_buffer("log_degree", torch.log1p(training_degrees(kg).float()), persistent=False)
        for name, modality in kg.modalities.items():
            features = (
                _standardize(modality.features, modality.mask) if config.normalize_features else modality.features
            )
            self.register_buffer(f"features_{name}", features.clone(), persistent=False)
            self.register_buffer(f"mask_{name}", modality.mask.clone(), persistent=False)
        self.experts = nn.ModuleDict()
        self.intra = nn.ModuleDict()
        for name in self.modalities:
            d_in = dim if name == STRUCTURE else kg.modalities[name].dim
            kind = "residual" if name == STRUCTURE and config.structure_expert == "residual" else config.expert
            # init_scale sizes the feature experts' weights; a structural expert maps a vector already
            # at that scale, so its default 1/sqrt(d) start keeps it there
            scale = None if name == STRUCTURE else config.init_scale
            self.experts[name] = ModalityExperts(
                d_in, dim, experts, kind, config.expert_hidden, config.expert_rank, scale
            )
            self.intra[name] = IntraModalFusion(
                d_in,
                experts,
                contexts,
                config.fusion if config.intra else _gate_only(config.fusion),
                config.lambda_intra,
            )
        self.inter = InterModalFusion(
            dim,
            contexts,
            config.fusion if config.inter else _gate_only(config.fusion),
            config.lambda_inter,
            config.attention_dim,
            config.projection_dim,
            config.unified,
            config.inter_measure,
            config.degree_gate,
        )
        self.scorer_names = [*(self.modalities if config.modality_scorers else []), JOINT]
        self.scorers = nn.ModuleDict({name: _interaction(config, 2 * kg.num_relations) for name in self.scorer_names})
        if config.init_scale is not None:
            with torch.no_grad():
                for scorer in self.scorers.values():
                    relation = getattr(scorer, "relation", None)
                    if isinstance(relation, nn.Parameter):
                        relation.normal_(0.0, config.init_scale)
        self._register_load_state_dict_pre_hook(_read_old_scorer_keys)
        self.dropout = Dropout(config.dropout)
        self._cache: Encoding | None = None
        self._redundancies: list[Tensor] = []  # view redundancy of each encoding since regularization()

    # -- encoding ------------------------------------------------------------------------------
    def _input(self, name: str, ids: Tensor | None) -> Tensor:
        """Modality ``name``'s input rows of entities ``ids`` (``None``: every entity, the table itself)."""
        table = self.entity if name == STRUCTURE else getattr(self, f"features_{name}")
        return table if ids is None else F.embedding(ids, table)

    def _available(self, ids: Tensor | None) -> Tensor:
        """``(n, M)`` bool: which modalities each entity has (structure: see :func:`_structure_mask`)."""
        masks = [self.structure_mask, *(getattr(self, f"mask_{name}") for name in self.modalities[1:])]
        return torch.stack(masks if ids is None else [mask[ids] for mask in masks], 1)

    @property
    def structure_partial(self) -> bool:
        """Whether structure can be unavailable for an entity, so that the structure scorer is masked:
        some entity lacks a trained structural embedding, or training hides it (``structure_dropout``)."""
        return not bool(self.structure_mask.all()) or bool(self.training and self.config.structure_dropout)

    def entity_parts(self, ids: Tensor | None, dropout: bool = True, available: Tensor | None = None) -> EntityParts:
        """The views and context-free view logits of entities ``ids`` ``(n,)`` (``None``: every entity, read
        without copying its tables); inputs dropped out if ``dropout``.

        ``available`` ``(n, M)``: re-encode with these modalities (an earlier encoding's, structure
        dropout included), adding no diversity penalty; by default the entities' own.
        """
        views, base, penalties = [], [], []
        own = self._available(ids)
        for m, name in enumerate(self.modalities):
            x = self._input(name, ids)
            x = self.dropout(x) if dropout else x
            v, gated = self.experts[name](x, self.intra[name].gate)
            views.append(v)
            base.append(self.intra[name].base_logits(gated, v))
            if self.training and self.config.diversity and available is None:
                penalties.append(view_redundancy(v, own[:, m]))
        if penalties:
            self._redundancies.append(torch.stack(penalties).mean())
        log_degree = None
        if self.config.degree_gate:
            log_degree = self.log_degree if ids is None else self.log_degree[ids]
        return EntityParts(views, base, self._structure_dropped(own) if available is None else available, log_degree)

    def _structure_dropped(self, available: Tensor) -> Tensor:
        """While training, structure marked unavailable for ``model.structure_dropout`` of the entities
        that have another modality; ``(n, M) -> (n, M)``."""
        rate = self.config.structure_dropout
        if not (self.training and rate) or available.shape[1] < 2:
            return available
        drop = (torch.rand(len(available), device=available.device) < rate) & available[:, 1:].any(1)
        if not drop.any():
            return available
        available = available.clone()
        available[:, 0] &= ~drop
        return available

    def fuse(self, parts: EntityParts, context: Tensor | None = None, dropout: bool = True) -> Encoding:
        """Encodings of the entities of ``parts`` in relation contexts ``(n,)`` (neutral when ``None``)."""
        n = len(parts.available)
        if context is None:
            context = torch.full((n,), self.neutral, dtype=torch.long, device=parts.available.device)
        modal, betas = [], []
        for m, name in enumerate(self.modalities):
            fused, beta = self.intra[name].fuse(parts.views[m], parts.base[m], context)
            modal.append(fused)
            betas.append(beta)
        joint, alpha = self.inter(modal, parts.available, context, parts.log_degree)
        if dropout:
            modal, joint = [self.dropout(m) for m in modal], self.dropout(joint)
        return Encoding(modal, joint, parts.available, alpha, torch.stack(betas, 1))

    def encode(self, ids: Tensor | None, context: Tensor | None = None, dropout: bool = True) -> Encoding:
        """Encode entities ``ids`` ``(n,)`` (``None``: every entity) in relation contexts ``(n,)`` (neutral
        when ``None``).

        ``dropout``: perturb inputs and fused embeddings while training (the query side); candidates
        are encoded with ``dropout=False``.
        """
        return self.fuse(self.entity_parts(ids, dropout), context, dropout)

    def _encodings(self, queries: Tensor, cset: CandidateSet) -> tuple[Encoding, Encoding]:
        """Query encodings (in their relation contexts) and candidate encodings (neutral context)."""
        query = self.encode(queries[:, 0], queries[:, 1])
        if self._cache is not None:
            return query, self._cache if cset.ids is None else self._cache.take(cset.ids)
        return query, self.encode(cset.ids, dropout=False)

    # -- scoring -------------------------------------------------------------------------------------
    def scorer_tables(self, queries: Tensor) -> dict[str, ScorerTable]:
        """Each scorer's query vectors and all-entity table; a table's ``subject`` (what N3 and DURA
        penalise) is the query encoding without dropout, as a structural model's is its embedding."""
        query, cand = self._encodings(queries, CandidateSet(None))
        clean = query
        if self.training and self.config.dropout:  # the same modalities (structure dropout), no dropout
            parts = self.entity_parts(queries[:, 0], dropout=False, available=query.available)
            clean = self.fuse(parts, queries[:, 1], dropout=False)
        tables = {}
        relations = queries[:, 1]
        for name in self.scorer_names:
            interaction = self.scorers[name]
            if name == JOINT:
                q = interaction.query(query.joint, relations)
                tables[name] = ScorerTable(interaction, q, cand.joint, subject=clean.joint, relations=relations)
                continue
            m = self.modalities.index(name)
            q = interaction.query(query.modal[m], relations)
            masked = name != STRUCTURE or self.structure_partial
            available = (query.available[:, m], cand.available[:, m]) if masked else (None, None)
            tables[name] = ScorerTable(interaction, q, cand.modal[m], *available, clean.modal[m], relations)
        return tables

    def joint_contributions(self, queries: Tensor) -> Tensor | None:
        """The unified scorer's score of every candidate, split over the candidate's modalities:
        ``s(q, e*_c) = Σ_m c_m(c) s(q, e^m_c)`` with ``c`` the views' weights in ``e*``
        (:func:`view_coefficients`); exact for bilinear interactions, ``None`` for distance ones.

        Shapes: ``queries`` ``(B, 2)``; returns ``(B, N, M)`` (NaN where a candidate lacks the modality).
        """
        interaction = self.scorers[JOINT]
        if not interaction.bilinear:
            return None
        cset = CandidateSet(None)
        query, cand = self._encodings(queries, cset)
        q = interaction.query(query.joint, queries[:, 1])
        weights = view_coefficients(cand.alpha, cand.available, self.config.unified)
        parts = [
            score_candidates(interaction, q, cand.modal[m], cset) * weights[:, m] for m in range(len(self.modalities))
        ]
        parts = [torch.where(cand.available[:, m], part, float("nan")) for m, part in enumerate(parts)]
        return torch.stack(parts, -1)

    def scorer_scores(self, queries: Tensor, candidates: Candidates = None) -> dict[str, ScorerScores]:
        cset = candidate_set(candidates, self.num_entities, queries.device)
        query, cand = self._encodings(queries, cset)
        out = {}
        for name in self.scorer_names:
            interaction = self.scorers[name]
            if name == JOINT:
                q = interaction.query(query.joint, queries[:, 1])
                out[name] = ScorerScores(score_candidates(interaction, q, cand.joint, cset))
                continue
            m = self.modalities.index(name)
            q = interaction.query(query.modal[m], queries[:, 1])
            scores = score_candidates(interaction, q, cand.modal[m], cset)
            available = None
            if name != STRUCTURE or self.structure_partial:
                cand_available = select_candidates(cand.available[:, m], cset)
                if cand_available.ndim == 1:
                    cand_available = cand_available.unsqueeze(0)
                available = query.available[:, m].unsqueeze(1) & cand_available
            out[name] = ScorerScores(scores, available)
        return out

    def deciding(self, scorers: dict[str, T]) -> dict[str, T]:
        """The scorers that take part in the joint decision: all, or the unified scorer alone (``joint: unified``)."""
        return {JOINT: scorers[JOINT]} if self.config.joint == "unified" else scorers

    def combine(self, scorers: dict[str, ScorerScores]) -> Tensor:
        """``log Σ_h w_h σ(s_h)`` over the deciding scorers, every candidate on one scale.

        Where a modality scorer is undefined (the query or the candidate lacks its modality) the
        unified scorer's probability stands in for it, so every candidate is scored by the same
        number of terms whatever modalities it has. Weights are equal, or each scorer's confidence
        ``1 - H(softmax(s_h)) / log C`` per query; with ``joint: unified`` this is ``log σ(s_joint)``.
        Working in log space keeps near-certain answers apart instead of rounding them to 1.
        """
        deciding = self.deciding(scorers)
        unified = deciding[JOINT].scores
        unified_log_prob, unified_log_weight = F.logsigmoid(unified), self._log_confidence(unified, None)
        log_probs, log_weights = [], []
        for name, scorer in deciding.items():
            if name == JOINT or scorer.available is None:
                log_probs.append(F.logsigmoid(scorer.scores))
                log_weights.append(self._log_confidence(scorer.scores, None))
                continue
            available = scorer.available.expand_as(scorer.scores)
            log_probs.append(torch.where(available, F.logsigmoid(scorer.scores), unified_log_prob))
            log_weights.append(
                torch.where(available, self._log_confidence(scorer.scores, available), unified_log_weight)
            )
        log_w = torch.stack(log_weights)
        return torch.logsumexp(torch.stack(log_probs) + log_w, 0) - torch.logsumexp(log_w, 0)

    def _log_confidence(self, scores: Tensor, available: Tensor | None) -> Tensor:
        """``(B, C)`` log-weights of one scorer in the decision: 0, or its log confidence per query."""
        if self.config.joint != "confidence":
            return torch.zeros_like(scores)
        available = torch.ones_like(scores, dtype=torch.bool) if available is None else available
        return _confidence(scores, available).clamp_min(1e-6).log().unsqueeze(1).expand_as(scores)

    def score_all(self, queries: Tensor, candidates: Candidates = None) -> Tensor:
        if self.config.joint == "confidence":
            if candidates is None:
                return super().score_all(queries)
            # Confidence is defined over all entities, so score full rows and pick the candidates.
            full = self.combine(self.scorer_scores(queries, None))
            if isinstance(candidates, Tensor) and candidates.ndim == 2:
                return full.gather(1, candidates)
            return full[:, candidates]
        if candidates is None:
            return self._score_all_in_blocks(queries)
        return super().score_all(queries, candidates)

    def _score_all_in_blocks(self, queries: Tensor) -> Tensor:
        """Joint scores of all entities ``(B, N)``, combined one block of entities at a time.

        The scorers' ``(B, block)`` scores and the combination's workspace stay small; only the
        ``(B, N)`` result is allocated in full.
        """
        tables = self.deciding(self.scorer_tables(queries))
        block = max(1, SCORE_BLOCK // max(len(queries), 1))
        blocks = [(start, min(start + block, self.num_entities)) for start in range(0, self.num_entities, block)]
        first = self.combine({name: table.scores(*blocks[0]) for name, table in tables.items()})
        if len(blocks) == 1:
            return first
        out = first.new_empty((len(queries), self.num_entities))
        out[:, : blocks[0][1]] = first
        for start, end in blocks[1:]:
            out[:, start:end] = self.combine({name: table.scores(start, end) for name, table in tables.items()})
        return out

    def regularization(self) -> Tensor:
        """``model.diversity`` times the view redundancy, averaged over the encodings since the last
        call (a step encodes its queries and its candidates: each counts once in the mean)."""
        redundancies, self._redundancies = self._redundancies, []
        if not redundancies:
            return torch.zeros((), device=self.device)
        return self.config.diversity * torch.stack(redundancies).mean()

    def with_new_entities(self, kg: MultiModalKG, features: dict[str, Tensor], masks: dict[str, Tensor]) -> MoCME:
        """A copy of this model over ``N + n`` entities: the ``N`` it was trained on, then ``n`` new ones.

        Inductive prediction: a new entity has no structural embedding (a zero vector, its
        ``structure_mask`` False), so its encoding comes from the feature modalities it has, through
        the trained experts and fusion, and the structure scorer is undefined for it. Nothing is
        trained; the new entities are candidates and query entities like the others.

        Args:
            kg: the graph this model was built from; its raw features give the standardisation
                statistics, so new rows are standardised exactly as the training rows were.
            features: for every feature modality, the new entities' raw rows, shape ``(n, d)``.
            masks: for every feature modality, shape ``(n,)`` bool: which new entities have it.
        """
        names = self.modalities[1:]
        if set(features) != set(names) or set(masks) != set(names):
            raise ValueError(f"need features and masks of every modality ({', '.join(names)})")
        if kg.num_entities != self.num_entities or list(kg.modalities) != names:
            raise ValueError(f"{kg!r} is not the graph this model was built from")
        n = len(next(iter(masks.values()))) if names else 0
        if names:
            bare = ~torch.stack([masks[name].to(torch.bool) for name in names]).any(0)
            if bool(bare.any()):
                raise ValueError(f"new entity {int(bare.nonzero()[0])} has no modality: nothing to represent it by")
        extended = copy.deepcopy(self)
        extended.num_entities = self.num_entities + n
        extended._cache, extended._redundancies = None, []
        with torch.no_grad():
            extended.entity = nn.Parameter(torch.cat([self.entity, self.entity.new_zeros(n, self.entity.shape[1])]))
            extended.structure_mask = torch.cat([self.structure_mask, self.structure_mask.new_zeros(n)])
            if self.config.degree_gate:  # a new entity has no training triple
                extended.log_degree = torch.cat([self.log_degree, self.log_degree.new_zeros(n)])
            for name in names:
                mask = masks[name].to(self.structure_mask.device, torch.bool)
                rows = features[name].to(self.entity.device, torch.float32)
                if rows.shape != (n, kg.modalities[name].dim) or mask.shape != (n,):
                    raise ValueError(f"modality {name!r}: rows {tuple(rows.shape)}, mask {tuple(mask.shape)}")
                if self.config.normalize_features:
                    reference = kg.modalities[name]
                    first = slice(0, self.trained_entities)  # the training rows only, whatever was added since
                    rows = _standardize_like(
                        rows, reference.features[first].to(rows.device), reference.mask[first].to(rows.device)
                    )
                rows = torch.where(mask.unsqueeze(1), rows, torch.zeros_like(rows))
                setattr(extended, f"features_{name}", torch.cat([getattr(self, f"features_{name}"), rows]))
                setattr(extended, f"mask_{name}", torch.cat([getattr(self, f"mask_{name}"), mask]))
        return extended

    @contextlib.contextmanager
    def precomputed(self) -> Iterator[None]:
        """Encode every entity once (neutral context, in blocks) and reuse it for all candidates."""
        blocks = torch.arange(self.num_entities, device=self.device).split(ENCODE_BLOCK)
        with torch.no_grad():
            first = self.encode(blocks[0]).tensors()
            whole = [t.new_empty((self.num_entities, *t.shape[1:])) for t in first]
            start = 0
            for block in blocks:
                parts = first if start == 0 else self.encode(block).tensors()
                for target, part in zip(whole, parts, strict=True):
                    target[start : start + len(block)] = part
                start += len(block)
            self._cache = Encoding.of(whole)
        try:
            yield
        finally:
            self._cache = None


class SingleScorer(nn.Module):
    """One MoCME scorer alone, as a model the evaluator can rank with.

    ``score_all``: ``(B, 2) -> (B, N)`` scores of that scorer; where it is undefined (the query or
    the candidate lacks its modality) the score is ``-inf``, so an answer without the modality
    ties last, and a query entity without it ties every candidate.
    """

    def __init__(self, model: MoCME, scorer: str) -> None:
        super().__init__()
        if scorer not in model.scorer_names:
            raise ValueError(f"unknown scorer {scorer!r}; this model has {', '.join(model.scorer_names)}")
        self.model, self.scorer = model, scorer

    @property
    def num_entities(self) -> int:
        return self.model.num_entities

    def precomputed(self) -> contextlib.AbstractContextManager[None]:
        return self.model.precomputed()

    def score_all(self, queries: Tensor) -> Tensor:
        scores, available = self.model.scorer_tables(queries)[self.scorer].scores(0, self.num_entities)
        return scores if available is None else scores.masked_fill(~available, -math.inf)


def _confidence(scores: Tensor, available: Tensor) -> Tensor:
    """``1 - normalised entropy`` of the softmax over available candidates; ``(B, C) -> (B,)``."""
    logits = scores.masked_fill(~available, -math.inf)
    log_p = torch.log_softmax(logits, dim=1)
    entropy = -(log_p.exp() * log_p.masked_fill(~available, 0)).sum(1)
    count = available.sum(1).clamp_min(2).double().log().to(scores.dtype)
    return (1 - entropy / count).clamp(0, 1)


def _structure_mask(kg: MultiModalKG, unseen_structure: str) -> Tensor:
    """``(N,)`` bool: which entities have a structural embedding to use.

    With ``unseen_structure: mask``, an entity that never occurs in a training triple has only its
    random initial vector, so structure is marked unavailable for it and its modality weights fall
    on the feature modalities it has; an entity that has none of them keeps structure (something
    must represent it). With ``keep``, every entity has structure.
    """
    mask = torch.ones(kg.num_entities, dtype=torch.bool)
    if unseen_structure == "keep" or not kg.modalities:
        return mask
    seen = torch.zeros(kg.num_entities, dtype=torch.bool)
    seen[kg.train[:, 0]] = True
    seen[kg.train[:, 2]] = True
    has_other = torch.zeros(kg.num_entities, dtype=torch.bool)
    for modality in kg.modalities.values():
        has_other |= modality.mask
    return seen | ~has_other


def _standardize(features: Tensor, mask: Tensor) -> Tensor:
    """Zero-mean columns of variance ``1 / d`` over the available rows; unavailable rows stay 0.

    An average row then has norm 1, the scale of the structural embedding, so every modality's
    experts start from inputs of the same size whatever the feature dimension ``d``.
    """
    if mask.sum() < 2:
        return features
    rows = features[mask]
    out = torch.zeros_like(features)
    out[mask] = (rows - rows.mean(0)) / (rows.std(0).clamp_min(1e-6) * math.sqrt(features.shape[1]))
    return out


def _standardize_like(rows: Tensor, features: Tensor, mask: Tensor) -> Tensor:
    """``rows`` ``(n, d)`` standardised with the statistics :func:`_standardize` takes from ``features[mask]``."""
    if mask.sum() < 2:
        return rows
    reference = features[mask]
    return (rows - reference.mean(0)) / (reference.std(0).clamp_min(1e-6) * math.sqrt(features.shape[1]))


def _gate_only(fusion: str) -> str:
    """Turning a complementarity term off keeps the gate/attention; mean stays mean."""
    return "mean" if fusion == "mean" else "attention"


def _interaction(config: ModelConfig, num_relations: int) -> Interaction:
    cls = INTERACTIONS[config.interaction]
    if cls is TuckER:
        return TuckER(config.dim, num_relations, config.relation_dim, config.core_dropout)
    if config.interaction in ("transe", "rotate"):
        return cls(config.dim, num_relations, config.margin)
    return cls(config.dim, num_relations)


def _read_old_scorer_keys(state: dict[str, Tensor], prefix: str, *_: Any) -> None:
    """Checkpoints written before the scorers had their own name keep them under ``heads.``."""
    for key in [k for k in state if k.startswith(prefix + "heads.")]:
        state[prefix + "scorers." + key.removeprefix(prefix + "heads.")] = state.pop(key)
