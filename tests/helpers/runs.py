"""Run ``mocme train`` in subprocesses, interrupt them, and compare what their run directories hold."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

HELPERS = Path(__file__).resolve().parent
FAULTY_CLI = HELPERS / "faulty_cli.py"
READER = HELPERS / "reader.py"

TINY_CONFIG = """\
seed: 3
threads: 1
device: cpu
dataset:
  synthetic: {num_entities: 150, num_relations: 3}
model: {dim: 12, relation_dim: 4}
training: {epochs: %(epochs)d, eval_every: 1, patience: 0, batch_size: 64, num_negatives: 16}
"""


def tiny_config(folder: Path, epochs: int) -> Path:
    """A run config that trains in about a quarter of a second per epoch on one thread."""
    path = folder / f"tiny-{epochs}.yaml"
    path.write_text(TINY_CONFIG % {"epochs": epochs})
    return path


@dataclass
class Process:
    """A ``mocme`` subprocess with its output in files (so that a paused process never blocks on a pipe)."""

    popen: subprocess.Popen
    log: Path

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float = 120) -> int:
        return self.popen.wait(timeout)

    def wait_after_signal(self, timeout: float = 60) -> int:
        """Wait for the end of a faulty_cli.py process that was sent a signal; if it outlives
        ``timeout``, fail with its stacks and SIGINT handler (its SIGUSR1 report) and its stderr."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.send_signal(signal.SIGUSR1)
            time.sleep(2)
            report = self.stderr()[-6000:]
            raise AssertionError(f"still running {timeout} s after the signal; stderr:\n{report}") from None

    def signal(self, number: int) -> bool:
        """Send ``number`` if the process still runs; whether it was sent."""
        if not self.running:
            return False
        self.popen.send_signal(number)
        return True

    def kill(self) -> bool:
        """SIGKILL, then reap; whether the process was still running."""
        sent = self.signal(signal.SIGKILL)
        self.popen.wait(30)
        return sent

    def stdout(self) -> str:
        return self.log.with_suffix(".out").read_text()

    def stderr(self) -> str:
        return self.log.with_suffix(".err").read_text()


class Launcher:
    """Starts ``mocme`` subprocesses (optionally with a fault from faulty_cli.py) and ends them all at teardown."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[Process] = []

    def start(self, *args: str, fault: str | None = None) -> Process:
        """``mocme ARGS...``, or ``faulty_cli.py ARGS...`` with ``fault`` (see that script)."""
        command = [sys.executable, str(FAULTY_CLI)] if fault else [sys.executable, "-m", "mocme"]
        self.marker.unlink(missing_ok=True)
        return self._spawn([*command, *args], {"MOCME_FAULT": fault or "", "MOCME_FAULT_MARKER": str(self.marker)})

    def start_script(self, script: Path, *args: str) -> Process:
        return self._spawn([sys.executable, str(script), *args], {})

    def _spawn(self, command: list[str], env: dict[str, str]) -> Process:
        log = self.folder / f"process-{len(self.processes)}"
        with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
            popen = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, **env})
        process = Process(popen, log)
        self.processes.append(process)
        return process

    def run(self, *args: str, timeout: float = 120) -> Process:
        """Start and wait for the end."""
        process = self.start(*args)
        process.wait(timeout)
        return process

    @property
    def marker(self) -> Path:
        return self.folder / "paused"

    def close(self) -> None:
        for process in self.processes:
            if process.running:
                process.kill()


def wait_until(condition, process: Process, timeout: float = 120, what: str = "condition") -> None:
    """Poll ``condition`` every 10 ms; fail if ``process`` ends first or the time runs out."""
    ends = time.monotonic() + timeout
    while not condition():
        if not process.running:
            raise AssertionError(
                f"the process ended (status {process.popen.returncode}) before {what}: {process.stderr()[-2000:]}"
            )
        if time.monotonic() > ends:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def identity(path: Path) -> tuple[int, int] | None:
    """Inode and modification time of ``path`` (an atomic replace changes them), or None when it is absent."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def checkpoint_epochs(run: Path) -> dict[str, int]:
    """Load every ``checkpoints/*.pt`` (failing on a damaged one) and return each one's epoch."""
    epochs = {}
    for path in sorted((run / "checkpoints").glob("*.pt")):
        state = torch.load(path, map_location="cpu", weights_only=False)
        assert all(torch.isfinite(t).all() for t in state["model"].values()), f"{path}: non-finite weights"
        epochs[path.stem] = state["train_state"]["epoch"]
    return epochs


def trace(run: Path) -> list[dict[str, Any]]:
    """The trace's records (a torn last line, as a SIGKILL may leave, is skipped as resume would)."""
    from mocme.io import read_jsonl

    return read_jsonl(run / "trace.jsonl")


def assert_consistent(run: Path) -> dict[str, int]:
    """Whatever moment a run was stopped at, its directory must be one a resume can continue.

    Every checkpoint loads; the trace holds epochs 1..n in order; ``last`` holds epoch n or n - 1
    (the trace record is written just before the checkpoint); ``best`` is not ahead of the trace.
    Returns the checkpoints' epochs.
    """
    epochs = checkpoint_epochs(run)
    records = [r["epoch"] for r in trace(run)]
    assert records == list(range(1, len(records) + 1)), records
    assert records[-1:] == [] or epochs.get("last", 0) in (records[-1] - 1, records[-1]), (epochs, records)
    assert epochs.get("best", 0) <= max(records, default=0) + 1, (epochs, records)
    return epochs


def final_state(run: Path) -> dict[str, Any]:
    """What must not depend on interruptions: metrics, trace (without times) and both checkpoints' weights."""
    metrics = json.loads((run / "metrics.json").read_text())
    steady = {k: v for k, v in metrics.items() if k != "train_seconds_this_session"}
    weights = {
        name: torch.load(run / "checkpoints" / f"{name}.pt", map_location="cpu", weights_only=False)["model"]
        for name in ("last", "best")
    }
    records = [{k: v for k, v in r.items() if k != "seconds"} for r in trace(run)]
    return {"metrics": steady, "trace": records, "weights": weights}


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical metrics, trace and weights (CPU, same config and seed)."""
    x, y = final_state(a), final_state(b)
    assert json.dumps(x["metrics"]) == json.dumps(y["metrics"])
    assert x["trace"] == y["trace"]
    for name in ("last", "best"):
        for key, tensor in x["weights"][name].items():
            assert torch.equal(tensor, y["weights"][name][key]), f"{name}.pt: {key} differs"


def mean_epoch_seconds(run: Path) -> float:
    seconds = [r["seconds"] for r in trace(run)]
    return math.fsum(seconds) / len(seconds)
