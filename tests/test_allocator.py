"""Keeping freed memory (mocme.allocator) changes where memory comes from, never what a run computes.

Each case runs in its own Python process: the setting is process-wide and cannot be undone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.test_cli import TINY

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")

TRAIN = """
import json, sys
import mocme.allocator
from mocme.config import load_config
from mocme.pipeline import train
before = mocme.allocator._applied
result = train(load_config(None, [o for o in sys.argv[2:] if o != "--set"]), sys.argv[1], progress=False)
print(json.dumps({"before": before, "applied": mocme.allocator._applied, "test": result.metrics["test"]}))
"""


def _train(tmp_path, name: str, malloc: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MOCME_MALLOC"} | ({"MOCME_MALLOC": malloc} if malloc else {})
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, str(tmp_path / name), *TINY], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_run_keeps_freed_memory_and_computes_the_same(tmp_path):
    kept, system = _train(tmp_path, "kept", None), _train(tmp_path, "system", "system")
    assert not kept["before"] and kept["applied"]  # a run applies it (mocme.run.build), importing does not
    assert not system["applied"]  # MOCME_MALLOC=system leaves the C library's defaults
    assert kept["test"] == system["test"]


def test_it_is_idempotent_and_opt_out_is_honoured():
    code = "from mocme.allocator import keep_freed_memory as k; print(k(), k())"
    env = {k: v for k, v in os.environ.items() if k != "MOCME_MALLOC"}
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split() == [
        "True",
        "True",
    ]
    opted_out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env | {"MOCME_MALLOC": "System"}
    )
    assert opted_out.stdout.split() == ["False", "False"]
