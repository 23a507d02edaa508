"""The project's error types survive pickling, so an error raised in a worker process (the benchmark
suite's pool, a DataLoader worker, a torchrun rank) reaches its parent whole instead of killing the
parent's result-handling thread."""

from __future__ import annotations

import pickle

import pytest

from mocme.errors import ConfigError, DataError, MocmeError, NumericalError, RunDirError
from mocme.extras import MissingExtraError

EXAMPLES = [
    DataError("data/train.txt", "expected 3 columns, found 2", line=7),
    DataError("data/entity2id.txt", "empty file"),
    ConfigError("config.yaml: model.dim: must be positive"),
    RunDirError("runs/x: no config.yaml"),
    NumericalError("epoch 3: loss is nan"),
    MissingExtraError("optuna", "hpo", "No module named 'optuna'"),
]


def _every_error_type(base: type[Exception]) -> set[type[Exception]]:
    found = set()
    for sub in base.__subclasses__():
        found |= {sub, *_every_error_type(sub)}
    return found


def test_the_examples_cover_every_error_type():
    assert {type(error) for error in EXAMPLES} == _every_error_type(MocmeError)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: f"{type(e).__name__}:{e}")
def test_an_error_pickles_to_the_same_type_message_and_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
