"""Experiment tracking: every run writes ``trace.jsonl``; TensorBoard and MLflow can be added.

Choose back ends in the run config::

    tracking:
      backends: [tensorboard, mlflow]
      mlflow_uri: sqlite:///runs/mlflow.db   # the default: mlflow.db beside the run directory
      experiment: my-study

The pipeline feeds :class:`Tracking` every epoch's trace record (as an epoch callback) and the
final metrics; back ends receive plain numbers and strings only (see :class:`Tracker`).
"""

from mocme.config import TrackingConfig
from mocme.tracking.base import Tracking, config_params, split_values
from mocme.tracking.tracker import Tracker

__all__ = ["Tracker", "Tracking", "TrackingConfig", "config_params", "split_values"]
