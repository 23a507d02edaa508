"""Hyperparameter search with Optuna (the ``hpo`` extra): ``mocme hpo CONFIG --trials N``.

:mod:`mocme.hpo.space` reads the ``search`` section of a config; :mod:`mocme.hpo.study` runs the
trials as normal runs in one study directory and writes the best config as ``best.yaml``.
"""

from mocme.hpo.space import Dimension, apply, parse_search
from mocme.hpo.study import PruneOnValidation, StudySummary, TrialRow, run_study

__all__ = ["Dimension", "PruneOnValidation", "StudySummary", "TrialRow", "apply", "parse_search", "run_study"]
