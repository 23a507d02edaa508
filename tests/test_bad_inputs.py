"""The bad-input corpus: every case runs through the CLI and fails cleanly, or is accepted.

Each folder of ``tests/bad_inputs`` is one case: its input files, ``cmd`` (the CLI arguments, one
shell-like line) and ``expected`` (a substring of the one-line error, naming file and line). A case
with an ``accepted`` marker must succeed instead; its ``expected`` is then found in the output
(stdout, stdout as one-line JSON, or a one-line warning on stderr). In ``cmd`` and ``expected``,
``{case}`` is the case folder, ``{graph}`` a valid 6-entity graph (``_graph``) and ``{out}`` a fresh
folder for outputs. Binary inputs come from ``make_binary_cases.py``.

A failing case must exit with status 2, print exactly one ``error: ...`` line and nothing on stdout,
show no traceback, and leave every file as it was: no partial output, no run directory.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from pathlib import Path

import pytest

from mocme.cli import main

ROOT = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))


def snapshot(directory: Path) -> dict[str, str]:
    """Every path under ``directory`` with a hash of its content (``dir`` for folders)."""
    return {
        str(p.relative_to(directory)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
    }


def test_corpus_is_large_and_well_formed():
    assert len(CASES) >= 40
    for case in CASES:
        folder = ROOT / case
        assert (folder / "cmd").is_file() and (folder / "expected").is_file(), case
    accepted = [c for c in CASES if (ROOT / c / "accepted").exists()]
    assert 0 < len(accepted) < len(CASES) / 2


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    work = tmp_path / "case"
    shutil.copytree(ROOT / case, work)
    shutil.copytree(ROOT / "_graph", tmp_path / "graph")
    places = {"{case}": str(work), "{graph}": str(tmp_path / "graph"), "{out}": str(tmp_path / "out")}

    def fill(text: str) -> str:
        for placeholder, value in places.items():
            text = text.replace(placeholder, value)
        return text

    argv = [fill(arg) for arg in shlex.split((work / "cmd").read_text(encoding="utf-8"))]
    expected = fill((work / "expected").read_text(encoding="utf-8").strip())
    monkeypatch.chdir(tmp_path)  # anything written to the working directory would show in the snapshot
    before = snapshot(tmp_path)

    code = main(argv)
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    if (work / "accepted").exists():
        assert code == 0, err
        assert all(line.startswith("warning: ") for line in lines), err
        shown = [out, err]
        if out.lstrip().startswith("{"):
            shown.append(json.dumps(json.loads(out)))
        assert any(expected in text for text in shown), f"{expected!r} not in output:\n{out}\n{err}"
    else:
        assert code == 2, f"exit status {code}; stderr: {err}"
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert expected in lines[0]
        assert out == ""
        assert snapshot(tmp_path) == before, "files were written or changed by a failing command"
