"""Ask a run directory for predictions and metrics again and again while another process trains into it.

Usage: ``python reader.py RUN_DIR RELATION ENTITY STOP_FILE SUMMARY_JSON``

Waits for ``checkpoints/last.pt``, then alternates ``mocme predict RUN_DIR -r RELATION --head ENTITY
--json`` (best checkpoint, falling back to last) and ``mocme evaluate RUN_DIR --checkpoint last --json``
through the command's entry point until STOP_FILE appears, and writes one record per call to
SUMMARY_JSON: the command, its exit status, whether its output parsed as JSON, whether training was
still running (no metrics.json) when it started, and the version of last.pt (inode and time) it started with.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

from mocme.cli import main


def _call(args: list[str]) -> tuple[int, bool, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(args)
        except Exception as crash:  # a bug, not a user error: record it as a failed call
            return -1, False, repr(crash)
    try:
        json.loads(out.getvalue())
    except json.JSONDecodeError:
        return status, False, err.getvalue()
    return status, True, err.getvalue()


def read_while_training(run: Path, relation: str, entity: str, stop: Path, deadline_s: float = 300) -> list[dict]:
    last = run / "checkpoints" / "last.pt"
    ends = time.monotonic() + deadline_s
    while not last.exists() and not stop.exists() and time.monotonic() < ends:
        time.sleep(0.01)
    commands = [
        ["predict", str(run), "-r", relation, "--head", entity, "--json"],
        ["evaluate", str(run), "--checkpoint", "last", "--json", "--quiet"],
    ]
    calls = []
    while not stop.exists() and time.monotonic() < ends:
        args = commands[len(calls) % 2]
        training = not (run / "metrics.json").exists()
        file = last.stat()
        version = f"{file.st_ino}:{file.st_mtime_ns}"  # an inode number alone may be reused
        status, parsed, err = _call(args)
        calls.append(
            {"command": args[0], "status": status, "json": parsed, "training": training, "last": version, "err": err}
        )
    return calls


if __name__ == "__main__":
    run_dir, relation, entity, stop_file, summary = sys.argv[1:]
    records = read_while_training(Path(run_dir), relation, entity, Path(stop_file))
    Path(summary).write_text(json.dumps(records, indent=1))
