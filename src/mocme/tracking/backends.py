"""TensorBoard and MLflow trackers (the ``tracking`` extra), each opened lazily for one run.

- TensorBoard (``torch.utils.tensorboard``): event files in ``RUN_DIR/tensorboard`` (or
  ``tracking.tensorboard_dir/<parent folder>/<run name>``, so that two studies' ``trial-0000``
  differ); metric ``a.b.c`` becomes the tag ``a/b/c``; the final metrics are tagged ``final/...``;
  the config and the run's description are text summaries. A resumed run drops the events of the
  epochs it repeats.
- MLflow (a ``MlflowClient``, no global state): one MLflow run per run directory, in experiment
  ``tracking.experiment`` of ``tracking.mlflow_uri`` (default: an SQLite file beside the run
  directory); the config as parameters, epoch metrics by step, the final metrics as ``final.*``
  and the description as tags. The MLflow run id is kept in ``RUN_DIR/tracking.json`` so that a
  resumed run continues the same MLflow run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mocme.config import TrackingConfig
from mocme.extras import require
from mocme.io import write_json_atomic
from mocme.rundir import RunDirectory
from mocme.tracking.tracker import Status, Tracker
from mocme.version import package_version

MLFLOW_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


class TensorBoardTracker:
    """Scalars and text summaries in TensorBoard event files."""

    def __init__(self, config: TrackingConfig, directory: RunDirectory):
        self._tensorboard = require("torch.utils.tensorboard", extra="tracking")
        root = config.tensorboard_dir
        run = directory.path.resolve()
        self.log_dir = run / "tensorboard" if root is None else Path(root) / run.parent.name / run.name
        self._writer: Any = None

    def start(self, params: dict[str, str], resumed_at: int) -> None:
        purge = resumed_at + 1 if resumed_at else None  # drop the events of the epochs repeated after a resume
        self._writer = self._tensorboard.SummaryWriter(str(self.log_dir), purge_step=purge)
        if not resumed_at:
            self._writer.add_text("config", _markdown(params), 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key.replace(".", "/"), value, step)

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar("final/" + key.replace(".", "/"), value, step)
        self._writer.add_text("summary", _markdown(tags), step)

    def close(self, status: Status) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MlflowTracker:
    """Parameters, metrics and tags of one MLflow run, through ``MlflowClient``."""

    def __init__(self, config: TrackingConfig, directory: RunDirectory):
        require("mlflow", extra="tracking")
        self.directory = directory
        self.uri = config.mlflow_uri
        self.experiment = config.experiment
        self.run_id: str | None = None
        self._client: Any = None

    @property
    def state_path(self) -> Path:
        return self.directory.path / "tracking.json"

    def start(self, params: dict[str, str], resumed_at: int) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = self.uri or default_mlflow_uri(self.directory)
        self._client = MlflowClient(uri)
        previous = self._previous_run(uri)
        if previous is not None:
            self.run_id = previous
            self._client.update_run(previous, status="RUNNING")
            return
        tags = {"mocme.run_dir": str(self.directory.path.resolve()), "mocme.version": package_version()}
        run = self._client.create_run(self._experiment_id(), run_name=self.directory.path.name, tags=tags)
        self.run_id = run.info.run_id
        write_json_atomic(self.state_path, {"mlflow": {"tracking_uri": uri, "run_id": self.run_id}})
        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow accepts at most 100 parameters per batch
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, value, now, step) for key, value in metrics.items()]
        for start in range(0, len(items), 1000):  # and at most 1000 metrics
            self._client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def log_summary(self, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
        from mlflow.entities import RunTag

        self.log_metrics({f"final.{key}": value for key, value in metrics.items()}, step)
        items = [RunTag(key, value) for key, value in tags.items()]
        for start in range(0, len(items), 100):
            self._client.log_batch(self.run_id, tags=items[start : start + 100])

    def close(self, status: Status) -> None:
        if self.run_id is not None:
            self._client.set_terminated(self.run_id, MLFLOW_STATUS[status])

    def _previous_run(self, uri: str) -> str | None:
        """The MLflow run this run directory already logged to (when resuming), if any."""
        if not self.state_path.exists():
            return None
        state = json.loads(self.state_path.read_text(encoding="utf-8")).get("mlflow", {})
        return state.get("run_id") if state.get("tracking_uri") == uri else None

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self._client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return self._client.create_experiment(self.experiment)
        except MlflowException:  # created meanwhile by a concurrent run
            return self._client.get_experiment_by_name(self.experiment).experiment_id


def default_mlflow_uri(directory: RunDirectory) -> str:
    """``sqlite:///<absolute folder holding the run directory>/mlflow.db``: runs side by side share it."""
    return "sqlite:///" + (directory.path.resolve().parent / "mlflow.db").as_posix()


def _markdown(values: dict[str, str]) -> str:
    rows = "\n".join(f"| {key} | {str(value).replace('|', '/')} |" for key, value in values.items())
    return f"| key | value |\n|---|---|\n{rows}"


BACKENDS: dict[str, Callable[[TrackingConfig, RunDirectory], Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
}
