"""The ``evaluation`` section of a run config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EvaluationConfig(BaseModel):
    """How ranking evaluation runs: memory bound, batch size, cut-offs."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    memory_mb: float = Field(512.0, gt=0, description="Memory for one block of scores (sets the query batch size).")
    max_batch: int = Field(512, ge=1, description="Upper bound on queries scored at once.")
    ks: list[int] = Field(default_factory=lambda: [1, 3, 10], description="Cut-offs k of Hits@k.")
    filtered: bool = Field(True, description="Filter the other known answers (train ∪ valid ∪ test).")
