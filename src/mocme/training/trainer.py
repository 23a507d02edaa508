"""The training loop: epochs of steps; validation and the end of each epoch go through callbacks.

The trainer only trains. Whoever runs it (:class:`mocme.run.Run`) validates, selects, checkpoints
and decides when to stop, through the ``validate`` and ``epoch_end`` callbacks.

Randomness is re-seeded from ``(seed, epoch)`` at the start of every epoch (query order, negatives,
dropout), so a run resumed from the checkpoint of epoch ``e`` continues exactly as the
uninterrupted run would have.

A step is the strategy's (:mod:`mocme.training.strategies`): it scores sampled candidates or every
entity, in chunks under ``training.memory_mb``. Negatives are drawn on the CPU
from the epoch's generator, so they are the same on every device and for any number of
processes (:mod:`mocme.training.distributed`). Loss values and gradient norms stay on the device
until the end of the epoch (no synchronisation per step); a non-finite loss is reported with the
step and scorer where it first appeared.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mocme.data.kg import MultiModalKG
from mocme.errors import ConfigError, NumericalError
from mocme.models.base import KGModel
from mocme.training.config import TrainingConfig
from mocme.training.distributed import Distributed
from mocme.training.negatives import epoch_queries
from mocme.training.strategies import Batch, build_strategy


@dataclass(frozen=True)
class Validation:
    """What the validation callback answers: the metrics, the selection value, and whether to stop."""

    metrics: dict[str, float]  # flat: "both.realistic.inverse_harmonic_mean_rank", ...
    value: float  # the selection metric of this evaluation
    best: float  # the best selection value so far
    stop: bool  # end training after this epoch


Validate = Callable[[int], Validation]
"""Called with the number of completed epochs when validation is due."""
EpochEnd = Callable[[dict[str, Any]], None]
"""Called with each epoch's record (losses, gradient norms, ``valid`` metrics when validated)."""


