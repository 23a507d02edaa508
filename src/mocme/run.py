"""One run: config, dataset, model, run directory, tracking and process group, trained as a whole.

The :class:`Run` owns what the trainer does not: it validates through the :class:`Evaluator`,
selects the model on the validation split only (:class:`~mocme.selection.Selection`), decides when
to stop early, writes ``checkpoints/{last,best}.pt`` and the trace, and scores the test split
once, at the selected checkpoint, after training ends.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mocme.allocator import keep_freed_memory
from mocme.config import RunConfig
from mocme.data.kg import MultiModalKG
from mocme.data.loading import load_dataset
from mocme.device import resolve_device
from mocme.errors import DataWarning, RunDirError
from mocme.evaluation import Evaluator
from mocme.models import KGModel, build_model
from mocme.rundir import RunDirectory, WorkerRunDirectory
from mocme.selection import Selection
from mocme.tracking import Tracking
from mocme.training.distributed import Distributed
from mocme.training.trainer import Trainer, Validation

EpochCallback = Callable[[dict[str, Any]], None]
"""Called with each epoch's trace record (losses, gradient norms, ``valid`` metrics when evaluated)."""


@dataclass
class RunResult:
    """What a finished run produced: its directory, the trained model and its final metrics."""

    directory: RunDirectory
    kg: MultiModalKG
    model: KGModel
    metrics: dict[str, Any]


