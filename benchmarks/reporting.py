"""What the benchmark scripts share: the worker-or-driver entry point and the JSON report's header.

Each script measures in worker subprocesses (one per side, so that memory and threads stay apart)
driven by its main process; the scripts import this file from their own folder.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def worker_or_driver(
    args: argparse.Namespace,
    role: str,
    worker: Callable[[argparse.Namespace], None],
    drive: Callable[[argparse.Namespace], int],
) -> int:
    """Be the worker when ``args.<role>`` is set (exit status 0), else drive the workers."""
    if getattr(args, role):
        worker(args)
        return 0
    return drive(args)


def header(threads: int) -> dict[str, Any]:
    """The date, the command line and the machine, for the top of a JSON report."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": threads},
    }


def write_report(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``path`` (creating its folder), replacing it whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(path)
