"""The ``mocme`` command with one injected fault, for tests that kill or break training in a subprocess.

``MOCME_FAULT`` picks the fault, patched in this process only:

- ``pause:validate:E``: pause as the validation of epoch E starts;
- ``pause:evaluate:SPLIT``: pause as the final evaluation of SPLIT (``valid`` or ``test``) starts;
- ``pause:save:NAME:E``: pause half-way through writing checkpoint NAME (``last`` or ``best``) of
  epoch E, with the first half of its bytes in the temporary file;
- ``nan:SCORER:E``: from epoch E on, the parameters of scorer SCORER are NaN.

A pause writes this process's id into the file ``MOCME_FAULT_MARKER`` and sleeps, so that the test
can send its signal exactly there. SIGUSR1 prints every thread's stack and the SIGINT handler to
stderr (a test does so when the process outlives its signal). Usage:
``MOCME_FAULT=... python faulty_cli.py train ...``.
"""

from __future__ import annotations

import faulthandler
import io
import os
import signal
import sys
import time
from pathlib import Path


def _pause() -> None:
    Path(os.environ["MOCME_FAULT_MARKER"]).write_text(str(os.getpid()))
    time.sleep(600)
    raise SystemExit("faulty_cli: nobody interrupted the pause")


def _pause_validation(epoch: int) -> None:
    from mocme.evaluation import evaluator

    rank_triples = evaluator.rank_triples

    def paused(*args, **kwargs):
        if kwargs.get("description") == f"validating (epoch {epoch})":
            _pause()
        return rank_triples(*args, **kwargs)

    evaluator.rank_triples = paused


def _pause_evaluation(split: str) -> None:
    from mocme.evaluation.evaluator import Evaluator

    evaluate = Evaluator.evaluate

    def paused(self, model, which="valid"):
        if which == split:
            _pause()
        return evaluate(self, model, which)

    Evaluator.evaluate = paused


def _pause_save(name: str, epoch: int) -> None:
    import torch

    save = torch.save

    def paused(obj, f, *args, **kwargs):
        target = isinstance(f, (str, os.PathLike)) and Path(f).name.startswith(f".{name}.pt.")
        if target and obj["train_state"]["epoch"] == epoch:
            buffer = io.BytesIO()
            save(obj, buffer, *args, **kwargs)
            with open(f, "wb") as handle:
                handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                handle.flush()
                os.fsync(handle.fileno())
            _pause()
        return save(obj, f, *args, **kwargs)

    torch.save = paused


def _poison_scorer(scorer: str, epoch: int) -> None:
    import torch

    from mocme.training.trainer import Trainer

    train_epoch = Trainer.train_epoch

    def poisoned(self, index: int):
        if index + 1 >= epoch:
            parameters = [p for n, p in self.model.named_parameters() if n.startswith(f"scorers.{scorer}.")]
            if not parameters:
                raise SystemExit(f"faulty_cli: the model has no parameters scorers.{scorer}.*")
            with torch.no_grad():
                for parameter in parameters:
                    parameter.fill_(float("nan"))
        return train_epoch(self, index)

    Trainer.train_epoch = poisoned


def install(fault: str) -> None:
    """Patch this process to behave as ``fault`` (the ``MOCME_FAULT`` syntax above) says."""
    kind, *args = fault.split(":")
    if kind == "pause" and args[0] == "validate":
        _pause_validation(int(args[1]))
    elif kind == "pause" and args[0] == "evaluate":
        _pause_evaluation(args[1])
    elif kind == "pause" and args[0] == "save":
        _pause_save(args[1], int(args[2]))
    elif kind == "nan":
        _poison_scorer(args[0], int(args[1]))
    else:
        raise SystemExit(f"faulty_cli: unknown fault {fault!r}")


def _report_state(signum: int, _frame) -> None:
    print(f"faulty_cli: SIGINT handler {signal.getsignal(signal.SIGINT)!r}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _report_state)
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)  # the stacks, even with the GIL held
    if os.environ.get("MOCME_FAULT"):
        install(os.environ["MOCME_FAULT"])
    from mocme.cli import main

    sys.exit(main())
