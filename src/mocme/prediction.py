"""Ranked answers of one query, with an explanation of which modality drove them.

Every model explains itself through its scorers: the probability ``σ(s_h)`` each scorer gives
a candidate (one scorer per modality plus the unified one for MoCME). MoCME adds the weights that
built the query entity's representation: ``α`` over its modalities (in the query relation's
context), each view's weight in the unified embedding ``e*`` (with ``unified: anchored``
structure enters whole, weight 1, and the others are added with weight ``α``) and ``β`` over each
modality's expert views; and, for bilinear interactions, each candidate's unified score split
over the candidate's modalities, ``s(q, e*_c) = Σ_m c_m s(q, e^m_c)``.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import torch

from mocme.data.kg import MultiModalKG
from mocme.data.vocab import Vocabulary
from mocme.errors import DataWarning, MocmeError
from mocme.models import KGModel, MoCME
from mocme.models.fusion import view_coefficients

Direction = Literal["tail", "head"]


@dataclass
class Candidate:
    """One ranked answer."""

    rank: float  # realistic rank (a tie shares the mean position)
    entity: str
    score: float
    known: str | None  # "train" or "valid/test" when the triple is already known, else None
    scorers: dict[str, float | None] = field(default_factory=dict)  # σ(s_h); None where a scorer is undefined
    # MoCME, bilinear interactions: the unified score split over the candidate's modalities (they sum
    # to the unified scorer's logit); None where the candidate lacks the modality
    contributions: dict[str, float | None] = field(default_factory=dict)
    # the modality that drove the answer: with the unified decision, the largest contribution to its
    # score; where modality scorers decide too (or the interaction is a distance, which does not split
    # over views), the modality scorer with the largest probability
    driver: str | None = None


@dataclass
class Prediction:
    """The answers to ``(entity, relation, ?)`` (or ``(?, relation, entity)``)."""

    entity: str
    relation: str
    direction: Direction
    candidates: list[Candidate]
    modality_weights: dict[str, float | None] | None = None  # α of the query entity; None: it lacks the modality
    # the weight of each of the query entity's views in its e* (anchored: structure 1, the others α)
    representation_weights: dict[str, float | None] | None = None
    view_weights: dict[str, list[float]] | None = None  # β of the query entity per modality (MoCME)
    target: Candidate | None = None  # the asked-about answer, when one was given

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lookup(vocabulary: Vocabulary, name: str, kind: str) -> int:
    """Id of ``name``; an unknown name is an error that suggests close matches."""
    if name in vocabulary:
        return vocabulary.id(name)
    close = difflib.get_close_matches(name, vocabulary.names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise MocmeError(f"unknown {kind} {name!r}{hint}")


def check_direction(direction: str) -> None:
    """A one-line error unless ``direction`` is ``tail`` or ``head``."""
    if direction not in get_args(Direction):
        raise MocmeError(f"direction must be 'tail' or 'head', got {direction!r}")


def predict(
    model: KGModel,
    kg: MultiModalKG,
    entity: str,
    relation: str,
    *,
    direction: Direction = "tail",
    top: int = 10,
    exclude_known: bool = False,
    explain: bool = False,
    target: str | None = None,
) -> Prediction:
    """Top-``top`` answers of ``(entity, relation, ?)`` (``direction="tail"``) or ``(?, relation, entity)``.

    ``exclude_known`` drops answers already in the graph (train ∪ valid ∪ test). With ``target``,
    that answer's rank is reported too (realistic rank, against the same candidate list). The model
    scores in eval mode and is handed back in the mode it came in.
    """
    check_direction(direction)
    was_training = model.training
    model.eval()
    try:
        return _predict(model, kg, entity, relation, direction, top, exclude_known, explain, target)
    finally:
        model.train(was_training)


@torch.inference_mode()
def _predict(
    model: KGModel,
    kg: MultiModalKG,
    entity: str,
    relation: str,
    direction: Direction,
    top: int,
    exclude_known: bool,
    explain: bool,
    target: str | None,
) -> Prediction:
    """:func:`predict` of a model in eval mode."""
    e = lookup(kg.entities, entity, "entity")
    r = lookup(kg.relations, relation, "relation")
    in_training = bool((kg.train[:, 0] == e).any() or (kg.train[:, 2] == e).any())
    if not in_training and not any(bool(m.mask[e]) for m in kg.modalities.values()):
        warnings.warn(
            f"{entity} is in no training triple and has no features: its representation was never trained, "
            "so these answers say nothing about it",
            DataWarning,
            stacklevel=3,
        )
    query = torch.tensor([[e, r if direction == "tail" else r + kg.num_relations]], device=model.device)
    with model.precomputed():
        scorers = model.scorer_scores(query)
        scores = model.combine(scorers)[0].float().cpu()
        weights = _query_weights(model, query) if explain and isinstance(model, MoCME) else None
        parts = model.joint_contributions(query) if explain and isinstance(model, MoCME) else None
        parts = parts[0].float().cpu() if parts is not None else None
        unified_decides = isinstance(model, MoCME) and set(model.deciding(scorers)) == {"joint"}
    known_any = kg.filter_index.answers_of(int(query[0, 0]), int(query[0, 1]))
    known_train = kg.train_index.answers_of(int(query[0, 0]), int(query[0, 1]))
    ranked_scores = scores.clone()
    if exclude_known:
        ranked_scores[known_any] = -torch.inf
    order = torch.argsort(ranked_scores, descending=True, stable=True)[: max(top, 0)]
    if exclude_known:
        order = order[torch.isfinite(ranked_scores[order])]
    probabilities = {name: torch.sigmoid(h.scores[0].float()).cpu() for name, h in scorers.items()}
    defined = {
        name: (None if h.available is None else h.available.expand_as(h.scores)[0].cpu()) for name, h in scorers.items()
    }
    train_set, known_set = set(known_train.tolist()), set(known_any.tolist())

    def realistic_rank(index: int) -> float:
        """1 + the candidates above ``index`` + half of those tied with it (the evaluator's realistic rank)."""
        score = scores[index]
        greater = int((ranked_scores > score).sum())
        tied = int((ranked_scores == score).sum()) - int(ranked_scores[index] == score)  # not itself
        return 1 + greater + tied / 2

    def candidate(index: int, rank: float) -> Candidate:
        scorer_values = {
            name: (None if defined[name] is not None and not bool(defined[name][index]) else float(p[index]))
            for name, p in probabilities.items()
        }
        contributions = {}
        if parts is not None:
            values = parts[index].tolist()
            contributions = {name: None if v != v else v for name, v in zip(model.modalities, values, strict=True)}
        if not explain:
            driver = None
        elif unified_decides and contributions:
            driver = _largest(contributions)
        else:
            driver = _largest({name: p for name, p in scorer_values.items() if name != "joint"})
        return Candidate(
            rank=rank,
            entity=kg.entities.name(index),
            score=float(scores[index]),
            known="train" if index in train_set else ("valid/test" if index in known_set else None),
            scorers=scorer_values if explain else {},
            contributions=contributions,
            driver=driver,
        )

    result = Prediction(entity, relation, direction, [candidate(int(i), realistic_rank(int(i))) for i in order])
    if target is not None:
        t = lookup(kg.entities, target, "entity")
        result.target = candidate(t, realistic_rank(t))
    if weights is not None:
        result.modality_weights, result.representation_weights, result.view_weights = weights
    return result


def _query_weights(
    model: MoCME, query: torch.Tensor
) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, list[float]]]:
    """α, the views' weights in ``e*`` and β of the query entity in the query's relation context;
    ``None`` / ``[]`` where it lacks a modality."""
    encoding = model.encode(query[:, 0], query[:, 1])
    has = encoding.available[0]
    in_joint = view_coefficients(encoding.alpha, encoding.available, model.config.unified)
    names = list(enumerate(model.modalities))
    alpha = {name: float(encoding.alpha[0, m]) if has[m] else None for m, name in names}
    representation = {name: float(in_joint[0, m]) if has[m] else None for m, name in names}
    beta = {name: [float(b) for b in encoding.beta[0, m]] if has[m] else [] for m, name in names}
    return alpha, representation, beta


def _largest(values: dict[str, float | None]) -> str | None:
    """The name of the largest value, when at least two are defined."""
    defined = {name: v for name, v in values.items() if v is not None}
    return max(defined, key=lambda name: defined[name]) if len(defined) > 1 else None
