"""The ``training`` section of a run config."""

from __future__ import annotations

import re
import warnings
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mocme.errors import renamed
from mocme.evaluation.metrics import SELECTION_METRIC

# What early stopping and model selection can maximise: MRR or Hits@K of a side and rank type.
SELECTABLE = re.compile(
    r"(both|head|tail)\.(realistic|optimistic|pessimistic)\.(inverse_harmonic_mean_rank|hits_at_[1-9]\d*)"
)

# Old names still accepted, with a deprecation message, for one release.
RENAMED_STRATEGIES = {"one_to_n": "k_vs_all"}


class EGNSConfig(BaseModel):
    """Entropy-guided negative sampling: weights ``π_i ∝ exp(H_i / τ_t) · p_i^η`` over a pool."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    selection: Literal["weight", "topk", "sample"] = Field(
        "weight", description="Weight every pool negative by π, keep the top-k by π, or sample k ∝ π."
    )
    keep: int = Field(32, ge=1, description="k for 'topk' and 'sample'.")
    temperature_start: float = Field(2.0, gt=0, description="τ right after warm-up (high: near uniform).")
    temperature_end: float = Field(0.25, gt=0, description="τ at the last epoch.")
    anneal: Literal["exponential", "linear", "cosine"] = Field("exponential", description="Shape of the τ schedule.")
    warmup_epochs: int = Field(1, ge=0, description="Epochs of uniform weights before entropy weighting starts.")
    hardness: float = Field(0.0, ge=0, description="Exponent η of the hardness factor p_i (0 = entropy only).")
    loss: Literal["bce", "softmax"] = Field(
        "bce",
        description="bce: the paper's entropy-weighted BCE (docs/method.md); softmax: the entropy-guided 1vsAll "
        "(pool 'all'), a softmax cross-entropy whose negatives weigh N·π_i with π from H(σ(s_i - s_answer)).",
    )


class TrainingConfig(BaseModel):
    """Optimisation, negatives and loss, validation schedule and early stopping."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epochs: int = Field(50, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(256, ge=1, description="Training queries per step.")
    optimizer: Literal["adam", "adamw", "adagrad"] = Field(
        "adam",
        description="Adam (weight decay added to the gradient), AdamW (decoupled weight decay), "
        "or Adagrad (kbc's choice for 1vsAll with N3).",
    )
    lr: float = Field(5e-3, gt=0, description="Learning rate.")
    module_lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate of the parameters that are not embedding vectors (MoCME's experts, gates and "
        "fusion; TuckER's core); null: training.lr. Adagrad moves every parameter by about its learning rate at "
        "first, which the embedding tables of the kbc recipe want and a shared weight matrix does not.",
    )
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (L2 for Adam and Adagrad, decoupled for AdamW).")
    schedule: Literal["none", "cosine", "step", "plateau"] = Field("none", description="Learning-rate schedule.")
    warmup_epochs: int = Field(
        0, ge=0, description="Linear learning-rate warm-up over this many epochs, step by step (not with 'plateau')."
    )
    step_size: int = Field(20, ge=1, description="'step' schedule: epochs between decays.")
    gamma: float = Field(0.5, gt=0, le=1, description="'step'/'plateau' schedule: decay factor.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this value.")

    negatives: str = Field(
        "egns",
        description="Training strategy (see 'mocme ls samplers'): egns, uniform, bernoulli, self_adversarial "
        "(sampled negatives); one_vs_all (softmax cross-entropy over every entity); k_vs_all (multi-label BCE).",
    )
    num_negatives: int = Field(64, ge=1, description="Negatives per query (the pool size M for EGNS).")
    pool: Literal["sampled", "all"] = Field("sampled", description="EGNS candidate pool: M sampled, or all entities.")
    egns: EGNSConfig = Field(default_factory=EGNSConfig)
    adversarial_temperature: float = Field(1.0, gt=0, description="Self-adversarial: π ∝ exp(α s).")
    mask_known: bool = Field(
        False,
        description="one_vs_all and EGNS's softmax form: leave the query's other known answers out of its "
        "softmax (kbc keeps them).",
    )
    k_vs_all_average: Literal["pairs", "queries"] = Field(
        "pairs",
        description="k_vs_all: divide the summed BCE by the (query, entity) pairs, or by the queries "
        "(a sum over entities per query, as LibKGE).",
    )
    regularizer: Literal["none", "n3", "dura"] = Field(
        "none",
        description="Penalty on the factors of the batch's triples: N3 (Lacroix et al., 2018) or DURA "
        "(Zhang et al., 2020); for strategies that score every entity.",
    )
    regularizer_weight: float = Field(0.0, ge=0, description="Weight λ of training.regularizer.")
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Label smoothing ε: k_vs_all targets (1 - ε)·y + ε/N; one_vs_all and EGNS with egns.loss "
        "'softmax' spread ε over the softmax's candidates; sampled and EGNS 'bce' targets 1 - ε and ε.",
    )

    memory_mb: float | None = Field(
        2048.0,
        gt=0,
        description="one_vs_all, k_vs_all and pool 'all' training: memory for the heads' (batch x entities) "
        "score blocks; larger entity sets are scored in chunks with the same losses and gradients (null: no limit).",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Training arithmetic: fp32, or bf16 autocast (mixed precision; evaluation stays fp32)."
    )
    compile: bool = Field(False, description="Compile the scoring functions with torch.compile (dynamic shapes).")

    eval_every: int = Field(5, ge=1, description="Evaluate on the validation split every N epochs.")
    patience: int = Field(4, ge=0, description="Stop after this many evaluations without improvement (0: never).")
    metric: str = Field(
        SELECTION_METRIC,
        description="Validation metric to select on (the larger the better): SIDE.RANKS.NAME, SIDE both, head "
        "or tail, RANKS realistic, optimistic or pessimistic, NAME inverse_harmonic_mean_rank or hits_at_K.",
    )

    @field_validator("metric")
    @classmethod
    def _selectable(cls, metric: str) -> str:
        if not SELECTABLE.fullmatch(metric):
            raise ValueError(
                f"training.metric {metric!r} is not SIDE.RANKS.NAME with SIDE both, head or tail, RANKS "
                "realistic, optimistic or pessimistic and NAME inverse_harmonic_mean_rank or hits_at_K "
                "(selection keeps the largest value; a mean rank cannot be selected on)"
            )
        return metric

    @field_validator("negatives")
    @classmethod
    def _renamed_strategy(cls, name: str) -> str:
        """Old names of strategies, read as their new ones (the registry's names are checked by
        :func:`mocme.config.validate_config` and :func:`mocme.training.strategies.build_strategy`)."""
        if name in RENAMED_STRATEGIES:
            new = RENAMED_STRATEGIES[name]
            warnings.warn(renamed(f"training.negatives {name!r}", repr(new)), stacklevel=2)
            name = new
        return name

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        scores_all = self.negatives in ("one_vs_all", "k_vs_all") or (self.negatives == "egns" and self.pool == "all")
        if self.regularizer != "none" and not scores_all:
            raise ValueError(
                f"training.regularizer {self.regularizer!r} needs a strategy that scores every entity "
                f"(one_vs_all, k_vs_all, or egns with pool 'all'), not {self.negatives!r}"
            )
        if self.warmup_epochs and self.schedule == "plateau":
            raise ValueError("training.warmup_epochs does not combine with schedule 'plateau'")
        sampled_subset = self.negatives == "egns" and self.egns.selection != "weight" and self.pool == "sampled"
        if sampled_subset and self.egns.keep > self.num_negatives:
            raise ValueError(f"egns.keep ({self.egns.keep}) must not exceed num_negatives ({self.num_negatives})")
        if self.negatives == "egns" and self.egns.loss == "softmax" and self.pool != "all":
            raise ValueError("training.egns.loss 'softmax' (the entropy-guided 1vsAll) needs training.pool 'all'")
        if self.negatives == "egns" and self.egns.loss == "softmax" and self.egns.selection != "weight":
            raise ValueError("training.egns.loss 'softmax' weighs every negative: use egns.selection 'weight'")
        return self
