"""Write the behaviour fingerprint that ``tests/test_fingerprint.py`` holds the code to.

Run from the repository root, at a commit whose behaviour is the reference::

    python -m tests.fingerprints.make

It trains each config in this folder (``config-*.yaml``, fully resolved, so a later change of a
default changes nothing here) and stores its final metrics and a hash of its selected weights in
``fingerprint.json``. It also writes ``run-mocme-interrupted/``: the MoCME run stopped after its
first epoch, a run directory as this commit writes it, which the test resumes.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.fingerprints.common import FOLDER, INTERRUPTED, configs, fingerprint, interrupted_run


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        out = {name: fingerprint(config, Path(scratch) / name) for name, config in configs().items()}
    (FOLDER / "fingerprint.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(INTERRUPTED, ignore_errors=True)
    interrupted_run(configs()["mocme"], INTERRUPTED)
    sys.stdout.write(f"wrote {FOLDER / 'fingerprint.json'} and {INTERRUPTED}\n")


if __name__ == "__main__":
    main()
