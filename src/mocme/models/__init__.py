"""Models: structure-only baselines and MoCME, all behind ``score`` / ``score_all``."""

from __future__ import annotations

from mocme.data.kg import MultiModalKG
from mocme.models.base import KGModel, ScorerScores
from mocme.models.config import ModelConfig
from mocme.models.interactions import INTERACTIONS, Interaction
from mocme.models.mocme import MoCME, _interaction
from mocme.models.structural import StructuralModel

MODELS = ("mocme", *INTERACTIONS)


def build_model(config: ModelConfig, kg: MultiModalKG) -> KGModel:
    """Construct the model a config names, sized for ``kg``."""
    if config.name == "mocme":
        return MoCME(kg, config)
    interaction = _interaction(config.model_copy(update={"interaction": config.name}), 2 * kg.num_relations)
    return StructuralModel(kg.num_entities, kg.num_relations, interaction, config.dropout, config.init_scale)


__all__ = [
    "INTERACTIONS",
    "MODELS",
    "Interaction",
    "KGModel",
    "MoCME",
    "ModelConfig",
    "ScorerScores",
    "StructuralModel",
    "build_model",
]
