"""MoCME on DB15K (structure + text, dimension 256, K = 3) on a CUDA GPU, until early stopping or a
time budget; prints every epoch's time and, at the end, the test metrics of the best-on-validation
checkpoint (the test split is scored once).

Run it through ``benchmarks/gpu_db15k.sh``, which sets up the Python path on a machine whose Python
already has a CUDA build of torch. Everything else is the run config's defaults (EGNS over 64
sampled negatives, batch 256, Adam), with validation every ``--eval-every`` epochs and early
stopping after ``--patience`` evaluations without improvement.

The time budget is checked after every epoch: training stops when the next epoch would not finish
in time (leaving a margin for the final evaluation), and the run is then evaluated from its best
checkpoint, as a finished run would be.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARGIN_SECONDS = 60.0  # kept for loading the best checkpoint and scoring valid and test


class _OutOfTime(Exception):
    """Raised by the epoch callback when the next epoch would overrun the budget."""


def _config(args: argparse.Namespace):
    from mocme.config import validate_config

    return validate_config(
        {
            "seed": args.seed,
            "device": args.device,
            "dataset": {
                "name": "DB15K",
                "data_dir": str(args.data_dir),
                "features": {"text": {"path": str(args.features)}},
            },
            "model": {"dim": 256, "experts": 3},
            "training": {
                "epochs": args.epochs,
                "eval_every": args.eval_every,
                "patience": args.patience,
                "precision": args.precision,
                "compile": args.compile,
                **({"batch_size": args.batch_size} if args.batch_size else {}),
            },
        },
        source="benchmarks/gpu_db15k.py",
    )


def _features(args: argparse.Namespace) -> None:
    if Path(args.features).exists():
        return
    raise SystemExit(
        f"{args.features}: no DB15K text features. Compute them where sentence-transformers and the bundled "
        f"model are installed (mocme features text DB15K --data-dir DIR --out {Path(args.features).parent}) "
        "and copy the folder here."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO / "data", help="Folder holding DB15K/.")
    features = REPO / "data" / "features" / "DB15K" / "text.safetensors"
    parser.add_argument("--features", type=Path, default=features, help="DB15K text features (.safetensors).")
    parser.add_argument("--minutes", type=float, default=8.0, help="Wall-clock budget of the whole run.")
    parser.add_argument("--epochs", type=int, default=100, help="Maximum epochs.")
    parser.add_argument("--eval-every", type=int, default=2, help="Validate every N epochs.")
    parser.add_argument("--patience", type=int, default=3, help="Evaluations without improvement before stopping.")
    parser.add_argument("--batch-size", type=int, default=0, help="training.batch_size (0: the config default).")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="training.precision.")
    parser.add_argument("--compile", action="store_true", help="training.compile (torch.compile).")
    parser.add_argument("--device", default="cuda", help="cuda, cpu or auto.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu-db15k", help="Run directory (replaced).")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import torch

    from mocme import pipeline

    _features(args)
    config = _config(args)
    device = pipeline.resolve_device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, device {device} ({name}), precision {args.precision}, compile {args.compile}")
    budget = 60.0 * args.minutes
    epochs: list[dict[str, Any]] = []

    def report(record: dict[str, Any]) -> None:
        epochs.append(record)
        valid = record.get("valid", {}).get(config.training.metric)
        shown = f", valid MRR {valid:.4f}" if valid is not None else ""
        print(f"epoch {record['epoch']:3d}: {record['seconds']:7.2f} s, loss {record['loss']:.4f}{shown}", flush=True)
        elapsed = time.perf_counter() - started
        longest = max(r["seconds"] for r in epochs)
        if elapsed + longest + MARGIN_SECONDS > budget:
            raise _OutOfTime

    stopped = "early stopping or the epoch limit"
    try:
        result = pipeline.train(config, args.out, overwrite=True, callbacks=[report])
        metrics = result.metrics
    except _OutOfTime:
        stopped = f"the {args.minutes:g}-minute budget"
        metrics = {split: pipeline.evaluate_run(args.out, split, "best") for split in ("valid", "test")}

    train_only = [r["seconds"] for r in epochs if "valid" not in r]
    with_valid = [r["seconds"] for r in epochs if "valid" in r]
    test = metrics["test"]["both"]["realistic"]
    summary = {
        "device": name,
        "torch": torch.__version__,
        "precision": args.precision,
        "compile": args.compile,
        "epochs_trained": len(epochs),
        "stopped_by": stopped,
        "epoch_seconds_median": statistics.median(train_only) if train_only else None,
        "epoch_with_validation_seconds_median": statistics.median(with_valid) if with_valid else None,
        "first_epoch_seconds": epochs[0]["seconds"] if epochs else None,
        "test_mrr": test["inverse_harmonic_mean_rank"],
        "test_hits_at_1": test["hits_at_1"],
        "test_hits_at_10": test["hits_at_10"],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    (args.out / "gpu_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
