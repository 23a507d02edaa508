"""Runs end to end: config -> dataset -> model -> trainer -> evaluator -> run directory.

Model selection uses the validation split only; the test split is scored once, at the selected
(best-validation) checkpoint, after training ends.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from mocme.config import RunConfig
from mocme.data.kg import MultiModalKG
from mocme.data.loading import load_dataset
from mocme.errors import DataWarning, MocmeError, RunDirError
from mocme.evaluation import evaluate, flatten, rank_triples, side_metrics
from mocme.models import KGModel, build_model
from mocme.rundir import RunDirectory
from mocme.tracking import Tracking
from mocme.training.trainer import Trainer

EpochCallback = Callable[[dict[str, Any]], None]
"""Called with each epoch's trace record (losses, gradient norms, ``valid`` metrics when evaluated)."""


@dataclass
class RunResult:
    """What a finished run produced: its directory, the trained model and its final metrics."""

    directory: RunDirectory
    kg: MultiModalKG
    model: KGModel
    metrics: dict[str, Any]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MocmeError("device 'cuda' requested but no CUDA GPU is available (use --device cpu or auto)")
    return torch.device(name)


def build(config: RunConfig, kg: MultiModalKG | None = None) -> tuple[MultiModalKG, KGModel]:
    """Load the dataset (unless given) and build the model, initialised from ``config.seed``."""
    if config.threads:
        torch.set_num_threads(config.threads)
    kg = kg if kg is not None else load_dataset(config.dataset)
    torch.manual_seed(config.seed)
    model = build_model(config.model, kg).to(resolve_device(config.device))
    return kg, model


def default_run_dir(config: RunConfig) -> Path:
    """``runs/<dataset>-<model>-<YYYYmmdd-HHMMSS>``."""
    dataset = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(config.dataset.name).name).strip("-") or "dataset"
    return Path("runs") / f"{dataset}-{config.model.name}-{datetime.now():%Y%m%d-%H%M%S}"


def train(
    config: RunConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    kg: MultiModalKG | None = None,
    progress: bool = False,
    callbacks: Sequence[EpochCallback] = (),
) -> RunResult:
    """Train a fresh run into ``out`` (a new directory), select on validation, score test once.

    ``callbacks`` receive every epoch's trace record after it is written (trackers, pruners); an
    exception raised by one stops training with the run directory resumable. The trackers of
    ``config.tracking`` receive the same records, plus the config and the final metrics.
    """
    config = config or RunConfig()
    directory = RunDirectory(out or default_run_dir(config))
    tracking = Tracking.for_run(config, directory)  # a missing optional package fails before any write
    kg, model = build(config, kg)  # load before creating the directory: bad input leaves nothing behind
    directory.create(config, overwrite=overwrite)
    trainer = _trainer(config, kg, model, directory, progress, [tracking, *callbacks])
    return _finish(config, kg, model, trainer, directory, progress, tracking)


def resume(
    run_dir: str | os.PathLike[str],
    *,
    kg: MultiModalKG | None = None,
    progress: bool = False,
    callbacks: Sequence[EpochCallback] = (),
) -> RunResult:
    """Continue a run from ``checkpoints/last.pt``; ends exactly as an uninterrupted run would."""
    directory = RunDirectory(run_dir)
    config = directory.load_config()
    directory.remove_stale_temp_files()  # partial writes of the killed process; never checkpoints
    tracking = Tracking.for_run(config, directory)
    kg, model = build(config, kg)
    trainer = _trainer(config, kg, model, directory, progress, [tracking, *callbacks])
    if directory.has_checkpoint("last"):
        trainer.load_state_dict(directory.load_checkpoint("last", model.device))
    directory.truncate_trace(trainer.state.epoch)
    return _finish(config, kg, model, trainer, directory, progress, tracking)


