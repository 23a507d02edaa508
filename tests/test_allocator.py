"""Keeping freed memory (mocme.allocator) changes where memory comes from, never what a run computes.

Each case runs in its own Python process: the setting is process-wide and cannot be undone.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys

import pytest

from tests.test_cli import TINY

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc >= 2.33 only"
)

# A run big enough that its evaluation's score blocks (queries x 2,000 entities) lie above glibc's
# initial mmap threshold (128 KiB), so that the two settings serve them from different places.
TRAIN = """
import json, sys
import mocme.allocator
from mocme.config import load_config
from mocme.pipeline import train
before = mocme.allocator._applied
overrides = [o for o in sys.argv[2:] if o != "--set"]
overrides += ["dataset.synthetic.num_entities=2000", "training.batch_size=256"]
result = train(load_config(None, overrides), sys.argv[1], progress=False)
print(json.dumps({"before": before, "applied": mocme.allocator._applied, "test": result.metrics["test"]}))
"""

# Bytes glibc serves as separate mmap blocks while a 64 MiB tensor lives, after keep_freed_memory().
MAPPED = """
import ctypes, torch
from mocme.allocator import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                              "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
applied = keep_freed_memory()
before = libc.mallinfo2().hblkhd
block = torch.empty(16 * 2**20)
print(applied, libc.mallinfo2().hblkhd - before)
"""


def _python(code: str, *args: str, malloc: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MOCME_MALLOC"} | ({"MOCME_MALLOC": malloc} if malloc else {})
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_a_run_keeps_freed_memory_and_computes_the_same(tmp_path):
    kept = json.loads(_python(TRAIN, str(tmp_path / "kept"), *TINY))
    system = json.loads(_python(TRAIN, str(tmp_path / "system"), *TINY, malloc="system"))
    assert not kept["before"] and kept["applied"]  # a run applies it (mocme.run.build), importing does not
    assert not system["applied"]  # MOCME_MALLOC=system leaves the C library's defaults
    assert kept["test"] == system["test"]


def test_large_blocks_come_from_the_heap_not_from_fresh_mappings():
    applied, mapped = _python(MAPPED).split()
    assert applied == "True" and int(mapped) == 0
    applied, mapped = _python(MAPPED, malloc="System").split()  # the opt-out, in any case
    assert applied == "False" and int(mapped) >= 64 * 2**20


def test_it_is_idempotent():
    assert _python("from mocme.allocator import keep_freed_memory as k; print(k(), k())") == "True True"
