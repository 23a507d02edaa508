"""Crash safety of ``mocme train`` through the real command and real signals.

A run is SIGKILLed at random moments and at chosen ones (during validation, half-way through a
checkpoint write, during the final evaluation, before its first checkpoint), resumed each time,
and must end bit-identical (CPU) to an uninterrupted run; after every kill each checkpoint on disk
loads. SIGINT stops with status 130 and one line saying how to continue. A NaN loss stops with
status 2, naming the epoch and the scorer, and keeps the last good checkpoint. An existing run
directory is never replaced without --overwrite.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
import torch

from mocme.config import RunConfig
from mocme.errors import RunDirError
from mocme.rundir import RunDirectory
from tests.helpers.runs import (
    Launcher,
    assert_consistent,
    assert_same_run,
    checkpoint_epochs,
    identity,
    mean_epoch_seconds,
    tiny_config,
    trace,
    wait_until,
)

EPOCHS = 10
RANDOM_SEED = 20250721


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The config and the run directory of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("reference")
    config = tiny_config(folder, EPOCHS)
    launcher = Launcher(folder)
    try:
        done = launcher.run("train", str(config), "--out", str(folder / "run"), "--quiet")
    finally:
        launcher.close()
    assert done.popen.returncode == 0, done.stderr()
    return config, folder / "run"


@pytest.fixture
def launcher(tmp_path):
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.close()


def _kill_at_marker(launcher: Launcher, process) -> None:
    wait_until(launcher.marker.exists, process, what="the fault's pause")
    assert process.kill()


def _kill_at_random(process, run: Path, rng: random.Random, epoch_seconds: float) -> None:
    """SIGKILL after this process replaced last.pt once or twice, plus up to one more epoch's time."""
    last = run / "checkpoints" / "last.pt"
    for _ in range(rng.randint(1, 2)):
        before = identity(last)
        wait_until(lambda before=before: identity(last) != before, process, what="a new last.pt")
    time.sleep(rng.uniform(0, epoch_seconds))
    assert process.kill(), "the run ended before the random kill"


def test_sigkill_anywhere_then_resume_ends_like_an_uninterrupted_run(reference, launcher, tmp_path):
    config, whole = reference
    run = tmp_path / "run"
    rng = random.Random(RANDOM_SEED)
    epoch_seconds = mean_epoch_seconds(whole)
    resume = ("train", "--resume", str(run), "--quiet")
    kills = []

    def last_epoch() -> int:
        return checkpoint_epochs(run).get("last", 0)

    # Killed while validating epoch 1: no checkpoint exists, so the resume starts from scratch.
    _kill_at_marker(launcher, launcher.start("train", str(config), "--out", str(run), "-q", fault="pause:validate:1"))
    assert assert_consistent(run) == {}
    kills.append("validation of epoch 1 (no checkpoint yet)")

    # Killed half-way through the very first checkpoint write: only a temporary file exists.
    _kill_at_marker(launcher, launcher.start(*resume, fault="pause:save:best:1"))
    assert assert_consistent(run) == {}
    assert [p.name[:9] for p in RunDirectory(run).stale_temp_files()] == [".best.pt."]
    kills.append("writing best.pt of epoch 1 (no checkpoint yet)")

    _kill_at_random(launcher.start(*resume), run, rng, epoch_seconds)
    kills.append(f"random, after epoch {assert_consistent(run)['last']}")

    # Killed half-way through writing last.pt: the previous last.pt stays whole.
    before = last_epoch()
    _kill_at_marker(launcher, launcher.start(*resume, fault=f"pause:save:last:{before + 1}"))
    assert assert_consistent(run)["last"] == before
    assert any(p.name.startswith(".last.pt.") for p in RunDirectory(run).stale_temp_files())
    kills.append(f"writing last.pt of epoch {before + 1}")

    _kill_at_random(launcher.start(*resume), run, rng, epoch_seconds)
    kills.append(f"random, after epoch {assert_consistent(run)['last']}")

    before = last_epoch()
    _kill_at_marker(launcher, launcher.start(*resume, fault=f"pause:validate:{before + 1}"))
    assert assert_consistent(run)["last"] == before
    kills.append(f"validation of epoch {before + 1}")

    _kill_at_random(launcher.start(*resume), run, rng, epoch_seconds)
    kills.append(f"random, after epoch {assert_consistent(run)['last']}")

    # Killed while scoring the test split: every epoch is done, metrics.json is not written yet.
    _kill_at_marker(launcher, launcher.start(*resume, fault="pause:evaluate:test"))
    assert assert_consistent(run)["last"] == EPOCHS
    assert not (run / "metrics.json").exists()
    kills.append("final test evaluation")

    done = launcher.run(*resume)
    assert done.popen.returncode == 0, done.stderr()
    assert RunDirectory(run).stale_temp_files() == []
    assert_same_run(run, whole)
    print(f"\n{len(kills)} SIGKILLs survived, then equal to the uninterrupted run:", *kills, sep="\n  ")


