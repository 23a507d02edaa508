"""Behaviour pinned: seeded tiny runs against a fingerprint stored before a refactoring.

``tests/fingerprints/fingerprint.json`` holds, for each ``config-*.yaml`` there, the final metrics
(compared exactly) and ``weights-<name>.safetensors`` its selected weights (compared within float32
rounding, which differs between CPUs: ``tests/fingerprints/common.py``), as written by
``python -m tests.fingerprints.make`` at the commit whose behaviour is the reference.
``run-mocme-interrupted/`` is a run directory that commit wrote, stopped after one epoch:
``mocme train --resume`` must finish it as the uninterrupted run ended.
"""

from __future__ import annotations

import json
import shutil

import pytest

from mocme.cli import main
from mocme.rundir import RunDirectory
from tests.fingerprints.common import FOLDER, INTERRUPTED, assert_same_weights, configs, fingerprint, summary

EXPECTED = json.loads((FOLDER / "fingerprint.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seeded_run_matches_the_stored_fingerprint(tmp_path, name):
    metrics, weights = fingerprint(configs()[name], tmp_path / name)
    assert metrics == EXPECTED[name]
    assert_same_weights(weights, name)


def test_resume_of_a_run_directory_written_before_the_change(tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(INTERRUPTED, run_dir)
    assert main(["train", "--resume", str(run_dir)]) == 0
    capsys.readouterr()
    metrics, weights = summary(RunDirectory(run_dir), json.loads((run_dir / "metrics.json").read_text()))
    assert metrics == EXPECTED["mocme"]
    assert_same_weights(weights, "mocme")
