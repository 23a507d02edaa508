"""Data-parallel training: 2 CPU processes (torchrun, gloo) end where one process with the same
effective batch ends; rank 0 alone writes the run directory; evaluation gathers every shard."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest
import yaml

from mocme.cli import main
from mocme.errors import ConfigError, RunDirError
from mocme.pipeline import resume
from mocme.training.distributed import Distributed
from mocme.training.trainer import global_batches

CONFIG = {
    "seed": 5,
    "dataset": {"synthetic": {"num_entities": 150, "num_relations": 3}},
    "model": {"dim": 12, "relation_dim": 4, "dropout": 0.0},
    "training": {"epochs": 3, "eval_every": 1, "num_negatives": 16, "lr": 0.01},
}
BATCH_PER_PROCESS = 32


def _config(tmp_path, batch_size: int, **training) -> str:
    config = {**CONFIG, "training": {**CONFIG["training"], "batch_size": batch_size, **training}}
    path = tmp_path / f"config-{batch_size}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _run(command: list[str], env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize(
    "negatives",
    [
        {"negatives": "egns"},
        {"negatives": "egns", "egns": {"selection": "sample", "keep": 8, "warmup_epochs": 0}},
        {"negatives": "k_vs_all"},
    ],
    ids=["egns", "egns-sample", "k_vs_all"],
)
def test_two_gloo_processes_match_one_process_with_the_same_effective_batch(tmp_path, negatives):
    two = tmp_path / "two"
    done = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "mocme",
            "train",
            _config(tmp_path, BATCH_PER_PROCESS, **negatives),
            "--out",
            str(two),
            "--distributed",
        ]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # only rank 0 reports
    assert done.stderr.count("epoch 1: loss") == 1  # and prints the epoch lines (no terminal: no bars)
    one = tmp_path / "one"
    config = _config(tmp_path, 2 * BATCH_PER_PROCESS, **negatives)
    single = _run([sys.executable, "-m", "mocme", "train", config, "--out", str(one), "--quiet"])
    assert single.returncode == 0, single.stderr[-3000:]

    trace_two = [json.loads(line) for line in (two / "trace.jsonl").read_text().splitlines()]
    trace_one = [json.loads(line) for line in (one / "trace.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in trace_two] == [1, 2, 3]  # one writer
    for a, b in zip(trace_two, trace_one, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    metrics_two = json.loads((two / "metrics.json").read_text())
    metrics_one = json.loads((one / "metrics.json").read_text())
    for split in ("valid", "test"):
        assert metrics_two[split]["both"]["count"] == metrics_one[split]["both"]["count"]  # every shard gathered
        for name, value in metrics_one[split]["both"]["realistic"].items():
            assert metrics_two[split]["both"]["realistic"][name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_each_process_takes_an_even_share_of_the_global_batch():
    for world in (1, 2, 3):
        for start, end in ((0, 64), (64, 71), (5, 6)):
            shares = [Distributed(rank, world, rank).share(start, end) for rank in range(world)]
            assert shares[0][0] == start and shares[-1][1] == end
            assert all(a[1] == b[0] for a, b in itertools.pairwise(shares))
            sizes = [b - a for a, b in shares]
            assert max(sizes) - min(sizes) <= 1


def test_a_last_batch_too_small_to_share_joins_the_one_before():
    assert global_batches(299, 149, 1) == [(0, 149), (149, 298), (298, 299)]  # one process: as before
    assert global_batches(299, 149, 2) == [(0, 299)]  # a last batch of 1 query for 2 processes joins
    assert global_batches(301, 50, 3) == [(0, 150), (150, 301)]
    assert global_batches(300, 50, 3) == [(0, 150), (150, 300)]
    assert global_batches(0, 50, 2) == []
    with pytest.raises(ConfigError, match="1 training queries cannot be shared among 2 processes"):
        global_batches(1, 50, 2)


@pytest.mark.slow
def test_two_processes_train_when_the_last_global_batch_has_one_query(tmp_path):
    """k_vs_all on this graph has 299 distinct queries: with 149 per process, the epoch ends on 1 query."""
    config = {
        "seed": 1,
        "dataset": {"synthetic": {"num_entities": 60, "num_relations": 3}},
        "model": {"dim": 8, "relation_dim": 4},
        "training": {"epochs": 1, "negatives": "k_vs_all", "batch_size": 149},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "mocme"]
    done = _run([*command, "train", str(path), "--out", str(tmp_path / "run"), "--distributed", "--quiet"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "metadata.json").read_text())["processes"] == 2


def test_a_parameter_without_a_gradient_on_every_process_keeps_none(monkeypatch):
    """As in one process, where the optimiser skips it (no weight decay, no moments)."""
    import torch
    import torch.distributed as dist

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(29_500 + os.getpid() % 1000))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
        used.grad = torch.full((3,), 2.0)
        losses = Distributed(0, 1, 0).average_gradients([used, unused], torch.tensor([0.5, 1.5]))
        assert unused.grad is None and used.grad.tolist() == [2.0, 2.0, 2.0] and losses.tolist() == [0.5, 1.5]
    finally:
        dist.destroy_process_group()


def test_resuming_with_another_number_of_processes_is_refused(tmp_path):
    """The global batch is processes × batch_size: a resume by another count would change it mid-run."""
    import torch

    run_dir = tmp_path / "run"
    tiny = ["--set", "dataset.synthetic.num_entities=60", "--set", "model.dim=8", "--set", "model.relation_dim=4"]
    assert main(["train", "--quiet", "--out", str(run_dir), *tiny, "--set", "training.epochs=2"]) == 0
    (run_dir / "metrics.json").unlink()  # as if killed after its last checkpoint
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert state["train_state"]["processes"] == 1
    state["train_state"]["processes"] = 2
    torch.save(state, run_dir / "checkpoints" / "last.pt")
    with pytest.raises(RunDirError, match="trained by 2 process"):
        resume(run_dir)


def test_distributed_outside_torchrun_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    status = main(["train", "--distributed", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: --distributed needs the environment that torchrun sets")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
