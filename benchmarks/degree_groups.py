"""How connected the entities of each benchmark's test triples are, in ``mocme evaluate --breakdown``'s
degree groups: the share of test triples by the training degree of their less-known entity (``0``
is the unseen group, then powers of two), with the mean and median. Where that degree is small,
structure says little and another modality (text, images) has the most to add.

    python benchmarks/degree_groups.py                      # DB15K, MKG-W, MKG-Y from $MOCME_DATA
    python benchmarks/degree_groups.py --datasets FB15K-237 WN18RR
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mocme.data.loading import DatasetConfig, load_dataset  # noqa: E402
from mocme.evaluation.evaluator import DEGREE_GROUPS, degree_groups, training_degrees  # noqa: E402


def degree_shares(kg) -> tuple[float, int, list[float]]:
    """Mean training degree of the entities, median degree of a test triple's less-known entity,
    and the % of test triples in each of :data:`DEGREE_GROUPS`."""
    degree = training_degrees(kg)
    least = torch.minimum(degree[kg.test[:, 0]], degree[kg.test[:, 2]])
    group = degree_groups(least)
    shares = [100 * (group == code).double().mean().item() for code in range(len(DEGREE_GROUPS))]
    return degree.double().mean().item(), int(least.median()), shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["MKG-Y", "MKG-W", "DB15K"])
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("MOCME_DATA", ROOT.parent / "shared" / "data"))
    )
    args = parser.parse_args()
    if not args.data_dir.is_dir():
        print(f"benchmark data not found at {args.data_dir}; set MOCME_DATA or --data-dir")
        return
    print("| dataset | mean training degree | " + " | ".join(DEGREE_GROUPS) + " | median |")
    print("|---" * (len(DEGREE_GROUPS) + 3) + "|")
    for name in args.datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the loader's notes on dropped and unseen triples
            kg = load_dataset(DatasetConfig(name=name, data_dir=args.data_dir))
        mean, median, shares = degree_shares(kg)
        print(f"| {name} | {mean:.1f} | " + " | ".join(f"{s:.1f} %" for s in shares) + f" | {median} |")


if __name__ == "__main__":
    main()
