"""The configs shipped under configs/ are valid: a user who copies one gets a run, not an error."""

from __future__ import annotations

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
