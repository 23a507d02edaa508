"""Filtered ranking evaluation: ranks, metrics and breakdowns."""

from mocme.evaluation.categories import CATEGORIES, relation_categories
from mocme.evaluation.evaluator import (
    DEGREE_GROUPS,
    SEEN_GROUPS,
    Evaluator,
    Ranks,
    ScoresAllEntities,
    Sharding,
    degree_breakdown,
    evaluate,
    rank_triples,
    seen_breakdown,
    summarize,
)
from mocme.evaluation.metrics import (
    RANK_TYPES,
    SELECTION_METRIC,
    SIDES,
    flatten,
    rank_metrics,
    short_name,
    side_metrics,
)
from mocme.evaluation.popularity import RelationPopularity
from mocme.evaluation.ranking import filtered_ranks

__all__ = [
    "CATEGORIES",
    "DEGREE_GROUPS",
    "RANK_TYPES",
    "SEEN_GROUPS",
    "SELECTION_METRIC",
    "SIDES",
    "Evaluator",
    "Ranks",
    "RelationPopularity",
    "ScoresAllEntities",
    "Sharding",
    "degree_breakdown",
    "evaluate",
    "filtered_ranks",
    "flatten",
    "rank_metrics",
    "rank_triples",
    "relation_categories",
    "seen_breakdown",
    "short_name",
    "side_metrics",
    "summarize",
]
