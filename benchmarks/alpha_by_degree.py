"""How much a trained MoCME's fused representation draws on structure, by how well structure knows
the entity: the mean inter-modal weight ``α`` of each modality (neutral relation context), over the
entities that have every modality, in ``mocme evaluate --breakdown``'s training-degree groups.

If ``α_structure`` does not grow with the degree, a well-known entity's trained structural
embedding is diluted as much as a barely-known one's.

    python benchmarks/alpha_by_degree.py runs/bench/DB15K/mocme--structure---text--1vsall--shared-experts-seed0
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mocme.evaluation.evaluator import DEGREE_GROUPS, degree_groups, training_degrees  # noqa: E402
from mocme.models import MoCME  # noqa: E402
from mocme.pipeline import load_run  # noqa: E402

CHUNK = 2048


def alpha_by_degree(run_dir: Path, checkpoint: str = "best") -> tuple[list[str], list[list[object]]]:
    """``(modalities, rows)``: per degree group, its entities with every modality and their mean ``α``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, kg, model = load_run(run_dir, checkpoint, device="cpu")
    if not isinstance(model, MoCME) or len(model.modalities) < 2:
        raise SystemExit(f"{run_dir}: not a MoCME run with a feature modality")
    alphas, available = [], []
    with torch.no_grad():
        for chunk in torch.arange(kg.num_entities).split(CHUNK):
            encoding = model.encode(chunk)
            alphas.append(encoding.alpha)
            available.append(encoding.available)
    alpha, complete = torch.cat(alphas), torch.cat(available).all(1)
    groups = degree_groups(training_degrees(kg))
    rows = []
    for index, name in enumerate(DEGREE_GROUPS):
        chosen = (groups == index) & complete
        if chosen.any():
            rows.append([name, int(chosen.sum()), *(float(a) for a in alpha[chosen].mean(0))])
    return list(model.modalities), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a MoCME run directory with a feature modality")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    modalities, rows = alpha_by_degree(args.run_dir, args.checkpoint)
    print("| training triples | entities with every modality | " + " | ".join(f"mean α {m}" for m in modalities) + " |")
    print("|---|---|" + "---|" * len(modalities))
    for name, count, *means in rows:
        print(f"| {name} | {count:,} | " + " | ".join(f"{m:.3f}" for m in means) + " |")


if __name__ == "__main__":
    main()