def load_run(
    run_dir: str | os.PathLike[str], checkpoint: str = "best", *, kg: MultiModalKG | None = None
) -> tuple[RunConfig, MultiModalKG, KGModel]:
    """The config, dataset and model of a run, with the weights of ``checkpoint`` (best or last)."""
    directory = RunDirectory(run_dir)
    config = directory.load_config()
    kg, model = build(config, kg)
    name = checkpoint if directory.has_checkpoint(checkpoint) else "last"
    state = directory.load_checkpoint(name, model.device)
    model.load_state_dict(state["model"])
    model.eval()
    return config, kg, model


def evaluate_run(
    run_dir: str | os.PathLike[str], split: str = "valid", checkpoint: str = "best", progress: bool = False
) -> dict[str, Any]:
    """Metrics of a run's checkpoint on a split (the same numbers the run itself reported)."""
    config, kg, model = load_run(run_dir, checkpoint)
    return _evaluate(config, kg, model, split, progress)


# -- internals -------------------------------------------------------------------------------------
def _trainer(
    config: RunConfig,
    kg: MultiModalKG,
    model: KGModel,
    directory: RunDirectory,
    progress: bool,
    callbacks: Sequence[EpochCallback] = (),
) -> Trainer:
    def validate(model: KGModel, epoch: int) -> dict[str, float]:
        ranks = rank_triples(
            model,
            kg,
            kg.valid,
            filtered=config.evaluation.filtered,
            memory_mb=config.evaluation.memory_mb,
            max_batch=config.evaluation.max_batch,
            progress=progress,
            description=f"validating (epoch {epoch})",
        )
        return flatten(side_metrics(ranks.optimistic, ranks.pessimistic, ranks.is_head, config.evaluation.ks))

    def trace(record: dict[str, Any]) -> None:
        directory.append_trace(record)
        for callback in callbacks:
            callback(record)

    if len(kg.valid) == 0:
        warnings.warn(
            f"{kg.name}: the validation split is empty; the last epoch is selected", DataWarning, stacklevel=2
        )
    return Trainer(
        model,
        kg,
        config.training,
        seed=config.seed,
        validate=validate if len(kg.valid) else None,
        checkpoint=directory.save_checkpoint,
        trace=trace,
        progress=progress,
    )


def _finish(
    config: RunConfig,
    kg: MultiModalKG,
    model: KGModel,
    trainer: Trainer,
    directory: RunDirectory,
    progress: bool,
    tracking: Tracking,
) -> RunResult:
    with tracking.session(config, resumed_at=trainer.state.epoch):
        metrics = _fit(config, kg, model, trainer, directory, progress)
        tracking.finish(metrics)
    return RunResult(directory, kg, model, metrics)


def _fit(
    config: RunConfig, kg: MultiModalKG, model: KGModel, trainer: Trainer, directory: RunDirectory, progress: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    state = trainer.fit()
    selected = "best" if directory.has_checkpoint("best") else "last"
    if not directory.has_checkpoint(selected):
        raise RunDirError(f"{directory.path}: training produced no checkpoint")
    model.load_state_dict(directory.load_checkpoint(selected, model.device)["model"])
    metrics: dict[str, Any] = {
        "dataset": kg.name,
        "model": config.model.name,
        "modalities": ["structure", *kg.modalities],
        "seed": config.seed,
        "selected_checkpoint": selected,
        "selected_epoch": state.best_epoch if selected == "best" else state.epoch,
        "selection_metric": f"valid.{config.training.metric}",
        "best_valid_metric": None if math.isinf(state.best_metric) else state.best_metric,
        "epochs_trained": state.epoch,
        "stopped_early": state.stopped_early,
        "train_seconds_this_session": round(time.perf_counter() - started, 2),
    }
    for split in ("valid", "test"):
        if len(kg.split(split)):
            metrics[split] = _evaluate(config, kg, model, split, progress)
    directory.write_metrics(metrics)
    return metrics


def _evaluate(config: RunConfig, kg: MultiModalKG, model: KGModel, split: str, progress: bool) -> dict[str, Any]:
    return evaluate(
        model,
        kg,
        split,
        filtered=config.evaluation.filtered,
        ks=config.evaluation.ks,
        memory_mb=config.evaluation.memory_mb,
        max_batch=config.evaluation.max_batch,
        progress=progress,
    )
