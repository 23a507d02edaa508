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
from mocme.evaluation.evaluator import Ranks, summarize
from mocme.models import KGModel, build_model
from mocme.rundir import RunDirectory
from mocme.tracking import Tracking
from mocme.training import distributed
from mocme.training.distributed import Distributed
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


def build(
    config: RunConfig, kg: MultiModalKG | None = None, device: torch.device | None = None
) -> tuple[MultiModalKG, KGModel]:
    """Load the dataset (unless given) and build the model, initialised from ``config.seed``.

    The model goes to ``device`` (default: ``config.device`` resolved).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    kg = kg if kg is not None else load_dataset(config.dataset)
    torch.manual_seed(config.seed)
    model = build_model(config.model, kg).to(device or resolve_device(config.device))
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
    distributed: bool = False,
) -> RunResult:
    """Train a fresh run into ``out`` (a new directory), select on validation, score test once.

    ``callbacks`` receive every epoch's trace record after it is written (trackers, pruners); an
    exception raised by one stops training with the run directory resumable. The trackers of
    ``config.tracking`` receive the same records, plus the config and the final metrics.

    ``distributed``: this process is one of several started by ``torchrun`` (data-parallel, see
    :mod:`mocme.training.distributed`); rank 0 writes the run directory.
    """
    config = config or RunConfig()
    group, device = _join(config) if distributed else (None, None)
    try:
        path = out or default_run_dir(config)
        directory = _directory(group.broadcast(str(path)) if group else path, group)
        tracking = Tracking.for_run(config, directory) if _main(group) else Tracking()
        kg, model = build(config, kg, device)  # load before creating the directory: bad input leaves nothing behind
        with directory.lock():
            directory.create(config, overwrite=overwrite)
            trainer = _trainer(config, kg, model, directory, progress and _main(group), [tracking, *callbacks], group)
            return _finish(config, kg, model, trainer, directory, progress and _main(group), tracking, group)
    finally:
        if group is not None:
            _leave()


def resume(
    run_dir: str | os.PathLike[str],
    *,
    kg: MultiModalKG | None = None,
    progress: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    distributed: bool = False,
) -> RunResult:
    """Continue a run from ``checkpoints/last.pt``; ends exactly as an uninterrupted run would."""
    config = RunDirectory(run_dir).load_config()
    group, device = _join(config) if distributed else (None, None)
    try:
        directory = _directory(run_dir, group)
        with directory.lock():
            directory.remove_stale_temp_files()  # partial writes of the killed process; never checkpoints
            tracking = Tracking.for_run(config, directory) if _main(group) else Tracking()
            kg, model = build(config, kg, device)
            trainer = _trainer(config, kg, model, directory, progress and _main(group), [tracking, *callbacks], group)
            if directory.has_checkpoint("last"):
                trainer.load_state_dict(directory.load_checkpoint("last", model.device))
            directory.truncate_trace(trainer.state.epoch)
            return _finish(config, kg, model, trainer, directory, progress and _main(group), tracking, group)
    finally:
        if group is not None:
            _leave()


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


def evaluate_heads(
    run_dir: str | os.PathLike[str], split: str = "valid", checkpoint: str = "best", progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Metrics of each MoCME scoring head alone (one per modality, and ``joint``), then ``decision``.

    ``decision`` is the model's own joint decision (what ``evaluate_run`` reports): it shows how
    much each modality's head contributes and whether the combination beats its best head.
    """
    from mocme.models.mocme import MoCME, SingleHead

    config, kg, model = load_run(run_dir, checkpoint)
    if not isinstance(model, MoCME):
        raise RunDirError(f"{run_dir}: per-head evaluation needs a MoCME run, this one is {config.model.name}")
    out = {
        head: _evaluate(config, kg, SingleHead(model, head), split, progress)  # type: ignore[arg-type]
        for head in model.head_names
    }
    out["decision"] = _evaluate(config, kg, model, split, progress)
    return out


# -- internals -------------------------------------------------------------------------------------
def _join(config: RunConfig) -> tuple[Distributed, torch.device]:
    return distributed.start(resolve_device(config.device), config.threads)


def _leave() -> None:
    distributed.stop()


def _main(group: Distributed | None) -> bool:
    return group is None or group.is_main


def _directory(path: str | os.PathLike[str], group: Distributed | None) -> RunDirectory:
    """The run directory; processes other than rank 0 only read it."""
    return RunDirectory(path) if _main(group) else distributed.WorkerRunDirectory(path)


def _rank(
    config: RunConfig,
    kg: MultiModalKG,
    model: KGModel,
    triples: torch.Tensor,
    progress: bool,
    description: str,
    group: Distributed | None,
) -> Ranks:
    """Filtered ranks of ``triples``; with several processes each ranks a shard and all gather them."""
    ranks = rank_triples(
        model,
        kg,
        triples if group is None else group.shard(triples),
        filtered=config.evaluation.filtered,
        memory_mb=config.evaluation.memory_mb,
        max_batch=config.evaluation.max_batch,
        progress=progress,
        description=description,
    )
    return ranks if group is None else group.gather_ranks(ranks, model.device)


def _trainer(
    config: RunConfig,
    kg: MultiModalKG,
    model: KGModel,
    directory: RunDirectory,
    progress: bool,
    callbacks: Sequence[EpochCallback] = (),
    group: Distributed | None = None,
) -> Trainer:
    def validate(model: KGModel, epoch: int) -> dict[str, float]:
        ranks = _rank(config, kg, model, kg.valid, progress, f"validating (epoch {epoch})", group)
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
        distributed=group,
    )


def _finish(
    config: RunConfig,
    kg: MultiModalKG,
    model: KGModel,
    trainer: Trainer,
    directory: RunDirectory,
    progress: bool,
    tracking: Tracking,
    group: Distributed | None = None,
) -> RunResult:
    with tracking.session(config, resumed_at=trainer.state.epoch):
        metrics = _fit(config, kg, model, trainer, directory, progress, group)
        tracking.finish(metrics)
    return RunResult(directory, kg, model, metrics)


def _fit(
    config: RunConfig,
    kg: MultiModalKG,
    model: KGModel,
    trainer: Trainer,
    directory: RunDirectory,
    progress: bool,
    group: Distributed | None = None,
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
            metrics[split] = _evaluate(config, kg, model, split, progress, group)
    directory.write_metrics(metrics)
    return metrics


def _evaluate(
    config: RunConfig, kg: MultiModalKG, model: KGModel, split: str, progress: bool, group: Distributed | None = None
) -> dict[str, Any]:
    if group is not None:
        ranks = _rank(config, kg, model, kg.split(split), progress, f"evaluating {split}", group)
        return {"split": split, "filtered": config.evaluation.filtered, **summarize(ranks, kg, config.evaluation.ks)}
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
