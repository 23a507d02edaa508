"""The set of trackers one run feeds (the interface of one is :class:`~mocme.tracking.tracker.Tracker`).

A tracker sees plain values only: parameter and tag strings, metric floats keyed by dotted names
(``loss``, ``losses.joint``, ``valid.both.realistic.inverse_harmonic_mean_rank``), and the epoch as
the step. :class:`Tracking` turns the pipeline's records into those values and hands them to every
configured back end; the pipeline calls it as an epoch callback and around the whole run.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mocme.evaluation.metrics import flatten
from mocme.tracking.backends import BACKENDS
from mocme.tracking.tracker import Status, Tracker

if TYPE_CHECKING:
    from mocme.config import RunConfig
    from mocme.rundir import RunDirectory

# per-group metrics stay in metrics.json only
BREAKDOWNS = ("by_relation_category", "by_modality", "by_seen", "by_degree")


class TrackingWarning(UserWarning):
    """A tracking back end failed; the run went on without it."""


class Tracking:
    """The trackers of one run: an epoch callback for the pipeline plus start and end hooks.

    Constructing one imports the optional packages its back ends need (a missing one is a
    one-line error naming the ``tracking`` extra) but writes nothing.
    """

    def __init__(self, trackers: Sequence[Tracker] = ()):
        self.trackers = list(trackers)
        self._step = 0

    @classmethod
    def for_run(cls, config: RunConfig, directory: RunDirectory) -> Tracking:
        """The trackers ``config.tracking`` asks for, writing beside ``directory``."""
        return cls([BACKENDS[name](config.tracking, directory) for name in config.tracking.backends])

    @contextlib.contextmanager
    def session(self, config: RunConfig, resumed_at: int = 0) -> Iterator[Tracking]:
        """Start every tracker; end each as finished, failed (an exception) or killed (an interrupt)."""
        params = config_params(config)
        status: Status = "failed"
        try:
            self._each("start", lambda tracker: tracker.start(params, resumed_at))
            self._step = resumed_at
            yield self
            status = "finished"
        except (KeyboardInterrupt, SystemExit):
            status = "killed"
            raise
        finally:
            self._each("close", lambda tracker: tracker.close(status))

    def _each(self, what: str, call: Callable[[Tracker], None]) -> None:
        """``call`` every tracker; one that fails is dropped with a warning, and the run goes on (a
        full disk or an unreachable tracking server must not cost the training)."""
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as err:
                self.trackers.remove(tracker)
                if what != "close":  # a half-started back end too (an MLflow run left RUNNING, a writer thread)
                    with contextlib.suppress(Exception):
                        tracker.close("failed")
                message = f"tracking: {type(tracker).__name__} failed to {what} ({err}); the run goes on without it"
                warnings.warn(message, TrackingWarning, stacklevel=3)

    def __call__(self, record: dict[str, Any]) -> None:
        """Epoch callback: every number in the pipeline's trace record, at step ``record["epoch"]``."""
        if not self.trackers:
            return
        self._step = int(record["epoch"])
        numbers, _ = split_values(flatten({k: v for k, v in record.items() if k != "epoch"}))
        self._each("log metrics", lambda tracker: tracker.log_metrics(numbers, self._step))

    def finish(self, metrics: dict[str, Any]) -> None:
        """Log a run's final ``metrics.json`` (without the per-group breakdowns)."""
        if not self.trackers:
            return
        summary = {k: v for k, v in metrics.items() if k not in ("valid", "test")}
        for split in ("valid", "test"):
            if split in metrics:
                summary[split] = {k: v for k, v in metrics[split].items() if k not in BREAKDOWNS}
        numbers, strings = split_values(flatten(summary))
        self._each("log the summary", lambda tracker: tracker.log_summary(numbers, strings, self._step))


def config_params(config: RunConfig) -> dict[str, str]:
    """The resolved config as ``{"training.lr": "0.003", ...}`` (lists and nulls as JSON)."""
    return {key: _text(value) for key, value in flatten(config.model_dump(mode="json")).items()}


def split_values(flat: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Finite numbers (booleans as 0/1) apart from everything else, which becomes text."""
    numbers: dict[str, float] = {}
    strings: dict[str, str] = {}
    for key, value in flat.items():
        if isinstance(value, bool | int | float) and math.isfinite(value):
            numbers[key] = float(value)
        elif isinstance(value, float):
            continue  # NaN or infinite: nothing to plot (e.g. the metric of an empty split)
        else:
            strings[key] = _text(value)
    return numbers, strings


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
