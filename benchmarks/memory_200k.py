"""Peak memory of 1-N training and of evaluation on a 200,000-entity graph, with and without a budget.

The graph is random (seeded): 200,000 entities, 50 relations, 1,000,000 training triples, and a
64-d feature modality that 80% of the entities have. Each measurement is a fresh process run under
``/usr/bin/time -v``, whose "Maximum resident set size" is the figure reported:

- ``baseline``: load the graph, build the model, the filter indexes, the gradients and the
  optimiser state, score nothing;
- ``train``: 3 steps of 1-N training (``training.negatives: k_vs_all``, batch 512), once with
  ``training.memory_mb`` (entities scored in chunks) and once without a limit;
- ``evaluate``: filtered ranking of 2,000 test triples (both directions), with
  ``evaluation.memory_mb`` at the budget and at 16 times it.

Budgeted and unbudgeted runs must give the same losses, parameters and metrics, up to the order of
floating-point additions (scores of another batch composition can differ in the last bit).
The score blocks are what the budget bounds; the process also holds the graph, the model and the
optimiser state (the baseline), so the comparison is peak − baseline against the budget, and
unbudgeted shows what the same step costs without it.

Usage::

    .venv/bin/python benchmarks/memory_200k.py [--budget-mb 256] [--models distmult mocme]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from reporting import header, worker_or_driver, write_report

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results" / "memory_200k.json"
ENTITIES, RELATIONS, TRIPLES, TEST, FEATURE_DIM = 200_000, 50, 1_000_000, 2_000, 64
BATCH, STEPS = 512, 3
DIMS = {"distmult": 64, "tucker": 32, "mocme": 32}


def _graph():
    import torch

    from mocme.data import MultiModalKG, Vocabulary
    from mocme.data.kg import Modality

    gen = torch.Generator().manual_seed(0)
    triples = torch.stack(
        [
            torch.randint(ENTITIES, (TRIPLES + 2 * TEST,), generator=gen),
            torch.randint(RELATIONS, (TRIPLES + 2 * TEST,), generator=gen),
            torch.randint(ENTITIES, (TRIPLES + 2 * TEST,), generator=gen),
        ],
        1,
    )
    features = torch.randn(ENTITIES, FEATURE_DIM, generator=gen)
    mask = torch.rand(ENTITIES, generator=gen) < 0.8
    return MultiModalKG(
        "random-200k",
        Vocabulary(f"e{i}" for i in range(ENTITIES)),
        Vocabulary(f"r{i}" for i in range(RELATIONS)),
        triples[:TRIPLES],
        triples[TRIPLES : TRIPLES + TEST],
        triples[TRIPLES + TEST :],
        {"text": Modality("text", features, mask)},
    )


def _worker(args: argparse.Namespace) -> None:
    import torch

    from mocme.allocator import keep_freed_memory
    from mocme.evaluation import evaluate
    from mocme.models import ModelConfig, build_model
    from mocme.training.config import TrainingConfig
    from mocme.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as every run does (mocme.run.build); MOCME_MALLOC=system: glibc's defaults
    kg = _graph()
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=args.model, dim=DIMS[args.model], relation_dim=8, dropout=0.0), kg)
    budget = None if args.budget_mb <= 0 else args.budget_mb
    config = TrainingConfig(negatives="k_vs_all", batch_size=BATCH, memory_mb=budget, lr=1e-3)
    trainer = Trainer(model, kg, config)
    # Everything but the scoring, so that the baseline holds it too: the training queries, both
    # filter indexes, the gradients and the optimiser state.
    queries = torch.cat([kg.train[:, :2], kg.train[:, [2, 1]] + torch.tensor([0, RELATIONS])])
    queries = queries[torch.randperm(len(queries), generator=torch.Generator().manual_seed(1))[: BATCH * STEPS]]
    kg.train_index.pairs(queries)
    kg.filter_index.pairs(queries)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    trainer.optimizer.step()
    result: dict[str, Any] = {"what": args.what, "model": args.model, "budget_mb": budget}
    if args.what == "train":
        generator = torch.Generator().manual_seed(0)
        losses = []
        for step in range(STEPS):
            trainer.optimizer.zero_grad(set_to_none=True)
            batch = queries[step * BATCH : (step + 1) * BATCH]
            values = trainer.step(batch, torch.full((len(batch),), -1), 0, len(batch), generator)
            trainer.optimizer.step()
            losses.append({name: float(value) for name, value in values.items()})
        result["losses"] = losses
        result["parameter_sum"] = float(sum(p.detach().double().sum() for p in model.parameters()))
    elif args.what == "evaluate":
        metrics = evaluate(model, kg, "test", memory_mb=args.eval_mb)
        result["metrics"] = metrics["both"]["realistic"]
        result["eval_mb"] = args.eval_mb
    print(json.dumps(result))


def _measure(args: argparse.Namespace, model: str, what: str, budget: float, eval_mb: float = 0) -> dict[str, Any]:
    command = ["/usr/bin/time", "-v", sys.executable, __file__, "--worker", what, "--model", model]
    command += ["--budget-mb", str(budget), "--eval-mb", str(eval_mb), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"{model} {what} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr)
    result["peak_rss_mb"] = int(rss.group(1)) / 1024 if rss else None
    result["wall"] = wall.group(1) if wall else None
    print(f"{model:>8} {what:>8} budget {budget:>6g} MB eval {eval_mb:>6g} MB: peak RSS {result['peak_rss_mb']:.0f} MB")
    return result


def _drive(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {
        **header(args.threads),
        "graph": {"entities": ENTITIES, "relations": RELATIONS, "train": TRIPLES, "test": TEST},
        "batch": BATCH,
        "steps": STEPS,
        "budget_mb": args.budget_mb,
        "models": {},
    }
    for model in args.models:
        baseline = _measure(args, model, "baseline", args.budget_mb)
        chunked = _measure(args, model, "train", args.budget_mb)
        whole = _measure(args, model, "train", 0)
        eval_budget = _measure(args, model, "evaluate", args.budget_mb, args.budget_mb)
        eval_large = _measure(args, model, "evaluate", args.budget_mb, 16 * args.budget_mb)
        same_losses = all(
            abs(a[name] - b[name]) <= 1e-5 * max(1.0, abs(b[name]))
            for a, b in zip(chunked["losses"], whole["losses"], strict=True)
            for name in b
        )
        report["models"][model] = {
            "dim": DIMS[model],
            "baseline_rss_mb": baseline["peak_rss_mb"],
            "train_chunked_rss_mb": chunked["peak_rss_mb"],
            "train_unchunked_rss_mb": whole["peak_rss_mb"],
            "train_chunked_over_baseline_mb": chunked["peak_rss_mb"] - baseline["peak_rss_mb"],
            "train_unchunked_over_baseline_mb": whole["peak_rss_mb"] - baseline["peak_rss_mb"],
            "losses_chunked": chunked["losses"],
            "losses_unchunked": whole["losses"],
            "same_losses": same_losses,
            "parameter_sum": [chunked["parameter_sum"], whole["parameter_sum"]],
            "evaluate_budget_rss_mb": eval_budget["peak_rss_mb"],
            "evaluate_large_rss_mb": eval_large["peak_rss_mb"],
            "metrics_max_relative_difference": max(
                abs(eval_budget["metrics"][k] - v) / max(abs(v), 1e-12) for k, v in eval_large["metrics"].items()
            ),
            "metrics": eval_budget["metrics"],
        }
    write_report(args.output, report)
    print(json.dumps({m: {k: v for k, v in r.items() if "losses" not in k} for m, r in report["models"].items()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-mb", type=float, default=256.0, help="training.memory_mb and evaluation.memory_mb.")
    parser.add_argument("--models", nargs="+", default=["distmult", "mocme"], choices=list(DIMS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON report.")
    parser.add_argument("--worker", choices=("baseline", "train", "evaluate"), dest="what", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--eval-mb", type=float, default=0.0, help=argparse.SUPPRESS)
    return worker_or_driver(parser.parse_args(argv), "what", _worker, _drive)


if __name__ == "__main__":
    sys.exit(main())
