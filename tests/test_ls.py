"""mocme ls (components from the real registries), usage errors without tracebacks, shell completion."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import typing

import pytest

from mocme.cli import ls, main
from mocme.data.registry import BENCHMARKS
from mocme.models import MODELS
from mocme.models.config import ModelName
from mocme.training import losses
from mocme.training.strategies import STRATEGIES


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["ls", "hpo"])
def test_commands_explain_themselves(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "Usage" in out and len(out) > 300


def test_every_config_choice_has_a_description():
    assert set(ls.EGNS_SELECTIONS) == set(ls.config_choices("egns.selection"))
    assert set(ls.EGNS_POOLS) == set(ls.config_choices("pool"))
    assert set(ls.REGULARIZERS) == set(ls.config_choices("regularizer"))
    for strategy in STRATEGIES.values():
        assert inspect.getdoc(strategy), strategy
        for kernel in strategy.kernels:
            assert getattr(losses, kernel.__name__) is kernel, kernel


def test_models_and_datasets_come_from_the_registries(capsys):
    code, out, _ = run(capsys, "ls", "--json")
    assert code == 0
    listing = json.loads(out)
    assert set(listing) == {"models", "datasets", "losses", "samplers"}
    assert [row["name"] for row in listing["models"]] == list(MODELS)
    assert set(MODELS) == set(typing.get_args(ModelName))
    names = [row["name"] for row in listing["datasets"]]
    assert set(BENCHMARKS) <= set(names) and {"synthetic", "pykeen:NAME"} <= set(names)
    assert {row["name"] for row in listing["losses"]} == {
        "softmax_cross_entropy",
        "weighted_bce",
        "weighted_negative_loss",
    }
    assert [row["name"] for row in listing["samplers"] if "/" not in row["name"]] == list(STRATEGIES)
    for rows in listing.values():
        assert all(row["description"] and row["setting"] for row in rows), rows


def test_one_kind_prints_a_table(capsys):
    code, out, _ = run(capsys, "ls", "samplers")
    assert code == 0 and out.startswith("samplers\n") and "training.negatives=egns" in out
    assert "models" not in out


def test_usage_errors_are_short_and_exit_2(capsys):
    code, _, err = run(capsys, "ls", "nope")
    assert code == 2 and "Invalid value for 'KIND'" in err and "Traceback" not in err
    code, _, err = run(capsys, "train", "--no-such-option")
    assert code == 2 and "No such option" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("mocme tr", {"train"}),
        ("mocme ls ", {"models", "datasets", "losses", "samplers"}),
        ("mocme hpo x --tri", {"--trials"}),
    ],
)
def test_shell_completion_answers(words, expected):
    env = {
        **os.environ,
        "_MOCME_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    done = subprocess.run(
        [sys.executable, "-c", "from mocme.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expected <= set(done.stdout.split()), done.stdout


def test_completion_script_for_a_named_shell():
    env = {**os.environ, "_MOCME_COMPLETE": "source_zsh"}
    done = subprocess.run(
        [sys.executable, "-c", "from mocme.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "compdef _mocme_completion mocme" in done.stdout, done.stdout + done.stderr
