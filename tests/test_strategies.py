"""Training strategies and regularisers: each against a brute-force reference, chunking, and the registry.

``tests/data/strategy_losses_fb4e557.json`` holds the per-epoch losses of every strategy that
existed before the strategy registry, recorded at commit fb4e557 with the configs built by
:func:`legacy_config`; the registry must reproduce them.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mocme import pipeline
from mocme.config import validate_config
from mocme.data import generate
from mocme.data.synthetic import SyntheticModality, SyntheticSpec
from mocme.errors import ConfigError
from mocme.models import ModelConfig, build_model
from mocme.models.base import HeadTable
from mocme.models.interactions import INTERACTIONS
from mocme.training.config import TrainingConfig
from mocme.training.full import BYTES_PER_PAIR, full_step, k_vs_all_loss, one_vs_all_loss
from mocme.training.regularizers import DURA, N3, REGULARIZERS
from mocme.training.strategies import STRATEGIES

LEGACY = json.loads((Path(__file__).parent / "data" / "strategy_losses_fb4e557.json").read_text())
TINY_MB = 24 * 7 * BYTES_PER_PAIR / 2**20  # chunks of a handful of entities


def legacy_config(training: dict, **extra):
    training = {k: v for k, v in training.items() if k not in ("epochs", "eval_every", "batch_size", "num_negatives")}
    egns = {"warmup_epochs": 1, **training.pop("egns", {})}
    return validate_config(
        {
            "seed": 3,
            "dataset": {"synthetic": {"num_entities": 120, "num_relations": 3}},
            "model": {"dim": 12, "relation_dim": 4},
            "training": {
                "epochs": 3,
                "eval_every": 3,
                "batch_size": 64,
                "num_negatives": 16,
                "egns": egns,
                **training,
                **extra,
            },
        }
    )


@pytest.mark.parametrize("case", sorted(LEGACY))
def test_existing_strategies_keep_their_losses(tmp_path, case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # one_to_n is k_vs_all's old name
        config = legacy_config(dict(LEGACY[case]["training"]))
    result = pipeline.train(config, tmp_path / "run")
    losses = [r["losses"] for r in result.directory.trace()]
    assert losses == LEGACY[case]["losses"]
