"""Model selection on the validation split, and early stopping: the run's, not the trainer's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mocme.evaluation.metrics import SELECTION_METRIC


@dataclass
class Selection:
    """The best validation result so far and the evaluations since it improved.

    ``state()`` is what a checkpoint carries beside the trainer's epoch (``train_state``), so a
    resumed run selects and stops exactly as the uninterrupted run would.
    """

    metric: str = SELECTION_METRIC
    patience: int = 0  # evaluations without improvement before stopping (0: never)
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_evaluations: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # validation results per evaluation

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record the validation ``metrics`` of ``epoch``; whether they are the best so far."""
        if self.metric not in metrics:
            raise KeyError(f"validation metric {self.metric!r} not among {sorted(metrics)[:6]}...")
        value = metrics[self.metric]
        self.history.append({"epoch": epoch, **metrics})
        if value > self.best_metric:
            self.best_metric, self.best_epoch, self.bad_evaluations = value, epoch, 0
            return True
        self.bad_evaluations += 1
        if self.patience and self.bad_evaluations >= self.patience:
            self.stopped_early = True
        return False

    def state(self) -> dict[str, Any]:
        """The fields a checkpoint's ``train_state`` holds (all but the metric and patience)."""
        return {
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "bad_evaluations": self.bad_evaluations,
            "stopped_early": self.stopped_early,
            "history": self.history,
        }

    def load_state(self, train_state: dict[str, Any]) -> None:
        """Take the selection fields of a checkpoint's ``train_state`` (other keys are the trainer's)."""
        self.best_metric = train_state["best_metric"]
        self.best_epoch = train_state["best_epoch"]
        self.bad_evaluations = train_state["bad_evaluations"]
        self.stopped_early = train_state["stopped_early"]
        self.history = train_state["history"]

    @property
    def best_value(self) -> float | None:
        """The best validation value, or ``None`` before any evaluation."""
        return None if math.isinf(self.best_metric) else self.best_metric
