"""MoCME against structure-only models on the synthetic graph, with the same budget and seed.

Each variant is a set of ``--set``-style overrides on top of a shared base; every variant trains
with the same seed and epoch budget, selects its epoch on validation, and reports validation MRR
(the selection metric) plus test metrics at the selected epoch. Variants run in parallel worker
processes (``--jobs``), each with ``--threads`` torch threads.

    python benchmarks/synthetic_margin.py                      # the default comparison
    python benchmarks/synthetic_margin.py --base training.epochs=30 --jobs 2 --out results.json
    python benchmarks/synthetic_margin.py --seeds 0 1 2 ...    # each variant over seeds: mean ± sd

With ``--seeds``, every variant trains once per seed (``seed`` is set; the synthetic graph itself
stays the one of the base config, so seeds vary initialisation and shuffling only) and the table
shows mean ± standard deviation.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DEFAULT_VARIANTS = {
    "MoCME (structure + text + visual)": [],
    "MoCME, structure only": ["dataset.modalities=[]"],
    "MoCME, text only": ["dataset.modalities=[text]"],
    "TuckER (structure)": ["model.name=tucker"],
    "DistMult (structure)": ["model.name=distmult"],
    "ComplEx (structure)": ["model.name=complex"],
    "RotatE (structure)": ["model.name=rotate"],
}


def run_variant(args: tuple[str, list[str], list[str], int, int | None]) -> dict:
    name, base, overrides, threads, seed = args
    import torch

    from mocme import pipeline
    from mocme.config import load_config

    torch.set_num_threads(threads)
    config = load_config(None, [*base, *overrides, *([f"seed={seed}"] if seed is not None else [])])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = pipeline.train(config, Path(tmp) / "run")
    seconds = time.perf_counter() - started
    metrics = result.metrics
    valid = metrics["valid"]["both"]["realistic"]
    test = metrics["test"]["both"]["realistic"]
    return {
        "variant": name,
        "overrides": overrides,
        "seed": config.seed,
        "seconds": round(seconds, 1),
        "selected_epoch": metrics["selected_epoch"],
        "epochs_trained": metrics["epochs_trained"],
        "valid_mrr": valid["inverse_harmonic_mean_rank"],
        "test_mrr": test["inverse_harmonic_mean_rank"],
        "test_hits_at_1": test["hits_at_1"],
        "test_hits_at_10": test["hits_at_10"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", action="append", default=[], help="Override applied to every variant (repeatable).")
    parser.add_argument("--variants", type=Path, help="JSON file {name: [overrides]} (default: the built-in list).")
    parser.add_argument("--jobs", type=int, default=1, help="Variants trained in parallel.")
    parser.add_argument("--threads", type=int, default=2, help="Torch threads per variant.")
    parser.add_argument("--out", type=Path, help="Write the results as JSON here.")
    parser.add_argument("--seeds", type=int, nargs="+", help="Train every variant once per seed (mean ± sd).")
    args = parser.parse_args()

    variants = json.loads(args.variants.read_text()) if args.variants else DEFAULT_VARIANTS
    seeds = args.seeds or [None]
    work = [(name, args.base, overrides, args.threads, seed) for name, overrides in variants.items() for seed in seeds]
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.map(run_variant, work, chunksize=1)

    from mocme.tables import render

    if args.seeds:
        summary = summarize_seeds(rows)
        headers = ["variant", "valid MRR", "test MRR", "test H@1", "test H@10", "seconds"]
        table = [[r["variant"], *(r[k] for k in ("valid_mrr", "test_mrr", "test_hits_at_1", "test_hits_at_10")),
                  r["seconds"]] for r in summary]  # fmt: skip
        title = f"Synthetic graph, seeds {' '.join(map(str, args.seeds))}: mean ± sd (base: {' '.join(args.base)})"
        print(render(headers, table, title=title))
        if args.out:
            out = {"base": args.base, "seeds": args.seeds, "summary": summary, "results": rows}
            args.out.write_text(json.dumps(out, indent=2) + "\n")
        return

    headers = ["variant", "valid MRR", "test MRR", "test H@1", "test H@10", "epoch", "seconds"]
    table = [
        [r["variant"], r["valid_mrr"], r["test_mrr"], r["test_hits_at_1"], r["test_hits_at_10"], r["selected_epoch"],
         r["seconds"]]
        for r in rows
    ]  # fmt: skip
    print(
        render(
            headers, table, title=f"Synthetic graph, same budget and seed (base: {' '.join(args.base) or 'defaults'})"
        )
    )
    if args.out:
        args.out.write_text(json.dumps({"base": args.base, "results": rows}, indent=2) + "\n")


def summarize_seeds(rows: list[dict]) -> list[dict]:
    """Per variant (in order of first appearance), ``"mean ± sd"`` of each metric over its seeds."""
    import statistics

    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == variant]
        row: dict = {"variant": variant, "seeds": len(runs)}
        for key in ("valid_mrr", "test_mrr", "test_hits_at_1", "test_hits_at_10"):
            values = [100 * r[key] for r in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            row[key] = f"{statistics.mean(values):.2f} ± {sd:.2f}"
            row[key + "_mean"], row[key + "_sd"] = statistics.mean(values), sd
        row["seconds"] = round(statistics.mean(r["seconds"] for r in runs), 1)
        out.append(row)
    return out


if __name__ == "__main__":
    main()
