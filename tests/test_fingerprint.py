"""Behaviour pinned bit for bit: seeded tiny runs against a fingerprint stored before a refactoring.

``tests/fingerprints/fingerprint.json`` holds, for each ``config-*.yaml`` there, the final metrics
and a hash of the selected weights, as written by ``python -m tests.fingerprints.make`` at the
commit whose behaviour is the reference. ``run-mocme-interrupted/`` is a run directory that commit
wrote, stopped after one epoch: ``mocme train --resume`` must finish it exactly as the
uninterrupted run ended.
"""

from __future__ import annotations

import json
import shutil

import pytest

from mocme.cli import main
from mocme.rundir import RunDirectory
from tests.fingerprints.common import FOLDER, INTERRUPTED, configs, fingerprint, summary

EXPECTED = json.loads((FOLDER / "fingerprint.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seeded_run_matches_the_stored_fingerprint(tmp_path, name):
    assert fingerprint(configs()[name], tmp_path / name) == EXPECTED[name]


def test_resume_of_a_run_directory_written_before_the_change(tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(INTERRUPTED, run_dir)
    assert main(["train", "--resume", str(run_dir)]) == 0
    capsys.readouterr()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert summary(RunDirectory(run_dir), metrics) == EXPECTED["mocme"]
