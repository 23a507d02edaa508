"""What one experiment-tracking back end offers: the protocol that every tracker implements."""

from __future__ import annotations

from typing import Literal, Protocol

Status = Literal["finished", "failed", "killed"]


class Tracker(Protocol):
    """One experiment-tracking back end, for one run."""

    def start(self, params: dict[str, str], resumed_at: int) -> None:
        """Open the run; ``params`` is the flattened config; ``resumed_at`` > 0 continues after that epoch."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Record metric values at ``step`` (the epoch, 1-based)."""

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
        """Record the final metrics (selected checkpoint, validation and test) and descriptive tags."""

    def close(self, status: Status) -> None:
        """Flush and end the run; ``status`` says how it ended."""
