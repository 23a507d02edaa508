"""Training throughput: mocme's trainer beside PyKEEN 1.11's training loops, on FB15K-237.

Two settings, with the same data, model size, batch and optimiser (Adam, lr 1e-3) on both sides:

- ``slcwa``: sampled negatives. TransE (L2) and DistMult, dimension 200, batch 1024 positives, 32
  uniform negatives per positive. mocme: ``training.negatives=uniform`` (negatives that hit a known
  training answer are redrawn); PyKEEN: ``SLCWATrainingLoop`` with ``BasicNegativeSampler``
  (``num_negs_per_pos=32``, unfiltered) and ``BCEWithLogitsLoss``.
- ``lcwa``: 1-N, every query scored against all 14,541 entities. TuckER (relation dimension 32, no
  dropout or batch norm) and DistMult, dimension 200, batch 1024 queries, binary cross-entropy.
  mocme: ``training.negatives=k_vs_all``; PyKEEN: ``LCWATrainingLoop`` over inverse triples with
  ``BCEWithLogitsLoss``. PyKEEN materialises ``batch × entities × dim`` tensors here (12 GB at
  batch 1024), so it runs with ``sub_batch_size`` (gradients accumulated over sub-batches: the same
  updates as batch 1024) to fit in memory. PyKEEN's automatic memory optimisation is off on both
  loops: on a CPU it probes by allocating the full batch (22 GB here) and then ignores the
  sub-batch size.

Throughput is positive training triples per second. A positive is one (query, answer) pair: mocme
asks every triple in both directions each epoch (the tail query and the reciprocal head query),
each with its own negatives; PyKEEN's sLCWA takes every triple once (each negative corrupts the
head or the tail). In 1-N both sides cover every triple in both directions per epoch.

Both sides train on the same random subset of the training triples (all entities and relations
kept, so every batch costs what it costs on the full data): an untimed warm-up epoch over 1,024
triples, then one timed epoch.
Each measurement runs in a fresh subprocess with the same thread count; rounds alternate the sides
so that load from other jobs affects both alike, and the ratio is taken within each round.

Usage::

    .venv/bin/python benchmarks/train_speed.py [--data-dir DIR] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from reporting import header, worker_or_driver, write_report

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "train_speed.json"
SETTINGS = {"slcwa": ("transe", "distmult"), "lcwa": ("tucker", "distmult")}
TARGETS = {"slcwa": 2.5, "lcwa": 10.0}
DIM, NEGATIVES, BATCH, LR, RELATION_DIM = 200, 32, 1024, 1e-3, 32
WARMUP = 1024  # triples of the untimed warm-up epoch


def _data_dir(explicit: str | None) -> Path:
    candidates = [explicit] if explicit else [os.environ.get("MOCME_DATA"), REPO.parent / "shared" / "data", "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "FB15K-237").is_dir():
            return Path(candidate)
    raise SystemExit("FB15K-237 not found: pass --data-dir (the folder that holds FB15K-237/)")


def _subsets(args: argparse.Namespace):
    """FB15K-237 with its training split cut to ``WARMUP`` and to ``args.triples`` random triples (seeded)."""
    import torch

    from mocme.data.kg import MultiModalKG
    from mocme.data.loading import DatasetConfig, load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg = load_dataset(DatasetConfig(name="FB15K-237", data_dir=args.data_dir))
    order = torch.randperm(len(kg.train), generator=torch.Generator().manual_seed(0))
    return [
        MultiModalKG(kg.name, kg.entities, kg.relations, kg.train[order[:size]], kg.valid, kg.test)
        for size in (WARMUP, args.triples)
    ]


def _run_mocme(args: argparse.Namespace, warmup, kg) -> dict[str, Any]:
    import torch

    from mocme.models import ModelConfig, build_model
    from mocme.training.config import TrainingConfig
    from mocme.training.trainer import Trainer

    torch.manual_seed(0)
    model = build_model(ModelConfig(name=args.model, dim=DIM, relation_dim=RELATION_DIM, dropout=0.0), kg)
    negatives = "uniform" if args.setting == "slcwa" else "k_vs_all"
    config = TrainingConfig(negatives=negatives, num_negatives=NEGATIVES, batch_size=BATCH, lr=LR, memory_mb=None)
    Trainer(model, warmup, config).train_epoch(0)
    trainer = Trainer(model, kg, config)
    started, cpu = time.perf_counter(), time.process_time()
    record = trainer.train_epoch(1)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "positives": 2 * len(kg.train), "loss": record["loss"]}


def _run_pykeen(args: argparse.Namespace, warmup, kg) -> dict[str, Any]:
    import torch
    from pykeen.models import DistMult, TransE, TuckER
    from pykeen.training import LCWATrainingLoop, SLCWATrainingLoop
    from pykeen.triples import CoreTriplesFactory

    lcwa = args.setting == "lcwa"
    warmup_factory, factory = (
        CoreTriplesFactory.create(
            mapped_triples=graph.train,
            num_entities=graph.num_entities,
            num_relations=graph.num_relations,
            create_inverse_triples=lcwa,
        )
        for graph in (warmup, kg)
    )
    common = {"triples_factory": factory, "embedding_dim": DIM, "random_seed": 0, "loss": "BCEWithLogits"}
    if args.model == "transe":
        model = TransE(scoring_fct_norm=2, **common)
    elif args.model == "distmult":
        model = DistMult(**common)
    else:
        model = TuckER(
            relation_dim=RELATION_DIM,
            dropout_0=0.0,
            dropout_1=0.0,
            dropout_2=0.0,
            apply_batch_normalization=False,
            **common,
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    if lcwa:
        loop = LCWATrainingLoop(
            model=model, triples_factory=factory, optimizer=optimizer, automatic_memory_optimization=False
        )
        extra = {"sub_batch_size": args.sub_batch}
    else:
        loop = SLCWATrainingLoop(
            model=model,
            triples_factory=factory,
            optimizer=optimizer,
            negative_sampler="basic",
            negative_sampler_kwargs={"num_negs_per_pos": NEGATIVES},
            automatic_memory_optimization=False,
        )
        extra = {}
    kwargs = {"num_epochs": 1, "batch_size": BATCH, "use_tqdm": False, "use_tqdm_batch": False, **extra}
    loop.train(triples_factory=warmup_factory, **kwargs)
    started, cpu = time.perf_counter(), time.process_time()
    losses = loop.train(triples_factory=factory, continue_training=True, **{**kwargs, "num_epochs": 2})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    positives = 2 * len(kg.train) if lcwa else len(kg.train)
    return {"seconds": seconds, "cpu_seconds": cpu, "positives": positives, "loss": losses[-1] if losses else None}


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    warmup, kg = _subsets(args)
    load = os.getloadavg()[0]
    result = (_run_mocme if args.side == "mocme" else _run_pykeen)(args, warmup, kg)
    result.update(
        side=args.side,
        setting=args.setting,
        model=args.model,
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        load_before=load,
        load_after=os.getloadavg()[0],
    )
    result["positives_per_second"] = result["positives"] / result["seconds"]
    print(json.dumps(result))


def _measure(side: str, setting: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    triples = args.triples if setting == "slcwa" else args.lcwa_triples
    command = [sys.executable, __file__, "--worker", side, "--setting", setting, "--model", model]
    command += ["--data-dir", str(args.data_dir), "--threads", str(args.threads), "--triples", str(triples)]
    command += ["--sub-batch", str(args.sub_batch)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _drive(args: argparse.Namespace) -> int:
    args.data_dir = _data_dir(args.data_dir)
    runs: list[dict[str, Any]] = []
    for setting, models in SETTINGS.items():
        if args.settings and setting not in args.settings:
            continue
        for model in models:
            for round_ in range(args.repeats):
                sides = ("mocme", "pykeen") if round_ % 2 == 0 else ("pykeen", "mocme")
                pair = {side: _measure(side, setting, model, args) for side in sides}
                ratio = pair["mocme"]["positives_per_second"] / pair["pykeen"]["positives_per_second"]
                for side, run in pair.items():
                    runs.append({**run, "round": round_, "ratio": ratio})
                    print(
                        f"{setting} {model} round {round_ + 1} {side}: {run['positives_per_second']:9.0f} positives/s "
                        f"({run['seconds']:.1f} s, cpu {run['cpu_seconds']:.1f} s, load {run['load_before']:.1f}, "
                        f"rss {run['peak_rss_mb']:.0f} MB)",
                        flush=True,
                    )
                print(f"{setting} {model} round {round_ + 1}: mocme / PyKEEN = {ratio:.2f}", flush=True)
    report = {
        **header(args.threads),
        "settings": {"dim": DIM, "negatives": NEGATIVES, "batch": BATCH, "lr": LR, "relation_dim": RELATION_DIM},
        "triples": {"slcwa": args.triples, "lcwa": args.lcwa_triples},
        "pykeen_sub_batch": args.sub_batch,
        "runs": runs,
        "summary": _summary(runs),
    }
    write_report(args.output, report)
    print(_table(report["summary"]))
    return 0


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["setting"], r["model"]) for r in runs}, key=lambda k: (list(SETTINGS).index(k[0]), k[1]))
    for setting, model in keys:
        mine = [r for r in runs if (r["setting"], r["model"], r["side"]) == (setting, model, "mocme")]
        peer = [r for r in runs if (r["setting"], r["model"], r["side"]) == (setting, model, "pykeen")]
        ratios = [r["ratio"] for r in mine]
        rows.append(
            {
                "setting": setting,
                "model": model,
                "mocme_positives_per_second": statistics.median(r["positives_per_second"] for r in mine),
                "pykeen_positives_per_second": statistics.median(r["positives_per_second"] for r in peer),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "target": TARGETS[setting],
            }
        )
    return rows


def _table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | model | mocme positives/s | PyKEEN positives/s | mocme / PyKEEN (median, min) | target |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in summary:
        lines.append(
            f"| {row['setting']} | {row['model']} | {row['mocme_positives_per_second']:,.0f} | "
            f"{row['pykeen_positives_per_second']:,.0f} | {row['ratio_median']:.1f}× ({row['ratio_min']:.1f}×) | "
            f"≥ {row['target']:g}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="Folder holding FB15K-237/ (default: $MOCME_DATA, ../shared/data, ./data).")
    parser.add_argument("--repeats", type=int, default=3, help="Rounds per model (sides alternate).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every measurement.")
    parser.add_argument("--triples", type=int, default=30720, help="Training triples in the sLCWA subset.")
    parser.add_argument("--lcwa-triples", type=int, default=2048, help="Training triples in the 1-N subset.")
    parser.add_argument("--sub-batch", type=int, default=64, help="PyKEEN LCWA sub-batch (memory).")
    parser.add_argument("--settings", nargs="*", choices=list(SETTINGS), help="Only these settings.")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON report.")
    parser.add_argument("--worker", choices=("mocme", "pykeen"), dest="side", help=argparse.SUPPRESS)
    parser.add_argument("--setting", choices=list(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    return worker_or_driver(parser.parse_args(argv), "side", _worker, _drive)


if __name__ == "__main__":
    sys.exit(main())
