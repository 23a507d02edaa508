"""The ``tracking`` section of a run config."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Backend = Literal["tensorboard", "mlflow"]


class TrackingConfig(BaseModel):
    """Experiment trackers that receive every epoch's record and the final metrics.

    The run directory's ``trace.jsonl`` is always written; these back ends are added to it.
    """

    model_config = ConfigDict(extra="forbid")

    backends: list[Backend] = Field(
        default_factory=list,
        description="Trackers besides trace.jsonl: tensorboard and/or mlflow (the 'tracking' extra).",
    )
    tensorboard_dir: Path | None = Field(
        None, description="TensorBoard: root folder, one sub-folder per run (default: RUN_DIR/tensorboard)."
    )
    mlflow_uri: str | None = Field(
        None, description="MLflow tracking URI (default: sqlite:///<folder holding the run directory>/mlflow.db)."
    )
    experiment: str = Field("mocme", min_length=1, description="MLflow experiment that receives the runs.")

    @field_validator("backends")
    @classmethod
    def _unique(cls, backends: list[Backend]) -> list[Backend]:
        return list(dict.fromkeys(backends))
