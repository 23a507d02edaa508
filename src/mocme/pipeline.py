"""Runs end to end: config -> dataset -> model -> trainer -> evaluator -> run directory.

The functions here start, continue and read runs; each run is a :class:`~mocme.run.Run`. Model
selection uses the validation split only; the test split is scored once, at the selected
(best-validation) checkpoint, after training ends.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from mocme.config import RunConfig
from mocme.data.kg import MultiModalKG
from mocme.data.loading import with_absolute_paths
from mocme.device import resolve_device
from mocme.errors import RunDirError
from mocme.evaluation import Evaluator
from mocme.models import KGModel
from mocme.run import EpochCallback, Run, RunResult, build
from mocme.rundir import CHECKPOINTS, RunDirectory
from mocme.training import distributed as processes
from mocme.training.distributed import Distributed

__all__ = [
    "EpochCallback",
    "RunResult",
    "build",
    "default_run_dir",
    "evaluate_run",
    "evaluate_scorers",
    "load_run",
    "resolve_device",
    "resume",
    "train",
]


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
    # the saved config names its files absolutely, so the run loads from any folder
    config = config.model_copy(update={"dataset": with_absolute_paths(config.dataset)})
    with _process_group(config, distributed) as (group, device):
        path = out or default_run_dir(config)
        path = group.broadcast(str(path)) if group is not None else path
        run = Run(config, path, kg=kg, group=group, device=device, progress=progress, callbacks=callbacks)
        with run.directory.lock():
            run.directory.create(config, overwrite=overwrite, data=run.kg.identity())
            return run.train()


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
    with _process_group(config, distributed) as (group, device):
        run = Run(config, run_dir, kg=kg, group=group, device=device, progress=progress, callbacks=callbacks)
        with run.directory.lock():
            return run.resume()


def load_run(
    run_dir: str | os.PathLike[str],
    checkpoint: str = "best",
    *,
    kg: MultiModalKG | None = None,
    device: str | None = None,
) -> tuple[RunConfig, MultiModalKG, KGModel]:
    """The config, dataset and model of a run, with the weights of ``checkpoint`` (``best``, which
    falls back to ``last`` while a run has no best yet, or ``last``), on ``device`` (``cpu``, ``cuda``
    or ``auto``; default: the device the run trained on)."""
    if checkpoint not in CHECKPOINTS:
        raise RunDirError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    directory = RunDirectory(run_dir)
    config = directory.load_config()
    kg, model = build(config, kg, resolve_device(device) if device is not None else None)
    directory.check_data(kg.identity())
    name = checkpoint if directory.has_checkpoint(checkpoint) else "last"
    directory.load_weights(name, model)
    model.eval()
    return config, kg, model


def evaluate_run(
    run_dir: str | os.PathLike[str],
    split: str = "valid",
    checkpoint: str = "best",
    progress: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Metrics of a run's checkpoint on a split (the same numbers the run itself reported)."""
    config, kg, model = load_run(run_dir, checkpoint, device=device)
    return Evaluator.of(kg, config.evaluation, progress).evaluate(model, split)


def evaluate_scorers(
    run_dir: str | os.PathLike[str],
    split: str = "valid",
    checkpoint: str = "best",
    progress: bool = False,
    device: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of each MoCME scorer alone (one per modality, and ``joint``), then ``decision``.

    ``decision`` is the model's own joint decision (what ``evaluate_run`` reports): it shows how
    much each modality's scorer contributes and whether the combination beats its best scorer.
    """
    from mocme.models.mocme import MoCME, SingleScorer

    config, kg, model = load_run(run_dir, checkpoint, device=device)
    if not isinstance(model, MoCME):
        raise RunDirError(f"{run_dir}: per-scorer evaluation needs a MoCME run, this one is {config.model.name}")
    evaluator = Evaluator.of(kg, config.evaluation, progress)
    out = {scorer: evaluator.evaluate(SingleScorer(model, scorer), split) for scorer in model.scorer_names}
    out["decision"] = evaluator.evaluate(model, split)
    return out


@contextlib.contextmanager
def _process_group(config: RunConfig, distributed: bool) -> Iterator[tuple[Distributed | None, torch.device | None]]:
    """``(group, device)`` of this ``torchrun`` process, left at the end; ``(None, None)`` alone."""
    if not distributed:
        yield None, None
        return
    group, device = processes.start(resolve_device(config.device), config.threads)
    try:
        yield group, device
    finally:
        processes.stop()
