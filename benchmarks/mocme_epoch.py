"""MoCME epoch cost on DB15K (structure + text, dimension 256, K = 3), this version beside the first
working one (commit ``b7a085c``, the first where MoCME trains end to end), in the same run.

Both versions train the same model with the same explicit settings: TuckER heads (relation
dimension 32), complementarity fusion, dropout 0.1; EGNS over 64 sampled negatives, batch 256, Adam
(lr 5e-3), 50 epochs for the EGNS schedule. ``--setting all`` trains as ``configs/db15k.yaml`` does
instead: EGNS over every entity, batch 1,024, label smoothing 0.1, dropout 0.2. Each measurement
runs in a fresh subprocess whose ``PYTHONPATH`` points at one version's ``src``: an untimed warm-up
of 2 steps, then ``--steps`` timed steps of epoch 2 (the EGNS temperature is active; ``--setting recipe``
times the first epoch after ``training.egns.warmup_epochs``, since a warm-up epoch is plain 1vsAll) over a seeded
random subset of the training triples. Candidates are drawn from all 12,842 entities, so a step
costs what it costs in a full epoch; the epoch time is the step time × the steps of a full epoch
(``--steps 0`` times a whole epoch instead). Rounds alternate the versions, and the speed-up is
taken within each round.

``--profile`` also writes a ``torch.profiler`` table (operators by self CPU time) of a few steps of
each version.

The first working version is checked out with ``git worktree add --detach DIR b7a085c`` (done
here when ``--baseline`` does not exist yet). Text features come from
``mocme features text DB15K --data-dir DIR --out FEATURES`` (also run here when missing).

``--setting recipe --dataset NAME`` measures instead what issue 15 asks: a MoCME epoch on the strong
recipe (``configs/<name>-1vsall.yaml``: ComplEx scorer, dimension 1000, entropy-guided 1vsAll, N3,
Adagrad) beside an epoch of its own structural scorer with the same recipe and dimension
(``configs/baselines/<name>-complex-n3.yaml``), float32, both from this checkout, alternating in each
round; the ratio (target ≤ 2.5) is taken within each round.

Usage::

    .venv/bin/python benchmarks/mocme_epoch.py [--data-dir DIR] [--features FILE] [--repeats 3]
        [--steps 40] [--threads 2] [--setting sampled|all] [--profile]
    .venv/bin/python benchmarks/mocme_epoch.py --setting recipe --dataset MKG-Y [--steps 10] [--profile]
        [--set model.expert=linear ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reporting import header, worker_or_driver, write_report

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "mocme_epoch.json"
BASELINE = "b7a085c"  # the first working MoCME (its model and training code are those of 48dcc89)
TARGET = 2.0
MODEL = {"name": "mocme", "dim": 256, "experts": 3, "relation_dim": 32, "interaction": "tucker", "dropout": 0.1}
MODEL.update({"fusion": "complementarity", "expert": "linear"})
# --setting sampled (default): EGNS over 64 sampled negatives; --setting all: the training of
# configs/db15k.yaml, EGNS over every entity (batch 1,024, label smoothing 0.1, dropout 0.2).
SETTINGS = {
    "sampled": (
        MODEL,
        {"negatives": "egns", "pool": "sampled", "num_negatives": 64, "batch_size": 256, "lr": 5e-3, "epochs": 50},
    ),
    "all": (
        MODEL | {"dropout": 0.2},
        {"negatives": "egns", "pool": "all", "batch_size": 1024, "lr": 5e-3, "label_smoothing": 0.1, "epochs": 30},
    ),
}
WARMUP_STEPS = 2
RECIPE_TARGET = 2.5  # a MoCME epoch at most this many epochs of its structural scorer (same recipe)
RECIPE_VERSIONS = ("structure", "mocme")


def _data_dir(explicit: str | None, dataset: str = "DB15K") -> Path:
    candidates = [explicit] if explicit else [os.environ.get("MOCME_DATA"), REPO.parent / "shared" / "data", "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / dataset).is_dir():
            return Path(candidate)
    raise SystemExit(f"{dataset} not found: pass --data-dir (the folder that holds {dataset}/)")


def _ensure_baseline(path: Path) -> None:
    if not (path / "src" / "mocme").is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), BASELINE], cwd=REPO, check=True)


def _ensure_features(args: argparse.Namespace) -> None:
    if not Path(args.features).exists():
        out = Path(args.features).parent
        mocme = [sys.executable, "-m", "mocme", "features", "text", args.dataset, "--data-dir", str(args.data_dir)]
        subprocess.run([*mocme, "--out", str(out), "--quiet"], cwd=REPO, check=True)


# -- worker: runs inside one version ----------------------------------------------------------------
def _recipe_config(args: argparse.Namespace, version: str):
    """The run config of ``version`` (``structure``: ComplEx-N3; ``mocme``: MoCME on that recipe), fp32."""
    from mocme.config import load_config

    name = args.dataset.lower()
    if version == "structure":
        path = REPO / "configs" / "baselines" / f"{name}-complex-n3.yaml"
        overrides = [f"dataset.data_dir={args.data_dir}"]
    else:
        path = REPO / "configs" / f"{name}-1vsall.yaml"
        overrides = [f"dataset.data_dir={args.data_dir}", f"dataset.features.text.path={args.features}", *args.set]
    return load_config(path, [*overrides, "training.precision=fp32"])


def _worker(args: argparse.Namespace) -> None:
    import torch

    import mocme
    from mocme.allocator import keep_freed_memory
    from mocme.data.kg import MultiModalKG
    from mocme.data.loading import DatasetConfig, load_dataset
    from mocme.models import ModelConfig, build_model
    from mocme.training.config import TrainingConfig
    from mocme.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    allocator = keep_freed_memory()  # as every run does (mocme.run.build); MOCME_MALLOC=system: glibc's defaults
    if args.setting == "recipe":
        run_config = _recipe_config(args, args.version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kg = load_dataset(run_config.dataset)
        model_config, config = run_config.model, run_config.training
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kg = load_dataset(
                DatasetConfig(name="DB15K", data_dir=args.data_dir, features={"text": {"path": args.features}})
            )
        model_settings, training_settings = SETTINGS[args.setting]
        if args.version == "current":  # the first working version had fp32 arithmetic only
            training_settings = training_settings | {"precision": args.precision}
        model_config, config = ModelConfig(**model_settings), TrainingConfig(**training_settings)
    full_steps = math.ceil(2 * len(kg.train) / config.batch_size)
    order = torch.randperm(len(kg.train), generator=torch.Generator().manual_seed(0))
    per_step = config.batch_size // 2  # each triple is asked in both directions

    def subset(steps: int) -> MultiModalKG:
        train = kg.train[order[: steps * per_step]] if steps else kg.train
        return MultiModalKG(kg.name, kg.entities, kg.relations, train, kg.valid, kg.test, kg.modalities)

    torch.manual_seed(0)
    model = build_model(model_config, kg)
    # 0-based: the first epoch whose EGNS weights are not uniform (the first working version's warm-up is 1)
    epoch = max(1, config.egns.warmup_epochs) if args.setting == "recipe" else 1
    Trainer(model, subset(WARMUP_STEPS), config, seed=1).train_epoch(epoch)
    timed = subset(args.steps)
    trainer = Trainer(model, timed, config, seed=2)
    steps = math.ceil(2 * len(timed.train) / config.batch_size)
    if args.profile_out:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_epoch(epoch)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=48)
        Path(args.profile_out).write_text(table)
    started, cpu = time.perf_counter(), time.process_time()
    record = trainer.train_epoch(epoch)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = {
        "version": args.version,
        "mocme_path": str(Path(mocme.__file__).parent),
        "steps": steps,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "step_seconds": seconds / steps,
        "epoch_seconds": seconds / steps * full_steps,
        "full_epoch_steps": full_steps,
        "loss": record["loss"],
        "load": os.getloadavg()[0],
        "keeps_freed_memory": allocator,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result))


# -- driver ------------------------------------------------------------------------------------------
def _measure(version: str, args: argparse.Namespace, profile_out: Path | None = None) -> dict[str, Any]:
    src = REPO / "src" if version in ("current", *RECIPE_VERSIONS) else Path(args.baseline) / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--worker", version, "--data-dir", str(args.data_dir)]
    command += ["--features", str(args.features), "--threads", str(args.threads), "--steps", str(args.steps)]
    command += ["--setting", args.setting, "--precision", args.precision, "--dataset", args.dataset]
    command += [f"--set={override}" for override in args.set]
    if profile_out is not None:
        command += ["--profile-out", str(profile_out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"{version} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _alternating_rounds(
    args: argparse.Namespace,
    versions: tuple[str, str],
    key: str,
    label: str,
    compare: Callable[[dict[str, dict[str, Any]]], float],
) -> list[dict[str, Any]]:
    """``args.repeats`` rounds measuring both ``versions``, their order alternating; every run keeps
    its round and the round's comparison ``compare(pair)`` under ``key``."""
    runs: list[dict[str, Any]] = []
    for round_ in range(args.repeats):
        order = versions if round_ % 2 == 0 else versions[::-1]
        pair = {version: _measure(version, args) for version in order}
        value = compare(pair)
        for version in order:
            run = pair[version]
            runs.append({**run, "round": round_, key: value})
            print(
                f"round {round_ + 1} {version:>9}: {run['step_seconds'] * 1000:6.0f} ms/step, epoch "
                f"{run['epoch_seconds']:6.0f} s (cpu {run['cpu_seconds'] / run['steps'] * 1000:.0f} ms/step, "
                f"load {run['load']:.1f})",
                flush=True,
            )
        print(f"round {round_ + 1}: {label} {value:.2f}×", flush=True)
    return runs


