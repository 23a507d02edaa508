"""Seeded tiny runs whose metrics and weights pin the library's behaviour bit for bit."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from mocme.config import RunConfig, load_config
from mocme.pipeline import train
from mocme.rundir import RunDirectory

FOLDER = Path(__file__).resolve().parent
INTERRUPTED = FOLDER / "run-mocme-interrupted"
VOLATILE = ("train_seconds_this_session",)
"""Metrics that measure the machine rather than the run."""


class Interrupt(Exception):
    """Raised by a callback after the first epoch, as a killed process would stop."""


def configs() -> dict[str, RunConfig]:
    """The fingerprinted runs by name: ``config-<name>.yaml`` in this folder."""
    return {path.stem.removeprefix("config-"): load_config(path) for path in sorted(FOLDER.glob("config-*.yaml"))}


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' dtypes, shapes and bytes, in state-dict order (names left out)."""
    digest = hashlib.sha256()
    for tensor in state.values():
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def summary(directory: RunDirectory, metrics: dict[str, Any]) -> dict[str, Any]:
    """The final metrics (less the volatile ones) and the hash of the selected checkpoint's weights."""
    state = directory.load_checkpoint(metrics["selected_checkpoint"], torch.device("cpu"))
    return {
        "metrics": {key: value for key, value in metrics.items() if key not in VOLATILE},
        "weights_sha256": weights_hash(state["model"]),
    }


def fingerprint(config: RunConfig, out: Path) -> dict[str, Any]:
    """Train ``config`` into ``out`` and summarise it."""
    result = train(config, out)
    return summary(result.directory, result.metrics)


def interrupted_run(config: RunConfig, out: Path) -> None:
    """Train ``config`` into ``out`` and stop it in its second epoch: ``last.pt`` holds the first."""

    def stop(record: dict[str, Any]) -> None:
        if record["epoch"] == 2:  # traced, not yet checkpointed
            raise Interrupt

    try:
        train(config, out, callbacks=[stop])
    except Interrupt:
        return
    raise AssertionError("the run was not interrupted")
