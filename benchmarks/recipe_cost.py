"""What an epoch of a baseline recipe costs on this machine, fp32 against bf16 autocast, from a few steps.

Times ``--steps`` training steps (after one warm-up step) of a recipe config with the real
trainer, in fp32 and then in bf16 autocast (one after the other, so load drift between the two goes
into the speed-up), and extrapolates to one epoch (every training query once); checks that both
arithmetics give the same first-step loss to bf16's precision (1e-2 relative), exit status 1 if not.

    python benchmarks/recipe_cost.py configs/baselines/fb15k-237-complex-n3.yaml --steps 8
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reporting import header, write_report  # noqa: E402


def measure(config_path: Path, precision: str, steps: int, data_dir: Path) -> dict[str, float]:
    """Seconds per step and the first step's loss of the recipe in ``precision``."""
    import torch

    from mocme.config import load_config
    from mocme.pipeline import build
    from mocme.training.negatives import epoch_queries
    from mocme.training.trainer import Trainer

    config = load_config(config_path, [f"dataset.data_dir={data_dir}", f"training.precision={precision}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kg, model = build(config)
    trainer = Trainer(model, kg, config.training, seed=config.seed)
    generator = torch.Generator().manual_seed(0)
    queries, targets = epoch_queries(kg.train, kg.num_relations, trainer.strategy.queries, generator)
    batch = config.training.batch_size
    model.train()
    seconds, first = [], None
    for step in range(steps + 1):
        started = time.perf_counter()
        trainer.optimizer.zero_grad(set_to_none=True)
        losses = trainer.step(queries, targets, step * batch, (step + 1) * batch, generator)
        trainer.optimizer.step()
        if step == 0:
            first = float(sum(losses.values()))
        else:
            seconds.append(time.perf_counter() - started)
    per_step = statistics.median(seconds)
    epoch_steps = math.ceil(len(queries) / batch)
    return {
        "seconds_per_step": per_step,
        "epoch_steps": epoch_steps,
        "epoch_seconds": per_step * epoch_steps,
        "first_loss": first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("MOCME_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = {precision: measure(args.config, precision, args.steps, args.data_dir) for precision in ("fp32", "bf16")}
    for precision, row in rows.items():
        print(
            f"{precision}: {row['seconds_per_step']:.2f} s/step, {row['epoch_steps']} steps, "
            f"{row['epoch_seconds'] / 60:.1f} min/epoch, first loss {row['first_loss']:.4f}",
            flush=True,
        )
    print(f"bf16 speed-up: {rows['fp32']['seconds_per_step'] / rows['bf16']['seconds_per_step']:.2f}x")
    fp32, bf16 = rows["fp32"]["first_loss"], rows["bf16"]["first_loss"]
    agree = abs(bf16 - fp32) <= 1e-2 * abs(fp32)
    print(f"first-step losses {'agree' if agree else 'DIFFER'} to 1e-2 relative ({fp32:.4f}, {bf16:.4f})")
    if args.out:
        write_report(args.out, {**header(args.threads), "config": str(args.config), "rows": rows})
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