def _medians(runs: list[dict[str, Any]], versions: tuple[str, ...]) -> dict[str, Any]:
    """Median step and epoch seconds of each version's runs."""
    return {
        version: {
            "step_seconds_median": statistics.median(r["step_seconds"] for r in runs if r["version"] == version),
            "epoch_seconds_median": statistics.median(r["epoch_seconds"] for r in runs if r["version"] == version),
        }
        for version in versions
    }


def _drive_recipe(args: argparse.Namespace) -> int:
    """MoCME on the strong recipe beside its structural scorer (ComplEx-N3), same dimension, fp32."""
    args.data_dir = _data_dir(args.data_dir, args.dataset)
    _ensure_features(args)
    runs = _alternating_rounds(
        args,
        RECIPE_VERSIONS,
        "ratio",
        "MoCME / structure",
        lambda p: p["mocme"]["epoch_seconds"] / p["structure"]["epoch_seconds"],
    )
    profiles = {}
    if args.profile:
        for version in RECIPE_VERSIONS:
            path = Path(args.output).with_name(f"mocme_epoch_profile_recipe_{args.dataset}_{version}.txt")
            _measure(version, args, path)
            profiles[version] = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    ratios = [r["ratio"] for r in runs if r["version"] == "mocme"]
    summary: dict[str, Any] = _medians(runs, RECIPE_VERSIONS)
    summary |= {"ratio_median": statistics.median(ratios), "ratio_max": max(ratios), "target": RECIPE_TARGET}
    configs = {v: _recipe_config(args, v) for v in RECIPE_VERSIONS}
    report = {
        **header(args.threads),
        "setting": "recipe",
        "dataset": args.dataset,
        "precision": "fp32",
        "overrides": args.set,
        "configs": {v: c.model_dump(mode="json", include={"model", "training"}) for v, c in configs.items()},
        "runs": runs,
        "summary": summary,
        "profiles": profiles,
    }
    write_report(args.output, report)
    print(
        f"{args.dataset}: ComplEx-N3 {summary['structure']['epoch_seconds_median']:.0f} s/epoch, MoCME "
        f"{summary['mocme']['epoch_seconds_median']:.0f} s/epoch: {summary['ratio_median']:.2f}× "
        f"(max {summary['ratio_max']:.2f}×, target ≤ {RECIPE_TARGET:g}×)"
    )
    return 0


