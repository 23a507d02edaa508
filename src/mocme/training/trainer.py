"""The training loop: epochs of steps, validation through a callback, early stopping, checkpoints.

Randomness is re-seeded from ``(seed, epoch)`` at the start of every epoch (query order, negatives,
dropout), so a run resumed from the checkpoint of epoch ``e`` continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mocme.data.kg import MultiModalKG
from mocme.errors import NumericalError
from mocme.models.base import KGModel
from mocme.training.config import TrainingConfig
from mocme.training.losses import one_to_n_loss, weighted_negative_loss
from mocme.training.negatives import epoch_queries, sample_negatives
from mocme.training.weighting import egns_temperature, egns_weights, self_adversarial_weights, uniform_weights

Validate = Callable[[KGModel, int], dict[str, float]]
Checkpoint = Callable[[str, dict[str, Any]], None]
Trace = Callable[[dict[str, Any]], None]


@dataclass
class TrainState:
    """Progress that a checkpoint must carry besides the weights and optimiser."""

    epoch: int = 0  # epochs completed
    best_metric: float = -math.inf
    best_epoch: int = 0
    bad_evaluations: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # validation results per evaluation


class Trainer:
    """Trains ``model`` on ``kg.train``; validation, checkpoints and trace go through callbacks."""

    def __init__(
        self,
        model: KGModel,
        kg: MultiModalKG,
        config: TrainingConfig,
        seed: int = 0,
        validate: Validate | None = None,
        checkpoint: Checkpoint | None = None,
        trace: Trace | None = None,
        progress: bool = False,
    ):
        self.model, self.kg, self.config, self.seed = model, kg, config, seed
        self.validate, self.checkpoint, self.trace = validate, checkpoint, trace
        self.progress = progress
        self.device = model.device
        optimizer_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = optimizer_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = _scheduler(self.optimizer, config)
        self.state = TrainState()

    # -- checkpoint state ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimiser, scheduler, progress and RNG states."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "train_state": asdict(self.state),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.state = TrainState(**state["train_state"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])

    # -- loop ------------------------------------------------------------------------------------
    def fit(self) -> TrainState:
        """Train from ``state.epoch`` to the last epoch or until early stopping."""
        config = self.config
        epochs = range(self.state.epoch, config.epochs)
        bar = tqdm(
            epochs,
            desc="training",
            disable=None if self.progress else True,
            unit="epoch",
            initial=self.state.epoch,
            total=config.epochs,
        )
        for epoch in bar:
            if self.state.stopped_early:
                break
            started = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            done = self.state.epoch = epoch + 1
            if self.validate is not None and (done % config.eval_every == 0 or done == config.epochs):
                metrics = self.validate(self.model, done)
                self._update_selection(done, metrics)
                record["valid"] = metrics
                bar.set_postfix(valid=f"{metrics[config.metric]:.4f}", best=f"{self.state.best_metric:.4f}")
            if self.scheduler is not None:
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    if "valid" in record:
                        self.scheduler.step(record["valid"][config.metric])
                else:
                    self.scheduler.step()
            record["seconds"] = round(time.perf_counter() - started, 3)
            if self.trace is not None:
                self.trace(record)
            if self.checkpoint is not None:
                self.checkpoint("last", self.state_dict())
        bar.close()
        return self.state

    def _update_selection(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.config.metric not in metrics:
            raise KeyError(f"validation metric {self.config.metric!r} not among {sorted(metrics)[:6]}...")
        value = metrics[self.config.metric]
        self.state.history.append({"epoch": epoch, **metrics})
        if value > self.state.best_metric:
            self.state.best_metric, self.state.best_epoch, self.state.bad_evaluations = value, epoch, 0
            if self.checkpoint is not None:
                self.checkpoint("best", self.state_dict())
        else:
            self.state.bad_evaluations += 1
            if self.config.patience and self.state.bad_evaluations >= self.config.patience:
                self.state.stopped_early = True

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One pass over the training queries; returns mean losses (per head) and gradient norms."""
        config = self.config
        seed = (self.seed * 1_000_003 + epoch) % (2**63)
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        mode = {"bernoulli": "bernoulli", "one_to_n": "unique"}.get(config.negatives, "both")
        queries, targets = epoch_queries(self.kg.train, self.kg.num_relations, mode, generator)
        temperature = egns_temperature(config.egns, epoch, config.epochs) if config.negatives == "egns" else None
        self.model.train()
        totals: dict[str, float] = {}
        grad_norms: list[float] = []
        steps = 0
        batches = range(0, len(queries), config.batch_size)
        for start in tqdm(
            batches, desc=f"epoch {epoch + 1}", disable=None if self.progress else True, leave=False, unit="batch"
        ):
            q = queries[start : start + config.batch_size]
            t = targets[start : start + config.batch_size]
            losses = self.step(q, t, temperature, generator)
            loss = sum(losses.values())
            for name, value in losses.items():
                if not bool(torch.isfinite(value)):
                    raise NumericalError(f"epoch {epoch + 1}: the loss of head '{name}' is {value.item()}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip or math.inf)
            grad_norms.append(float(norm))
            self.optimizer.step()
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach())
            steps += 1
        record: dict[str, Any] = {
            "loss": sum(totals.values()) / max(steps, 1),
            "losses": {name: value / max(steps, 1) for name, value in totals.items()},
            "grad_norm": {"mean": float(np.mean(grad_norms)), "max": float(np.max(grad_norms))} if grad_norms else {},
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        if temperature is not None:
            record["egns_temperature"] = temperature
        return record

    def step(
        self, queries: Tensor, targets: Tensor, temperature: float | None, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Losses of one batch, one entry per head plus the model's regulariser."""
        config = self.config
        device = self.device
        known = self.kg.train_index
        if config.negatives == "one_to_n" or (config.negatives == "egns" and config.pool == "all"):
            heads = self.model.head_scores(queries.to(device))
            rows, cols = known.pairs(queries)
            labels = torch.zeros(len(queries), self.kg.num_entities, device=device)
            labels[rows.to(device), cols.to(device)] = 1.0
            losses = {}
            for name, head in heads.items():
                if config.negatives == "one_to_n":
                    losses[name] = one_to_n_loss(head.scores, labels, head.available, config.label_smoothing)
                    continue
                t = targets.to(device).unsqueeze(1)
                available = (
                    torch.ones_like(labels, dtype=torch.bool)
                    if head.available is None
                    else head.available.expand_as(labels)
                )
                valid = (labels == 0) & available
                weights = egns_weights(head.scores, valid, config.egns, temperature, generator)
                positive = head.scores.gather(1, t).squeeze(1)
                losses[name] = weighted_negative_loss(
                    positive, head.scores, weights, available.gather(1, t).squeeze(1), config.label_smoothing
                )
        else:
            negatives, valid = sample_negatives(queries, config.num_negatives, self.kg.num_entities, known, generator)
            candidates = torch.cat([targets.unsqueeze(1), negatives], 1).to(device)
            heads = self.model.head_scores(queries.to(device), candidates)
            valid = valid.to(device)
            losses = {}
            for name, head in heads.items():
                scores = head.scores
                available = (
                    torch.ones_like(scores, dtype=torch.bool)
                    if head.available is None
                    else head.available.expand_as(scores)
                )
                neg_valid = valid & available[:, 1:]
                negative = scores[:, 1:]
                if config.negatives == "self_adversarial":
                    weights = self_adversarial_weights(negative, neg_valid, config.adversarial_temperature)
                elif config.negatives == "egns":
                    weights = egns_weights(negative, neg_valid, config.egns, temperature, generator)
                else:
                    weights = uniform_weights(neg_valid)
                losses[name] = weighted_negative_loss(
                    scores[:, 0], negative, weights, available[:, 0], config.label_smoothing
                )
        penalty = self.model.regularization()
        if penalty.requires_grad:
            losses["regularization"] = penalty
        return losses


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config.gamma, patience=1)
    return None
