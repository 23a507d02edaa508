"""Every training strategy on one synthetic graph, same model, budget and seeds: validation MRR.

Structure only (ComplEx, dimension 32) on a 200-entity synthetic graph whose triples follow 8
latent factors; each strategy trains 20 epochs from 3 seeds and reports the validation MRR of its
selected epoch (mean ± sd), beside the MRR of a uniformly random ranking and of a ranker that knows
nothing about the query entity (``RelationPopularity``: how often each entity answers the relation).
Sampled strategies get a larger learning rate (they learn slowly from 64 uniform negatives;
Bernoulli, which corrupts one side per triple, a larger one still); the settings are the ones
``tests/test_strategies.py`` uses for "every strategy beats a random ranker".

    python benchmarks/strategies.py --out benchmarks/results/strategies.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reporting import header, write_report  # noqa: E402

SAMPLED_LR = 0.05
SETTINGS = {  # per strategy, on top of the shared training section below
    "egns": {"lr": SAMPLED_LR},
    "uniform": {"lr": SAMPLED_LR},
    "bernoulli": {"lr": 2 * SAMPLED_LR},
    "self_adversarial": {"lr": SAMPLED_LR},
    "one_vs_all": {"regularizer": "n3", "regularizer_weight": 0.01},
    "k_vs_all": {"lr": 0.02},
}
GRAPH = {"num_entities": 200, "num_relations": 4, "modalities": {}, "structure_factors": 8, "triples_per_entity": 30}


def run(name: str, seed: int) -> tuple[float, float]:
    """Validation MRR of strategy ``name`` from ``seed`` and its training seconds."""
    from mocme import pipeline
    from mocme.config import validate_config

    config = validate_config(
        {
            "seed": seed,
            "dataset": {"synthetic": GRAPH},
            "model": {"name": "complex", "dim": 32, "dropout": 0.0},
            "training": {"epochs": 20, "eval_every": 20, "batch_size": 64, "lr": 0.01, "negatives": name}
            | SETTINGS[name],
        }
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pipeline.train(config, Path(folder) / "run")
    return result.metrics["valid"]["both"]["realistic"]["inverse_harmonic_mean_rank"], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "strategies.json")
    args = parser.parse_args()
    import torch

    from inductive import chance as filtered_chance
    from mocme.data import generate
    from mocme.data.synthetic import SyntheticSpec
    from mocme.evaluation import RelationPopularity, evaluate
    from mocme.training.strategies import STRATEGIES

    torch.set_num_threads(args.threads)
    kg = generate(SyntheticSpec(**GRAPH))
    chance = filtered_chance(kg, kg.valid)["mrr"]  # a random ranking of each query's filtered candidates
    popularity_mrr = evaluate(RelationPopularity(kg), kg, "valid")["both"]["realistic"]["inverse_harmonic_mean_rank"]
    rows = []
    for name in STRATEGIES:
        values, seconds = zip(*(run(name, seed) for seed in range(args.seeds)), strict=True)
        rows.append(
            {
                "strategy": name,
                "settings": SETTINGS[name],
                "valid_mrr": list(values),
                "mean": statistics.mean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "seconds_per_run": statistics.median(seconds),
            }
        )
        print(
            f"{name:18s} valid MRR {rows[-1]['mean']:.4f} ± {rows[-1]['sd']:.4f} "
            f"(chance {chance:.4f}, popularity {popularity_mrr:.4f})",
            flush=True,
        )
    report = {"graph": GRAPH, "chance_mrr": chance, "popularity_mrr": popularity_mrr, "rows": rows}
    write_report(args.out, {**header(args.threads), **report})


if __name__ == "__main__":
    main()