def build(
    config: RunConfig, kg: MultiModalKG | None = None, device: torch.device | None = None
) -> tuple[MultiModalKG, KGModel]:
    """Load the dataset (unless given) and build the model, initialised from ``config.seed``.

    The model goes to ``device`` (default: ``config.device`` resolved).
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    keep_freed_memory()
    kg = kg if kg is not None else load_dataset(config.dataset)
    torch.manual_seed(config.seed)
    model = build_model(config.model, kg).to(device or resolve_device(config.device))
    return kg, model


class Run:
    """A run in its directory; with ``group``, this process's part of a data-parallel run.

    ``device`` defaults to ``config.device`` resolved (a process of a group passes its own GPU).
    Construct it before creating or locking the directory: loading the dataset first means bad
    input leaves nothing behind. Processes other than rank 0 read the directory and never write.
    """

    def __init__(
        self,
        config: RunConfig,
        path: str | os.PathLike[str],
        *,
        kg: MultiModalKG | None = None,
        group: Distributed | None = None,
        device: torch.device | None = None,
        progress: bool = False,
        callbacks: Sequence[EpochCallback] = (),
    ):
        self.config, self.group = config, group
        main = group is None or group.is_main
        self.progress = progress and main
        self.directory = RunDirectory(path) if main else WorkerRunDirectory(path)
        self.tracking = Tracking.for_run(config, self.directory) if main else Tracking()
        self.callbacks: list[EpochCallback] = [self.tracking, *callbacks]
        self.kg, self.model = build(config, kg, device)
        self.evaluator = Evaluator.of(self.kg, config.evaluation, self.progress, group)
        self.selection = Selection(config.training.metric, config.training.patience)
        if len(self.kg.valid) == 0:
            warnings.warn(
                f"{self.kg.name}: the validation split is empty; the last epoch is selected", DataWarning, stacklevel=2
            )
        if len(self.kg.test) == 0:
            warnings.warn(
                f"{self.kg.name}: the test split is empty; there is no test split to score", DataWarning, stacklevel=2
            )
        self.trainer = Trainer(
            self.model,
            self.kg,
            config.training,
            seed=config.seed,
            validate=self.validate if len(self.kg.valid) else None,
            epoch_end=self._epoch_end,
            progress=self.progress,
            distributed=group,
        )

    # -- what a run does -------------------------------------------------------------------------
    def train(self) -> RunResult:
        """Train from the trainer's epoch on, select on validation, score valid and test once."""
        with self.tracking.session(self.config, resumed_at=self.trainer.epoch):
            started = time.perf_counter()
            if not self.selection.stopped_early:
                self.trainer.fit()
            metrics = self._summary(self.select(), time.perf_counter() - started)
            for split in ("valid", "test"):
                if len(self.kg.split(split)):
                    metrics[split] = self.evaluate(split)
            self.directory.write_metrics(metrics)
            self.tracking.finish(metrics)
        return RunResult(self.directory, self.kg, self.model, metrics)

    def resume(self) -> RunResult:
        """Continue from ``checkpoints/last.pt``; ends exactly as an uninterrupted run would."""
        self.directory.remove_stale_temp_files()  # partial writes of the killed process; never checkpoints
        identity = self.kg.identity()
        if not self.directory.metadata_path.exists():  # killed between config.yaml and metadata.json
            self.directory.write_metadata(self.config, identity)
        self.directory.check_data(identity)
        if self.directory.metrics_path.exists():  # finished: the test split is not scored again
            self.select()
            return RunResult(self.directory, self.kg, self.model, self.directory.metrics())
        if self.directory.has_checkpoint("last"):
            state = self.directory.load_checkpoint("last", self.model.device)
            trained_by = state.get("train_state", {}).get("processes", self.trainer.processes)
            if trained_by != self.trainer.processes:  # the global batch would change mid-run
                raise RunDirError(
                    f"{self.directory.checkpoint_path('last')}: trained by {trained_by} process(es), resumed by "
                    f"{self.trainer.processes}; resume it with as many (torchrun --nproc-per-node {trained_by} ... "
                    "--distributed, or no torchrun for 1)"
                )
            try:
                self.trainer.load_state_dict(state)
                self.selection.load_state(state["train_state"])
            except (RuntimeError, KeyError, TypeError, ValueError) as err:
                raise RunDirError(
                    f"{self.directory.checkpoint_path('last')}: cannot resume from it, it does not fit the run "
                    f"config.yaml describes ({type(err).__name__}: {str(err).splitlines()[-1].strip()[:160]})"
                ) from None
        self.directory.truncate_trace(self.trainer.epoch)
        if self.trainer.epoch < self.config.training.epochs and not self.selection.stopped_early:
            self.directory.record_resume(self.trainer.epoch)  # epochs will run here: on this machine
        return self.train()

    def validate(self, epoch: int) -> Validation:
        """Rank the validation split after ``epoch`` epochs, update the selection, keep ``best.pt``."""
        metrics = self.evaluator.validate(self.model, epoch)
        if self.selection.update(epoch, metrics):
            self.directory.save_checkpoint("best", self.checkpoint())
        return Validation(
            metrics, metrics[self.selection.metric], self.selection.best_metric, self.selection.stopped_early
        )

    def evaluate(self, split: str) -> dict[str, Any]:
        """Metrics of the model as it stands on ``split`` (every process computes the same)."""
        return self.evaluator.evaluate(self.model, split)

    def select(self) -> str:
        """Load the selected checkpoint's weights into the model: ``best``, else ``last``; its name."""
        selected = "best" if self.directory.has_checkpoint("best") else "last"
        if not self.directory.has_checkpoint(selected):
            raise RunDirError(f"{self.directory.path}: training produced no checkpoint")
        self.directory.load_weights(selected, self.model)
        return selected

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to resume: the trainer's state with the selection in ``train_state``."""
        state = self.trainer.state_dict()
        state["train_state"].update(self.selection.state())
        return state

    # -- internals -------------------------------------------------------------------------------
    def _epoch_end(self, record: dict[str, Any]) -> None:
        self.directory.append_trace(record)
        for callback in self.callbacks:
            callback(record)
        self.directory.save_checkpoint("last", self.checkpoint())

    def _summary(self, selected: str, seconds: float) -> dict[str, Any]:
        return {
            "dataset": self.kg.name,
            "model": self.config.model.name,
            "modalities": ["structure", *self.kg.modalities],
            "seed": self.config.seed,
            "selected_checkpoint": selected,
            "selected_epoch": self.selection.best_epoch if selected == "best" else self.trainer.epoch,
            "selection_metric": f"valid.{self.selection.metric}",
            "best_valid_metric": self.selection.best_value,
            "epochs_trained": self.trainer.epoch,
            "stopped_early": self.selection.stopped_early,
            "train_seconds_this_session": round(seconds, 2),
        }
