"""A hyperparameter search: an Optuna study whose trials are normal runs.

The study directory holds everything::

    runs/my-search/
      study.db            the Optuna study (SQLite): run the same command again to add trials
      trial-0000/         one normal run directory per trial (config.yaml, trace.jsonl, ...)
      trial-0001/
      best.yaml           the best trial's config: a normal run config ('mocme train best.yaml')

Trials are proposed by TPE and maximise the validation metric the runs select on
(``training.metric``, MRR by default); with pruning, a trial whose validation value falls below the
median of earlier trials at the same epoch is stopped there. The test split plays no part.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocme.config import RunConfig, dump_config, read_config, validate_config
from mocme.errors import ConfigError, MocmeError, NumericalError
from mocme.extras import require
from mocme.hpo.space import Dimension, apply, parse_search
from mocme.io import write_text_atomic
from mocme.rundir import RunDirectory

PathLike = str | os.PathLike[str]
SIGNATURE = "mocme.search"  # study attribute: the config and space a study was started with


@dataclass
class TrialRow:
    """One trial, as the summary shows it."""

    number: int
    state: str  # complete, pruned, fail or running
    value: float | None  # best validation metric of the run (its selected checkpoint)
    epochs: int | None  # epochs trained (the epoch it was pruned at, for a pruned trial)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None  # wall-clock from start to end (None while running)
    run_dir: str | None = None


@dataclass
class StudySummary:
    """What a call of :func:`run_study` leaves behind."""

    name: str
    storage: str
    directory: Path
    metric: str
    trials: list[TrialRow]
    best: TrialRow | None
    best_config: Path | None
    added: int  # trials this call ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.name,
            "storage": self.storage,
            "directory": str(self.directory),
            "metric": f"valid.{self.metric}",
            "best": self.best.__dict__ if self.best else None,
            "best_config": str(self.best_config) if self.best_config else None,
            "added": self.added,
            "trials": [row.__dict__ for row in self.trials],
        }


class PruneOnValidation:
    """Epoch callback: report each validation value to the trial; stop the run when Optuna says so.

    Nothing is pruned at ``last_epoch``: the run is complete by then and its result counts.
    """

    def __init__(self, trial: Any, metric: str, last_epoch: int):
        self.trial, self.metric, self.last_epoch = trial, metric, last_epoch

    def __call__(self, record: dict[str, Any]) -> None:
        if "valid" not in record:
            return
        self.trial.report(record["valid"][self.metric], step=record["epoch"])
        if record["epoch"] < self.last_epoch and self.trial.should_prune():
            optuna = require("optuna", extra="hpo")
            raise optuna.TrialPruned(f"pruned after epoch {record['epoch']}")


def run_study(
    config: PathLike,
    out: PathLike | None = None,
    *,
    trials: int,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: Sequence[str] = (),
    timeout: float | None = None,
    startup_trials: int = 5,
    pruning: bool = True,
    seed: int | None = None,
    progress: bool = False,
    on_trial: Callable[[TrialRow], None] | None = None,
) -> StudySummary:
    """Add ``trials`` trials to the study of ``config`` (created, or continued when it exists).

    Args:
        config: a YAML run config with a ``search`` section (see :mod:`mocme.hpo.space`).
        out: the study directory (default: ``runs/<config name>-hpo``).
        storage: an SQLAlchemy URL or an SQLite file path (default: ``<out>/study.db``).
        study_name: the study's name in the storage (default: the config file's name).
        overrides: ``key.path=value`` changes to the run config, as ``--set`` gives them.
        timeout: stop starting trials after this many seconds.
        startup_trials: random trials before TPE models the results, and trials before pruning starts.
        pruning: stop unpromising trials early (median rule on the validation metric).
        seed: the sampler's seed (default: the config's ``seed``); training uses the config's.
        progress: show each trial's progress bars.
        on_trial: called with each trial's row as it ends.
    """
    optuna = require("optuna", extra="hpo")
    data, source, lines = read_config(config, overrides)
    if "search" not in data:
        raise ConfigError(f"{source}: no 'search' section: map dotted config keys to {{type, low, high, ...}}")
    raw_search = data.pop("search")
    base = validate_config(data, source, lines)
    space = parse_search(raw_search, data, source, lines)
    searched = sorted(o.partition("=")[0].strip() for o in overrides if o.partition("=")[0].strip() in space)
    if searched:  # every trial would replace the override with its own value
        raise ConfigError(f"--set {searched[0]}: the study searches this key; change its range in 'search' instead")
    directory = Path(out) if out is not None else Path("runs") / f"{Path(config).stem}-hpo"
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    url = _storage_url(storage, directory)
    name = study_name or Path(config).stem
    try:
        study = _open_study(optuna, url, name, base, space, startup_trials, pruning)
    except BaseException:
        if created and not any(directory.iterdir()):  # leave no empty study folder behind
            directory.rmdir()
        raise
    study.sampler = optuna.samplers.TPESampler(
        n_startup_trials=startup_trials, seed=((base.seed if seed is None else seed) + len(study.trials)) % 2**32
    )

    def objective(trial: Any) -> float:
        values = {key: dimension.suggest(trial, key) for key, dimension in space.items()}
        run_config = validate_config(apply(data, values), source, lines)
        return _run_trial(trial, run_config, directory, pruning, progress)

    def report(study: Any, trial: Any) -> None:
        if on_trial is not None:
            on_trial(_row(trial, directory))

    before = len(study.trials)
    study.optimize(objective, n_trials=trials, timeout=timeout, catch=(NumericalError,), callbacks=[report])
    rows = [_row(t, directory) for t in study.trials]
    complete = [r for r in rows if r.state == "complete" and r.value is not None]
    best = max(complete, key=lambda r: r.value) if complete else None
    best_config = None
    if best is not None and best.run_dir is not None:
        best_config = directory / "best.yaml"
        write_text_atomic(best_config, dump_config(RunDirectory(best.run_dir).load_config()))
    return StudySummary(name, url, directory, base.training.metric, rows, best, best_config, len(rows) - before)


def _run_trial(trial: Any, config: RunConfig, directory: Path, pruning: bool, progress: bool) -> float:
    """Train one trial's run; its value is the run's best validation metric."""
    from mocme import pipeline

    run_dir = directory / f"trial-{trial.number:04d}"
    if run_dir.exists():
        raise MocmeError(f"{run_dir}: exists but is no trial of this study (use another study directory)")
    trial.set_user_attr("run_dir", run_dir.name)  # in the study directory, wherever the command runs from
    callbacks = [PruneOnValidation(trial, config.training.metric, config.training.epochs)] if pruning else []
    result = pipeline.train(config, run_dir, progress=progress, callbacks=callbacks)
    trial.set_user_attr("epochs", result.metrics["epochs_trained"])
    value = result.metrics["best_valid_metric"]
    if value is None or not math.isfinite(value):
        raise MocmeError(f"{run_dir}: no validation result to optimise (is the validation split empty?)")
    return float(value)


def _open_study(
    optuna: Any, url: str, name: str, base: RunConfig, space: dict[str, Dimension], startup: int, pruning: bool
):
    """Create the study, or load it after checking that it searches the same config and space."""
    pruner = optuna.pruners.MedianPruner(n_startup_trials=startup) if pruning else optuna.pruners.NopPruner()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable in practice
            storage = optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
        study = optuna.create_study(
            storage=storage, study_name=name, direction="maximize", pruner=pruner, load_if_exists=True
        )
    except Exception as err:  # SQLAlchemy raises many types: no driver, not a database, cannot open
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise MocmeError(f"{url}: cannot open the study storage ({first})") from None
    signature = json.dumps(
        {"config": base.model_dump(mode="json"), "search": {k: d.model_dump() for k, d in space.items()}},
        sort_keys=True,
    )
    started_with = study.user_attrs.get(SIGNATURE)
    if started_with is None:
        study.set_user_attr(SIGNATURE, signature)
    elif started_with != signature:
        raise ConfigError(
            f"{url}: study {name!r} was started with a different config or search space "
            "(give another --out, --storage or --study-name for a new study)"
        )
    return study


def _storage_url(storage: str | None, directory: Path) -> str:
    if storage is None:
        return "sqlite:///" + (directory / "study.db").resolve().as_posix()
    if "://" in storage:
        return storage
    return "sqlite:///" + Path(storage).resolve().as_posix()


def _row(trial: Any, directory: Path) -> TrialRow:
    """A trial as a row; its run directory is in the study ``directory`` (the name is what counts, also
    for studies that stored a path relative to where their command ran)."""
    epochs = trial.user_attrs.get("epochs")
    if epochs is None and trial.intermediate_values:
        epochs = max(trial.intermediate_values)
    return TrialRow(
        number=trial.number,
        state=trial.state.name.lower(),
        value=trial.value,
        epochs=epochs,
        params=dict(trial.params),
        run_dir=str(directory / Path(trial.user_attrs["run_dir"]).name) if "run_dir" in trial.user_attrs else None,
        seconds=(
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_start and trial.datetime_complete
            else None
        ),
    )
