"""Command-line interface; see :mod:`mocme.cli.app`."""

from mocme.cli import datasets, runs  # noqa: F401  (commands register on the app when imported)
from mocme.cli.app import app, main

__all__ = ["app", "main"]
