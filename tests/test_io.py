"""Atomic writes and the trace file: permissions as a plain write gives them, and appends after a crash."""

from __future__ import annotations

import os
import stat

from mocme.io import append_jsonl, read_jsonl, write_text_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_atomic_write_gets_the_permissions_a_plain_write_would(tmp_path):
    previous = os.umask(0o077)  # set after mocme.io was imported
    try:
        (tmp_path / "plain.txt").write_text("x")
        write_text_atomic(tmp_path / "atomic.txt", "x")
        assert _mode(tmp_path / "atomic.txt") == _mode(tmp_path / "plain.txt") == 0o600
    finally:
        os.umask(previous)
    existing = tmp_path / "existing.txt"
    existing.write_text("old")
    existing.chmod(0o640)
    write_text_atomic(existing, "new")  # a replaced file keeps its mode
    assert _mode(existing) == 0o640 and existing.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.txt", "existing.txt", "plain.txt"]


def test_an_append_after_a_torn_last_line_starts_a_line_of_its_own(tmp_path):
    trace = tmp_path / "trace.jsonl"
    append_jsonl(trace, {"epoch": 1})
    with open(trace, "a", encoding="utf-8") as handle:
        handle.write('{"epoch": 2, "lo')  # a crash in the middle of the second record
    assert read_jsonl(trace) == [{"epoch": 1}]
    append_jsonl(trace, {"epoch": 3})
    append_jsonl(trace, {"epoch": 4})
    assert read_jsonl(trace) == [{"epoch": 1}, {"epoch": 3}, {"epoch": 4}]
