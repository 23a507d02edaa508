"""Seeded tiny runs whose metrics and weights pin the library's behaviour.

The metrics are compared exactly; the weights within float32 rounding grown over a few epochs of
training, because the same arithmetic takes different kernel paths on different CPUs (measured on
one Xeon with AVX-512 and AMX: forcing torch's AVX2 or scalar kernels moves the MoCME weights by up
to 3e-4 of their largest entry after three epochs, the TuckER ones by 4e-7), so a hash of the bytes
would hold only on the machine that wrote it. The tolerances still catch a learning rate 0.1 % off
(it moves the MoCME weights by 7e-2 of their scale, the TuckER ones by 6e-5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mocme.config import RunConfig, load_config
from mocme.pipeline import train
from mocme.rundir import RunDirectory

FOLDER = Path(__file__).resolve().parent
INTERRUPTED = FOLDER / "run-mocme-interrupted"
VOLATILE = ("train_seconds_this_session",)
"""Metrics that measure the machine rather than the run."""
WEIGHTS_TOLERANCE = {"mocme": 2e-3, "tucker": 1e-5}
"""Per run: the largest difference allowed in a weight tensor, as a share of its largest entry."""


class Interrupt(Exception):
    """Raised by a callback after the first epoch, as a killed process would stop."""


def configs() -> dict[str, RunConfig]:
    """The fingerprinted runs by name: ``config-<name>.yaml`` in this folder."""
    return {path.stem.removeprefix("config-"): load_config(path) for path in sorted(FOLDER.glob("config-*.yaml"))}


def weights_path(name: str) -> Path:
    """Where the selected weights of the run ``name`` are stored (safetensors, a few KB)."""
    return FOLDER / f"weights-{name}.safetensors"


def summary(directory: RunDirectory, metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The final metrics (less the volatile ones) and the selected checkpoint's weights."""
    state = directory.load_checkpoint(metrics["selected_checkpoint"], torch.device("cpu"))
    weights = {key: tensor.detach().contiguous() for key, tensor in state["model"].items()}
    return {key: value for key, value in metrics.items() if key not in VOLATILE}, weights


def fingerprint(config: RunConfig, out: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Train ``config`` into ``out`` and summarise it."""
    result = train(config, out)
    return summary(result.directory, result.metrics)


def save_weights(name: str, weights: dict[str, torch.Tensor]) -> None:
    """Store ``weights`` as the reference of the run ``name``."""
    save_file(weights, weights_path(name))


def assert_same_weights(actual: dict[str, torch.Tensor], name: str) -> None:
    """``actual`` has the reference's tensors (names, dtypes, shapes) and values within rounding."""
    expected = load_file(weights_path(name))
    assert sorted(actual) == sorted(expected)
    for key, tensor in expected.items():
        scale = float(tensor.abs().max()) if tensor.numel() and tensor.is_floating_point() else 0.0
        torch.testing.assert_close(
            actual[key], tensor, rtol=0.0, atol=WEIGHTS_TOLERANCE[name] * scale, msg=lambda m, key=key: f"{key}: {m}"
        )


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
