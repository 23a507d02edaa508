"""Data-parallel training across the processes that ``torchrun`` starts (gloo on CPU, NCCL on CUDA).

Every process holds the whole graph and a replica of the model. Each global batch of
``world × batch_size`` queries is split evenly across the processes; negatives are drawn for the
whole global batch from the shared per-epoch seed, so they do not depend on the number of
processes. Each process back-propagates the loss of its slice, divided by the mean over processes
of the rows it averages over (so that the averaged gradient is that of the global batch's mean
loss), and one all-reduce per step averages the gradients (and the losses, for the trace).

The gradients are averaged explicitly rather than through ``DistributedDataParallel``: training
calls ``scorer_scores``/``scorer_tables`` rather than ``forward``, and 1-N training in entity chunks
runs several backward passes per step, which DDP's reducer does not allow.

Evaluation shards the triples across processes and gathers the ranks (:meth:`Distributed.shard`,
:meth:`Distributed.gather`, through :class:`mocme.evaluation.Evaluator`), so that every process
computes the same metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from mocme.errors import MocmeError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """This process's place in the process group."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory."""
        return self.rank == 0

    def barrier(self) -> None:
        dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def share(self, start: int, end: int) -> tuple[int, int]:
        """This process's part ``[a, b)`` of the global batch ``[start, end)`` (parts differ by at most one)."""
        size = end - start
        first = start + size * self.rank // self.world
        return first, start + size * (self.rank + 1) // self.world

    def mean(self, values: Tensor) -> Tensor:
        """The mean of ``values`` over the processes (one all-reduce)."""
        total = values.clone()
        dist.all_reduce(total)
        return total / self.world

    def average_gradients(self, parameters: list[torch.nn.Parameter], extra: Tensor) -> Tensor:
        """Average the gradients (``None`` counts as zero) and ``extra`` over the processes, in one all-reduce.

        A parameter that no process has a gradient for keeps ``None``, as in a single process, so the
        optimiser skips it (no weight decay, no moment updates).
        """
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        device = grads[0].device
        has_grad = torch.tensor([float(p.grad is not None) for p in parameters], device=device)
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [has_grad, extra.reshape(-1).float().to(device)])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(parameters, grads, strict=True):
            p.grad = (flat[offset : offset + g.numel()] / self.world).view_as(p).to(p.dtype)
            offset += g.numel()
        anywhere = flat[offset : offset + len(parameters)] > 0
        for p, some in zip(parameters, anywhere.tolist(), strict=True):
            if not some:
                p.grad = None
        return (flat[offset + len(parameters) :] / self.world).view_as(extra)

    def shard(self, items: Tensor) -> Tensor:
        """Every ``world``-th row, starting at this rank."""
        return items[self.rank :: self.world]

    def gather(self, values: Tensor, device: torch.device) -> Tensor:
        """The ``values`` of every process, concatenated in rank order (lengths may differ)."""
        length = torch.tensor([len(values)], device=device)
        lengths = [torch.zeros_like(length) for _ in range(self.world)]
        dist.all_gather(lengths, length)
        longest = int(max(int(n) for n in lengths))
        padded = torch.zeros((longest, *values.shape[1:]), dtype=values.dtype, device=device)
        padded[: len(values)] = values.to(device)
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        return torch.cat([part[: int(n)] for part, n in zip(parts, lengths, strict=True)]).to(values.device)


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def main_process() -> bool:
    """Whether this process is rank 0 of a ``torchrun`` launch (or not launched by one)."""
    return os.environ.get("RANK", "0") == "0"


def start(device: torch.device, threads: int | None = None) -> tuple[Distributed, torch.device]:
    """Join the process group that ``torchrun`` set up (gloo on CPU, NCCL on CUDA).

    Returns this process's place and device (``cuda:LOCAL_RANK`` on CUDA). Without an explicit
    thread count, the CPU cores are shared among the processes of this machine.
    """
    if not launched_by_torchrun():
        raise MocmeError(
            "--distributed needs the environment that torchrun sets, e.g. "
            "torchrun --nproc-per-node 2 -m mocme train CONFIG --distributed"
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif threads is None:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), local_rank), device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
