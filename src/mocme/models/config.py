"""The ``model`` section of a run config."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mocme.errors import renamed

InteractionName = Literal["tucker", "distmult", "complex", "rotate", "transe"]
ModelName = Literal["mocme", "tucker", "distmult", "complex", "rotate", "transe"]


class ModelConfig(BaseModel):
    """Which model, its size, and every MoCME switch (each one an ablation)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: ModelName = Field("mocme", description="'mocme', or a structure-only baseline named by its scoring function.")
    dim: int = Field(64, ge=2, description="Entity embedding dimension d (even for complex and rotate).")
    interaction: InteractionName = Field("tucker", description="Scoring function of every MoCME scorer.")
    relation_dim: int = Field(32, ge=1, description="TuckER: relation dimension of the core tensor.")
    margin: float = Field(6.0, description="TransE / RotatE: score = margin - distance.")
    dropout: float = Field(
        0.3,
        ge=0,
        lt=1,
        description="Dropout on the query entity's inputs and fused embeddings while training (not on candidates).",
    )
    core_dropout: float = Field(0.0, ge=0, lt=1, description="TuckER: dropout on the query vector.")
    init_scale: float | None = Field(
        None,
        gt=0,
        description="Draw the entity and relation vectors (and MoCME's feature experts' weights) from N(0, s²) "
        "(kbc uses 1e-3 with Adagrad); null: each scoring function's own initialisation.",
    )

    experts: int = Field(3, ge=1, description="MoCME: experts (views) per modality, K.")
    expert: Literal["linear", "mlp", "shared"] = Field(
        "linear",
        description="MoCME: expert type: linear (each expert its own map), mlp, or shared (one map shared by "
        "the experts plus a rank-model.expert_rank correction each; a K-th of linear's cost for wide inputs).",
    )
    expert_hidden: int = Field(0, ge=0, description="MoCME: hidden width of MLP experts (0 = dim).")
    structure_expert: Literal["same", "residual"] = Field(
        "same",
        description="MoCME: the structural modality's experts: the same kind as model.expert, or 'residual' "
        "(x + low-rank, starting as the identity: structure-only MoCME starts as its scorer's baseline).",
    )
    expert_rank: int = Field(16, ge=1, description="MoCME: rank of each residual or shared expert's correction.")
    unified: Literal["convex", "anchored"] = Field(
        "convex",
        description="MoCME: unified embedding e* = Σ α^m e^m (convex), or anchored on structure: e^s kept whole "
        "where the entity has it, plus Σ_{m≠s} α^m e^m.",
    )
    structure_dropout: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="MoCME: while training, mark structure unavailable for this share of the entities that have "
        "another modality (query and candidates), so that the other modalities learn to place an entity alone.",
    )
    fusion: Literal["complementarity", "attention", "mean"] = Field(
        "complementarity",
        description="MoCME fusion: complementarity-guided, gate/attention only (MoMoK style), or plain mean.",
    )
    intra: bool = Field(True, description="MoCME: intra-modal complementarity term in the view weights.")
    inter: bool = Field(True, description="MoCME: inter-modal complementarity term in the modality weights.")
    lambda_intra: float = Field(1.0, description="MoCME: weight of the intra-modal complementarity.")
    lambda_inter: float = Field(1.0, description="MoCME: weight of the inter-modal complementarity.")
    inter_measure: Literal["orthogonal", "cosine"] = Field(
        "orthogonal",
        description="MoCME: inter-modal complementarity of a modality: the relative norm of its part orthogonal to "
        "the others (orthogonal), or 1 - its mean cosine to them (cosine: the first reading, a no-op for M = 2).",
    )
    degree_gate: bool = Field(
        False,
        description="MoCME: add w·log(1 + training degree) to the structure modality's inter-modal logit (w learned, "
        "from 0), so the fusion can keep a well-known entity's structural embedding (on DB15K training left w near 0: "
        "no gain).",
    )
    attention_dim: int = Field(32, ge=1, description="MoCME: width of the relation query q_r and of W.")
    projection_dim: int = Field(32, ge=1, description="MoCME: width of the projection P used by inter-modal cosines.")
    modality_scorers: bool = Field(True, description="MoCME: a scorer per modality besides the unified one.")
    joint: Literal["equal", "confidence", "unified"] = Field(
        "equal",
        description="MoCME: how the scorers' probabilities combine to rank (unified: the unified scorer alone).",
    )
    unseen_structure: Literal["mask", "keep"] = Field(
        "mask",
        description="MoCME: an entity absent from the training triples has no trained structural embedding; "
        "'mask' marks structure unavailable for it (its other modalities represent it), 'keep' uses its random vector.",
    )
    diversity: float = Field(0.0, ge=0, description="MoCME: weight μ of the expert-diversity regulariser.")
    normalize_features: bool = Field(
        True,
        description="MoCME: standardise feature columns over available rows (to variance 1/d: rows of norm about 1).",
    )

    @model_validator(mode="after")
    def _complex_dimension_is_even(self) -> ModelConfig:
        scoring = self.interaction if self.name == "mocme" else self.name
        if scoring in ("complex", "rotate") and self.dim % 2:
            raise ValueError(f"model.dim must be even for {scoring} (its halves are the real and imaginary parts)")
        return self

    @model_validator(mode="after")
    def _degree_gate_needs_learned_weights(self) -> ModelConfig:
        if self.degree_gate and self.fusion == "mean":
            raise ValueError("model.degree_gate moves learned modality weights; fusion 'mean' has none")
        return self

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """``modality_heads`` (before the scorers had their own name) is read as ``modality_scorers``."""
        if not isinstance(data, dict) or "modality_heads" not in data:
            return data
        if "modality_scorers" in data:
            raise ValueError("give model.modality_scorers only (model.modality_heads is its old name)")
        warnings.warn(renamed("model.modality_heads", "model.modality_scorers"), stacklevel=2)
        return {("modality_scorers" if key == "modality_heads" else key): value for key, value in data.items()}
