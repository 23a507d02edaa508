"""Evaluation speed: mocme's filtered evaluator beside PyKEEN's and beside the matrix-multiply floor.

Full filtered evaluation, both directions, of a split (FB15K-237 test by default: 20,466 triples,
40,932 queries, 14,541 entities) for a DistMult model with seeded random weights, three ways:

- ``mocme``: ``mocme.evaluation.evaluate`` (filter index built inside the timed call).
- ``pykeen``: PyKEEN's ``RankBasedEvaluator`` on a PyKEEN DistMult holding the same weights,
  filtered with train + valid + test, PyKEEN's default batch size, no progress bar.
- ``floor``: only the ``(B, d) x (d, N)`` matrix multiplies that produce the same score blocks, at
  mocme's batch size, into a preallocated output.
- ``floor_alloc``: the same matrix multiplies as ``q @ E.T``, each into a fresh output, which is what
  a model's ``score_all`` does (fresh ``(B, N)`` blocks are page-faulted in on every call).

mocme's model answers head queries ``(?, r, t)`` as ``(t, r + R, ?)``; its reciprocal relation
vectors are set equal to the forward ones, which for DistMult gives PyKEEN's head scores exactly.

Each measurement runs in a fresh subprocess (one cold call each), so that its peak resident memory
is its own; rounds alternate the sides so that load on the machine affects them alike, and the best
of the rounds is reported. The ratio to PyKEEN pairs the two sides within each round PyKEEN ran in
(its rounds take minutes, so it runs fewer), the median of those; beside it, the ratio of the best
rounds. Prints a table and writes JSON (``--output``).

Usage::

    .venv/bin/python benchmarks/eval_speed.py [--data-dir DIR] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from reporting import worker_or_driver, write_report

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "eval_speed.json"
SIDES = ("mocme", "floor", "floor_alloc", "pykeen")
LABELS = {
    "mocme": "mocme evaluate",
    "floor": "matrix-multiply floor",
    "floor_alloc": "  same, fresh output blocks",
    "pykeen": "PyKEEN RankBasedEvaluator",
}
TARGETS = {"pykeen_over_mocme_min": 20.0, "mocme_over_floor_max": 2.0, "mocme_peak_rss_mb_max": 1536.0}
# Agreement of mocme and PyKEEN: MRR and Hits@k absolutely, MR relatively. A Hits@k tolerance of a
# few queries (1/40,932 each) allows near-ties that the two summation orders break differently.
TOLERANCES = {"inverse_harmonic_mean_rank": 1e-5, "hits": 1e-4, "arithmetic_mean_rank": 1e-5}


def _data_dir(explicit: str | None, dataset: str) -> Path | None:
    """The first data directory that holds ``dataset``: the flag, $MOCME_DATA, ../shared/data, ./data."""
    from mocme.data.registry import benchmark

    folder = benchmark(dataset).folder
    candidates = [explicit] if explicit else [os.environ.get("MOCME_DATA"), REPO.parent / "shared" / "data", "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / folder).is_dir():
            return Path(candidate)
    return None


# -- workers: one measurement each, in a fresh process ---------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _setup(args: argparse.Namespace) -> tuple[Any, Any]:
    """The dataset (filter index not yet built) and the seeded DistMult model."""
    import torch

    from mocme.data import load_benchmark
    from mocme.models import StructuralModel
    from mocme.models.interactions import DistMult

    torch.set_num_threads(args.threads)
    kg = load_benchmark(args.dataset, args.data_dir, text=False)
    torch.manual_seed(args.seed)
    interaction = DistMult(args.dim, 2 * kg.num_relations)
    model = StructuralModel(kg.num_entities, kg.num_relations, interaction)
    with torch.no_grad():  # reciprocal r + R shares r's vector: DistMult is symmetric in h and t
        interaction.relation[kg.num_relations :] = interaction.relation[: kg.num_relations]
    return kg, model


def _run_mocme(args: argparse.Namespace) -> dict[str, Any]:
    from mocme.evaluation import evaluate
    from mocme.evaluation.evaluator import query_batch_size
    from mocme.evaluation.metrics import flatten

    kg, model = _setup(args)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    result = evaluate(model, kg, args.split)
    seconds = time.perf_counter() - start
    metrics = flatten({side: result[side] for side in ("both", "head", "tail")})
    batch = query_batch_size(kg.num_entities)
    return {"seconds": seconds, "rss_before_mb": rss_before, "metrics": metrics, "batch_size": batch}


def _run_floor(args: argparse.Namespace, allocate: bool = False) -> dict[str, Any]:
    import torch

    from mocme.evaluation.evaluator import query_batch_size

    kg, model = _setup(args)
    entities = model.entity.detach()
    num_queries = 2 * len(kg.split(args.split))
    batch = query_batch_size(kg.num_entities)
    sizes = [batch] * (num_queries // batch) + ([num_queries % batch] if num_queries % batch else [])
    queries = torch.randn(batch, args.dim)
    out = None if allocate else torch.empty(batch, kg.num_entities)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    for size in sizes:
        if allocate:
            queries[:size] @ entities.T
        else:
            torch.mm(queries[:size], entities.T, out=out[:size])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rss_before_mb": rss_before, "batch_size": batch, "gemms": len(sizes)}


def _run_pykeen(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    import torch
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.models import DistMult as PyKeenDistMult
    from pykeen.triples import CoreTriplesFactory

    logging.getLogger("pykeen").setLevel(logging.ERROR)  # its CPU batch-size notice, on every run
    kg, model = _setup(args)
    factory = CoreTriplesFactory.create(kg.train, num_entities=kg.num_entities, num_relations=kg.num_relations)
    peer = PyKeenDistMult(triples_factory=factory, embedding_dim=args.dim, random_seed=args.seed)
    with torch.no_grad():
        peer.entity_representations[0]._embeddings.weight.copy_(model.entity)
        peer.relation_representations[0]._embeddings.weight.copy_(model.interaction.relation[: kg.num_relations])
    del model
    others = [kg.split(name) for name in ("train", "valid", "test") if name != args.split]
    evaluator = RankBasedEvaluator(filtered=True)
    rss_before = _peak_rss_mb()
    start = time.perf_counter()
    result = evaluator.evaluate(peer, kg.split(args.split), additional_filter_triples=others, use_tqdm=False)
    seconds = time.perf_counter() - start
    flat = result.to_flat_dict()
    return {"seconds": seconds, "rss_before_mb": rss_before, "metrics": flat}


WORKERS = {
    "mocme": _run_mocme,
    "floor": _run_floor,
    "floor_alloc": lambda args: _run_floor(args, allocate=True),
    "pykeen": _run_pykeen,
}


def _worker(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    result = WORKERS[args.worker](args)
    result.update(peak_rss_mb=_peak_rss_mb(), load_before=load, load_after=os.getloadavg()[0])
    print(json.dumps(result))


# -- driver ----------------------------------------------------------------------------------------


def _measure(side: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", side, *_shared_flags(args)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"error: the {side} run failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shared_flags(args: argparse.Namespace) -> list[str]:
    return [
        f"--data-dir={args.data_dir}",
        f"--dataset={args.dataset}",
        f"--split={args.split}",
        f"--dim={args.dim}",
        f"--threads={args.threads}",
        f"--seed={args.seed}",
    ]


def _agreement(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, Any]:
    """Largest difference per metric kind over sides and rank types, and whether all are in tolerance."""
    worst: dict[str, float] = {}
    for key, value in ours.items():
        if key.endswith(".count"):
            continue
        metric = key.rsplit(".", 1)[1]
        kind = "hits" if metric.startswith("hits_at_") else metric
        diff = abs(theirs[key] - value)
        if kind == "arithmetic_mean_rank":
            diff /= abs(value)
        worst[kind] = max(worst.get(kind, 0.0), diff)
    return {"max_difference": worst, "agree": all(worst[k] <= TOLERANCES[k] for k in worst)}


def _machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}
    try:
        import pykeen

        info["pykeen"] = pykeen.get_version()
    except ImportError:
        info["pykeen"] = None
    return info


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [run["seconds"] for run in runs]
    return {
        "best_seconds": min(seconds),
        "seconds": seconds,
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "rss_before_mb": max(run["rss_before_mb"] for run in runs),
        "load_average": [[run["load_before"], run["load_after"]] for run in runs],
        **{k: runs[0][k] for k in ("batch_size", "gemms") if k in runs[0]},
    }


def _table(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        f"{cfg['dataset']} {cfg['split']}: {cfg['triples']:,} triples ({2 * cfg['triples']:,} queries), "
        f"{cfg['entities']:,} entities; DistMult d={cfg['dim']}, random weights; "
        f"{cfg['threads']} threads; best of {cfg['repeats']} (PyKEEN: {cfg['pykeen_repeats']})",
        "",
        f"{'':28s} {'best s':>9s}  {'runs (s)':28s} {'peak RSS MB':>11s} {'before eval':>11s}",
    ]
    for side, summary in report["sides"].items():
        runs = " ".join(f"{s:.2f}" for s in summary["seconds"])
        lines.append(
            f"{LABELS[side]:28s} {summary['best_seconds']:9.2f}  {runs:28s} "
            f"{summary['peak_rss_mb']:11.0f} {summary['rss_before_mb']:11.0f}"
        )
    lines.append("")
    for name, value in report["ratios"].items():
        lines.append(f"{name}: {value:.2f}x")
    for name, met in report["targets_met"].items():
        lines.append(f"target {name} = {TARGETS[name]:g}: {'met' if met else 'MISSED'}")
    if "agreement" in report:
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in report["agreement"]["max_difference"].items())
        verdict = "agree" if report["agreement"]["agree"] else "DISAGREE"
        lines.append(f"mocme vs PyKEEN metrics {verdict} (largest difference: {diffs}; MR relative)")
    mrr = report["metrics"]["both.realistic.inverse_harmonic_mean_rank"]
    lines.append(f"MRR (both, realistic) = {mrr:.6f}")
    return "\n".join(lines)


def _drive(args: argparse.Namespace) -> int:
    sides = [side for side in SIDES if not (side == "pykeen" and args.pykeen_repeats == 0)]
    if "pykeen" in sides:
        try:
            import pykeen  # noqa: F401
        except ImportError:
            print("PyKEEN is not installed: measuring mocme and the floor only")
            sides.remove("pykeen")
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for round_ in range(max(args.repeats, args.pykeen_repeats)):
        for side in sides:
            wanted = args.pykeen_repeats if side == "pykeen" else args.repeats
            if round_ < wanted:
                runs[side].append(_measure(side, args))
                print(f"round {round_ + 1}: {side} {runs[side][-1]['seconds']:.2f} s", flush=True)

    from mocme.data import load_benchmark

    kg = load_benchmark(args.dataset, args.data_dir, text=False)
    report: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "benchmarks/eval_speed.py", *sys.argv[1:]]),
        "machine": _machine(),
        "config": {
            "dataset": args.dataset,
            "split": args.split,
            "triples": len(kg.split(args.split)),
            "entities": kg.num_entities,
            "dim": args.dim,
            "threads": args.threads,
            "seed": args.seed,
            "repeats": args.repeats,
            "pykeen_repeats": args.pykeen_repeats if "pykeen" in sides else 0,
        },
        "sides": {side: _summary(runs[side]) for side in sides},
        "metrics": runs["mocme"][0]["metrics"],
        "targets": TARGETS,
    }
    best = {side: summary["best_seconds"] for side, summary in report["sides"].items()}
    report["ratios"] = {
        "mocme / floor": best["mocme"] / best["floor"],
        "mocme / floor with fresh outputs": best["mocme"] / best["floor_alloc"],
    }
    met = {
        "mocme_over_floor_max": best["mocme"] / best["floor"] <= TARGETS["mocme_over_floor_max"],
        "mocme_peak_rss_mb_max": report["sides"]["mocme"]["peak_rss_mb"] < TARGETS["mocme_peak_rss_mb_max"],
    }
    if "pykeen" in sides:
        # within each round both sides ran (PyKEEN runs in fewer), under the same load
        rounds = [report["sides"][side]["seconds"] for side in ("pykeen", "mocme")]
        shared = min(map(len, rounds))
        paired = [k / m for k, m in zip(rounds[0][:shared], rounds[1][:shared], strict=True)]
        report["ratios"]["PyKEEN / mocme"] = statistics.median(paired)
        report["ratios"]["PyKEEN / mocme, best rounds"] = best["pykeen"] / best["mocme"]
        met["pykeen_over_mocme_min"] = statistics.median(paired) >= TARGETS["pykeen_over_mocme_min"]
        report["agreement"] = _agreement(runs["mocme"][0]["metrics"], runs["pykeen"][0]["metrics"])
    report["targets_met"] = met
    print()
    print(_table(report))
    write_report(args.output, report)
    print(f"\nwrote {args.output}")
    return 0 if report.get("agreement", {"agree": True})["agree"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="benchmark data (default: $MOCME_DATA, ../shared/data, ./data)")
    parser.add_argument("--dataset", default="FB15K-237")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for every side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of mocme and of the floor (best counts)")
    parser.add_argument("--pykeen-repeats", type=int, default=3, help="runs of PyKEEN (0 skips it)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    data_dir = _data_dir(args.data_dir, args.dataset)
    if data_dir is None:
        print(f"skipping: benchmark data for {args.dataset} not found (pass --data-dir or set MOCME_DATA)")
        return 0
    args.data_dir = str(data_dir)
    return worker_or_driver(args, "worker", _worker, _drive)


if __name__ == "__main__":
    sys.exit(main())