class Trainer:
    """Trains ``model`` on ``kg.train``; validation and the end of each epoch go through callbacks.

    With ``distributed``, ``config.batch_size`` is the batch of each process: every step covers
    ``world × batch_size`` queries, split across the processes.
    """

    def __init__(
        self,
        model: KGModel,
        kg: MultiModalKG,
        config: TrainingConfig,
        seed: int = 0,
        validate: Validate | None = None,
        epoch_end: EpochEnd | None = None,
        progress: bool = False,
        distributed: Distributed | None = None,
    ):
        self.model, self.kg, self.config, self.seed = model, kg, config, seed
        self.validate, self.epoch_end = validate, epoch_end
        self.progress = progress
        self.distributed = distributed
        self.device = model.device
        self.pin_memory = self.device.type == "cuda"  # host tensors copied to the GPU asynchronously
        self.optimizer = _optimizer(model, config)
        self.scheduler = _scheduler(self.optimizer, config)
        self.epoch = 0  # epochs completed
        compiled = (
            {"scorer_scores": _compiled(model.scorer_scores), "scorer_tables": _compiled(model.scorer_tables)}
            if config.compile
            else {}
        )
        self.strategy = build_strategy(config, model, **compiled)

    # -- checkpoint state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The trainer's part of a checkpoint: weights, optimiser, scheduler, epoch and RNG states."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "train_state": {"epoch": self.epoch, "processes": self.processes},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }

    @property
    def processes(self) -> int:
        """How many processes train together (the global batch is ``processes × batch_size``)."""
        return self.distributed.world if self.distributed is not None else 1

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["train_state"]["epoch"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])

    # -- loop ------------------------------------------------------------------------------------
    def fit(self) -> int:
        """Train from ``epoch`` to the last epoch, or until validation says stop; the epochs completed."""
        config = self.config
        epochs = range(self.epoch, config.epochs)
        bar = tqdm(
            epochs,
            desc="training",
            disable=None if self.progress else True,
            unit="epoch",
            initial=self.epoch,
            total=config.epochs,
        )
        for epoch in bar:
            started = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            done = self.epoch = epoch + 1
            validation = None
            if self.validate is not None and (done % config.eval_every == 0 or done == config.epochs):
                validation = self.validate(done)
                record["valid"] = validation.metrics
                bar.set_postfix(valid=f"{validation.value:.4f}", best=f"{validation.best:.4f}")
            if self.scheduler is not None:
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    if validation is not None:
                        self.scheduler.step(validation.value)
                else:
                    self.scheduler.step()
            record["seconds"] = round(time.perf_counter() - started, 3)
            if self.epoch_end is not None:
                self.epoch_end(record)
            if validation is not None and validation.stop:
                break
        bar.close()
        if self.distributed is not None:
            self.distributed.barrier()  # rank 0's checkpoints are on disk before anyone reads them
        return self.epoch

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training queries; returns mean losses (per scorer) and gradient norms."""
        config = self.config
        seed = (self.seed * 1_000_003 + epoch) % (2**63)
        rank = self.distributed.rank if self.distributed is not None else 0
        torch.manual_seed((seed + 7_919 * rank) % (2**63))  # dropout: each process its own masks
        generator = torch.Generator().manual_seed(seed)  # the queries' order: shared by every process
        queries, targets = epoch_queries(self.kg.train, self.kg.num_relations, self.strategy.queries, generator)
        if self.pin_memory:
            queries, targets = queries.pin_memory(), targets.pin_memory()
        extra = self.strategy.begin_epoch(epoch)
        self.model.train()
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        totals: dict[str, Tensor] = {}
        first_bad: dict[str, Tensor] = {}
        grad_norms: list[Tensor] = []
        batches = global_batches(len(queries), config.batch_size, self.processes)
        for step, (start, end) in enumerate(
            tqdm(batches, desc=f"epoch {epoch + 1}", disable=None if self.progress else True, leave=False, unit="batch")
        ):
            self.optimizer.zero_grad(set_to_none=True)
            losses = self.step(queries, targets, start, end, generator)
            names = list(losses)
            values = torch.stack([losses[name].detach().float() for name in names])
            if self.distributed is not None:
                values = self.distributed.average_gradients(parameters, values)
            if config.grad_clip:
                norm = torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            else:  # the norm for the trace, without rescaling every gradient by 1
                norm = torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
            grad_norms.append(norm.detach())
            with _warmed_up(self.optimizer, config.warmup_epochs, epoch + (step + 1) / len(batches)):
                self.optimizer.step()
            for name, value in zip(names, values, strict=True):
                totals[name] = totals.get(name, 0.0) + value
                bad = first_bad.setdefault(name, torch.full((), -1, device=value.device))
                first_bad[name] = torch.where(~torch.isfinite(value) & (bad < 0), step, bad)
        _raise_if_not_finite(epoch, first_bad, totals)
        steps = len(batches)
        losses_mean = {name: float(value) / max(steps, 1) for name, value in totals.items()}
        norms = torch.stack(grad_norms).cpu().double() if grad_norms else None
        record: dict[str, Any] = {
            "loss": sum(losses_mean.values()),
            "losses": losses_mean,
            "grad_norm": {"mean": float(norms.mean()), "max": float(norms.max())} if norms is not None else {},
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        return record | extra

    def step(
        self, queries: Tensor, targets: Tensor, start: int, end: int, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Forward and backward pass over this process's part of the global batch ``[start, end)``.

        Returns the detached losses, one per scorer plus the penalties (see :meth:`Strategy.step`).
        """
        config = self.config
        device = self.device
        first, last = self.distributed.share(start, end) if self.distributed is not None else (start, end)
        q_cpu, t_cpu = queries[first:last], targets[first:last]
        batch = Batch(
            queries=q_cpu.to(device, non_blocking=True),
            targets=t_cpu.to(device, non_blocking=True),
            queries_cpu=q_cpu,
            global_queries=queries[start:end],
            share=slice(first - start, last - start),
            known=self.kg.train_index,
            generator=generator,
            denominators=self.distributed.mean if self.distributed is not None else None,
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16"):
            return self.strategy.step(batch)


def global_batches(queries: int, batch_size: int, processes: int = 1) -> list[tuple[int, int]]:
    """``[start, end)`` of each global batch of ``processes × batch_size`` of an epoch's ``queries``.

    A last batch too small to give every process a query joins the batch before it (a process with
    no query would have nothing to back-propagate).
    """
    if 0 < queries < processes:
        raise ConfigError(f"{queries} training queries cannot be shared among {processes} processes")
    step = batch_size * processes
    bounds = [(start, min(start + step, queries)) for start in range(0, queries, step)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < processes:
        bounds[-2:] = [(bounds[-2][0], queries)]
    return bounds


def _raise_if_not_finite(epoch: int, first_bad: dict[str, Tensor], totals: dict[str, Tensor]) -> None:
    """Name the scorer and step whose loss first became NaN or infinite this epoch."""
    bad = {name: int(step) for name, step in first_bad.items() if int(step) >= 0}
    if not bad:
        return
    name = min(bad, key=lambda n: (bad[n], list(first_bad).index(n)))
    raise NumericalError(
        f"epoch {epoch + 1}: the loss of scorer '{name}' is {float(totals[name]):g} (first at step {bad[name] + 1})"
    )


def _compiled(function: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile`` with dynamic shapes (candidate counts change from step to step)."""
    return torch.compile(function, dynamic=True)


def _optimizer(model: KGModel, config: TrainingConfig) -> torch.optim.Optimizer:
    """Adam or AdamW as one fused kernel over all parameters on devices that have it (CPU, CUDA); or Adagrad.

    With ``training.module_lr``, the parameters that are not embedding vectors form a second group
    with that learning rate (see :func:`is_embedding`).
    """
    params: Any = model.parameters()
    if config.module_lr is not None:
        named = list(model.named_parameters())
        params = [
            {"params": [p for n, p in named if is_embedding(n)]},
            {"params": [p for n, p in named if not is_embedding(n)], "lr": config.module_lr},
        ]
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    fused = model.device.type in ("cpu", "cuda")
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


# The attribute names of the interactions' relation tables: vectors (``relation``) or RotatE's phases.
RELATION_TABLES = frozenset({"relation", "phase"})


def is_embedding(name: str) -> bool:
    """Whether parameter ``name`` is a table of embedding vectors: the entity table or a scorer's relation vectors."""
    return name == "entity" or name.rsplit(".", 1)[-1] in RELATION_TABLES


@contextlib.contextmanager
def _warmed_up(optimizer: torch.optim.Optimizer, warmup_epochs: int, progress: float) -> Iterator[None]:
    """Within the first ``warmup_epochs``, scale the learning rate by ``progress / warmup_epochs``.

    ``progress``: epochs done after this step, fractional within an epoch. The scheduled rate is restored
    after the step, so schedulers never see the warm-up factor.
    """
    if progress >= warmup_epochs:
        yield
        return
    factor = progress / warmup_epochs
    scheduled = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.gamma, patience=1)
    return None
