"""Shared fixtures. Real benchmark files are read from $MOCME_DATA or ../shared/data; tests that
need them skip cleanly when neither exists (as on a user's machine)."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models train several times faster on one thread, and `make test` runs one pytest-xdist worker
# per core; subprocesses started by the tests (the CLI under signals) inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from hypothesis import strategies as st

from mocme.config import RunConfig, validate_config
from mocme.data import MultiModalKG, Vocabulary, generate
from mocme.data.kg import Modality
from mocme.data.synthetic import SyntheticModality, SyntheticSpec

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def shared_data_dir() -> Path | None:
    candidates = [os.environ.get("MOCME_DATA"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "UMLS").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("benchmark data not available (set MOCME_DATA)")
    return path


def tiny_kg(num_entities: int = 7, seed: int = 0, with_modality: bool = True) -> MultiModalKG:
    """A small random graph with duplicate-free splits and one partially available modality."""
    gen = torch.Generator().manual_seed(seed)
    num_relations = 3
    triples = torch.stack(
        [
            torch.randint(num_entities, (40,), generator=gen),
            torch.randint(num_relations, (40,), generator=gen),
            torch.randint(num_entities, (40,), generator=gen),
        ],
        1,
    ).unique(dim=0)
    triples = triples[torch.randperm(len(triples), generator=gen)]
    n = len(triples)
    modalities = {}
    if with_modality:
        mask = torch.arange(num_entities) % 2 == 0
        modalities["text"] = Modality("text", torch.randn(num_entities, 4, generator=gen), mask)
    return MultiModalKG(
        "tiny",
        Vocabulary(f"e{i}" for i in range(num_entities)),
        Vocabulary(f"r{i}" for i in range(num_relations)),
        triples[: n // 2],
        triples[n // 2 : 3 * n // 4],
        triples[3 * n // 4 :],
        modalities,
    )


class TableModel:
    """Scores looked up from a fixed table ``(N, 2R, N)``: lets tests control every tie."""

    def __init__(self, table: torch.Tensor):
        self.table = table

    def score_all(self, queries: torch.Tensor) -> torch.Tensor:
        return self.table[queries[:, 0], queries[:, 1]].clone()


def synthetic_graph(num_entities: int) -> MultiModalKG:
    """A generated graph of 3 relations with one text modality (6 dims, 30% of entities without it)."""
    spec = SyntheticSpec(
        num_entities=num_entities,
        num_relations=3,
        modalities={"text": SyntheticModality(factors=4, dim=6, missing=0.3)},
    )
    return generate(spec)


def small_run_config(
    *, seed: int, num_entities: int, dim: int, epochs: int, batch_size: int, num_negatives: int, **training
) -> RunConfig:
    """A run on a synthetic graph of 3 relations with a small model, validated every epoch."""
    return validate_config(
        {
            "seed": seed,
            "dataset": {"synthetic": {"num_entities": num_entities, "num_relations": 3}},
            "model": {"dim": dim, "relation_dim": 4},
            "training": {
                "epochs": epochs,
                "eval_every": 1,
                "batch_size": batch_size,
                "num_negatives": num_negatives,
                **training,
            },
        }
    )


@st.composite
def triple_lists(draw, min_entities: int = 1, max_entities: int = 8, min_size: int = 0, max_size: int = 30):
    """``(num_entities, num_relations, [(h, r, t), ...])`` of a small random graph (1-3 relations)."""
    n = draw(st.integers(min_entities, max_entities))
    r = draw(st.integers(1, 3))
    triples = draw(
        st.lists(
            st.tuples(st.integers(0, n - 1), st.integers(0, r - 1), st.integers(0, n - 1)),
            min_size=min_size,
            max_size=max_size,
        )
    )
    return n, r, triples
