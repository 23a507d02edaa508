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

from mocme.data import MultiModalKG, Vocabulary
from mocme.data.kg import Modality

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