def test_sigint_stops_with_a_resume_hint_and_keeps_last(reference, launcher, tmp_path):
    config, whole = reference
    run = tmp_path / "run"
    hint = f"interrupted; continue with: mocme train --resume {run}"

    # Inside epoch 3, after its training steps and before its checkpoint. (A fault pause, not a sleep
    # after the second checkpoint: at a quarter of a second per epoch a loaded machine let the run
    # finish before a timed signal.)
    process = launcher.start("train", str(config), "--out", str(run), "-q", fault="pause:validate:3")
    wait_until(launcher.marker.exists, process, what="the fault's pause")
    assert process.signal(signal.SIGINT)
    assert process.wait_after_signal(60) == 130
    assert process.stderr().splitlines() == [hint]
    assert assert_consistent(run)["last"] >= 2

    # During a checkpoint write: the partial file is removed, the previous last.pt stays.
    before = checkpoint_epochs(run)["last"]
    process = launcher.start("train", "--resume", str(run), "-q", fault=f"pause:save:last:{before + 1}")
    wait_until(launcher.marker.exists, process, what="the fault's pause")
    assert process.signal(signal.SIGINT)
    assert process.wait_after_signal(60) == 130
    assert process.stderr().splitlines() == [hint]
    assert assert_consistent(run)["last"] == before
    assert RunDirectory(run).stale_temp_files() == []

    done = launcher.run("train", "--resume", str(run), "-q")
    assert done.popen.returncode == 0, done.stderr()
    assert_same_run(run, whole)


def test_non_finite_loss_exits_2_naming_epoch_and_scorer_and_keeps_the_last_good_checkpoint(
    reference, launcher, tmp_path
):
    config, _ = reference
    run = tmp_path / "run"
    process = launcher.start("train", str(config), "--out", str(run), "-q", fault="nan:text:3")
    assert process.wait() == 2
    last = run / "checkpoints" / "last.pt"
    assert process.stderr().splitlines() == [
        f"error: epoch 3: the loss of scorer 'text' is nan (first at step 1); {last} keeps epoch 2"
    ]
    epochs = assert_consistent(run)  # also: every checkpoint loads and its weights are finite
    assert epochs["last"] == 2 and epochs["best"] <= 2
    assert [r["epoch"] for r in trace(run)] == [1, 2]
    assert not (run / "metrics.json").exists()


def test_trace_records_gradient_norms(reference):
    _, whole = reference
    for record in trace(whole):
        norms = record["grad_norm"]
        assert 0 < norms["mean"] <= norms["max"] < float("inf"), record["epoch"]


def test_an_existing_run_directory_is_kept_without_overwrite(reference, launcher, tmp_path):
    config, _ = reference
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    process = launcher.run("train", str(config), "--out", str(run), "-q")
    assert process.popen.returncode == 2
    assert process.stderr().splitlines() == [
        f"error: {run}: run directory already exists (use --overwrite to replace it, or --resume {run} to continue it)"
    ]
    assert [p.name for p in run.iterdir()] == ["notes.txt"]


def test_a_creation_killed_before_config_yaml_does_not_block_the_directory(tmp_path):
    # What a SIGKILL between mkdir and the rename of config.yaml leaves behind.
    run = RunDirectory(tmp_path / "run")
    (run.path / "checkpoints").mkdir(parents=True)
    (run.path / ".config.yaml.k3j2x9.tmp").write_text("seed: ")
    run.create(RunConfig())
    assert run.config_path.exists() and run.stale_temp_files() == []

    other = RunDirectory(tmp_path / "other")
    (other.path / "checkpoints").mkdir(parents=True)
    (other.path / "checkpoints" / "model.pt").write_bytes(b"not ours")
    with pytest.raises(RunDirError, match="already exists"):
        other.create(RunConfig())
    assert (other.path / "checkpoints" / "model.pt").read_bytes() == b"not ours"


def test_resume_removes_partial_writes_but_never_a_checkpoint(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.create(RunConfig())
    run.save_checkpoint("last", {"train_state": {"epoch": 1}, "model": {"w": torch.ones(2)}})
    partial = [run.path / "checkpoints" / ".last.pt.ab12cd34.tmp", run.path / ".trace.jsonl.ef56gh78.tmp"]
    for path in partial:
        path.write_bytes(b"\x80half")
    assert run.stale_temp_files() == sorted(partial)
    run.remove_stale_temp_files()
    assert run.stale_temp_files() == []
    assert run.load_checkpoint("last")["train_state"]["epoch"] == 1
