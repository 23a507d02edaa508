"""The configs shipped under configs/ are valid: a user who copies one gets a run, not an error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mocme.config import read_config, validate_config
from mocme.hpo.space import parse_search

SHIPPED_CONFIGS = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_shipped_config_validates(path):
    """Every config under configs/ is a valid run config; an HPO config's search space fits it too."""
    data, source, lines = read_config(path)
    search = data.pop("search", None)
    validate_config(data, source, lines)
    if path.parent.name == "hpo":
        assert search is not None, f"{path}: an HPO config needs a search section"
        parse_search(search, data, source, lines)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.metric=mrr"], "is not SIDE.RANKS.NAME"),
        (["training.metric=both.realistic.arithmetic_mean_rank"], "a mean rank cannot be selected on"),
        (["training.metric=both.realistic.hits_at_5"], "needs 5 in evaluation.ks"),
        (["model.name=complex", "model.dim=7"], "model.dim must be even for complex"),
        (["model.interaction=rotate", "model.dim=63"], "model.dim must be even for rotate"),
    ],
)
def test_a_config_that_would_fail_later_is_refused_at_once(overrides, message):
    from mocme.config import load_config
    from mocme.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(overrides=overrides)
    load_config(overrides=["training.metric=tail.optimistic.hits_at_10", "model.name=complex", "model.dim=8"])


def test_a_section_error_from_an_override_names_the_override():
    from mocme.config import load_config
    from mocme.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--set: model: Value error, model.dim must be even"):
        load_config(overrides=["model.name=complex", "model.dim=7"])