def _drive(args: argparse.Namespace) -> int:
    if args.setting == "recipe":
        return _drive_recipe(args)
    args.data_dir = _data_dir(args.data_dir)
    _ensure_baseline(Path(args.baseline))
    _ensure_features(args)
    runs = _alternating_rounds(
        args,
        ("first", "current"),
        "speedup",
        "speed-up",
        lambda p: p["first"]["epoch_seconds"] / p["current"]["epoch_seconds"],
    )
    profiles = {}
    if args.profile:
        for version in ("first", "current"):
            suffix = "" if args.setting == "sampled" else f"_{args.setting}"
            suffix += "" if args.precision == "fp32" or version == "first" else f"_{args.precision}"
            path = Path(args.output).with_name(f"mocme_epoch_profile_{version}{suffix}.txt")
            _measure(version, args, path)
            profiles[version] = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
    speedups = [r["speedup"] for r in runs if r["version"] == "current"]
    summary: dict[str, Any] = _medians(runs, ("first", "current"))
    summary["speedup_median"] = statistics.median(speedups)
    summary["speedup_min"] = min(speedups)
    summary["target"] = TARGET
    report = {
        **header(args.threads),
        "setting": args.setting,
        "precision": args.precision,
        "model": SETTINGS[args.setting][0],
        "training": SETTINGS[args.setting][1],
        "baseline": {"commit": BASELINE, "path": str(args.baseline)},
        "runs": runs,
        "summary": summary,
        "profiles": profiles,
    }
    write_report(args.output, report)
    print(
        f"first working: {summary['first']['epoch_seconds_median']:.0f} s/epoch, current: "
        f"{summary['current']['epoch_seconds_median']:.0f} s/epoch, speed-up {summary['speedup_median']:.2f}× "
        f"(min {summary['speedup_min']:.2f}×, target ≥ {TARGET:g}×)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="Folder holding DB15K/ (default: $MOCME_DATA, ../shared/data, ./data).")
    parser.add_argument("--dataset", default="DB15K", help="--setting recipe: the benchmark (MKG-Y, DB15K, ...).")
    parser.add_argument(
        "--features", help="Text features file (default: /tmp/mocme-features/<dataset>/text.safetensors)."
    )
    parser.add_argument("--baseline", default="/tmp/first-working", help=f"Checkout of commit {BASELINE}.")
    parser.add_argument(
        "--setting",
        choices=(*SETTINGS, "recipe"),
        default="sampled",
        help="Negatives and batch (see SETTINGS); recipe: MoCME beside ComplEx-N3 on the strong recipe.",
    )
    parser.add_argument("--repeats", type=int, default=3, help="Rounds (versions alternate).")
    parser.add_argument("--steps", type=int, default=40, help="Timed steps per measurement (0: a full epoch).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every measurement.")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="This version's training arithmetic (training.precision); the first working one is always fp32.",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        help="--setting recipe: override in MoCME's config, e.g. --set model.expert=linear (repeatable).",
    )
    parser.add_argument("--profile", action="store_true", help="Also write a torch.profiler table per version.")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON report.")
    parser.add_argument(
        "--worker", choices=("first", "current", *RECIPE_VERSIONS), dest="version", help=argparse.SUPPRESS
    )
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.features = args.features or f"/tmp/mocme-features/{args.dataset}/text.safetensors"
    if args.setting == "recipe" and args.output == str(DEFAULT_OUTPUT):
        args.output = str(DEFAULT_OUTPUT.with_name(f"mocme_epoch_recipe_{args.dataset}.json"))
    return worker_or_driver(args, "version", _worker, _drive)


if __name__ == "__main__":
    sys.exit(main())
