"""Write the behaviour fingerprint that ``tests/test_fingerprint.py`` holds the code to.

Run from the repository root, at a commit whose behaviour is the reference::

    python -m tests.fingerprints.make

It trains each config in this folder (``config-*.yaml``, fully resolved, so a later change of a
default changes nothing here) and stores its final metrics in ``fingerprint.json`` and its selected
weights in ``weights-<name>.safetensors``. It also writes ``run-mocme-interrupted/``: the MoCME run
stopped after its first epoch, a run directory as this commit writes it, which the test resumes.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tests.fingerprints.common import FOLDER, INTERRUPTED, configs, fingerprint, interrupted_run, save_weights


def main() -> None:
    metrics = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, config in configs().items():
            metrics[name], weights = fingerprint(config, Path(scratch) / name)
            save_weights(name, weights)
    (FOLDER / "fingerprint.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(INTERRUPTED, ignore_errors=True)
    interrupted_run(configs()["mocme"], INTERRUPTED)
    sys.stdout.write(f"wrote {FOLDER / 'fingerprint.json'}, the weights beside it and {INTERRUPTED}\n")


if __name__ == "__main__":
    main()
