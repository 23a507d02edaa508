"""The installed package's version, read from its metadata (so nothing imports the package root for it)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """``mocme``'s version as installed, or ``0.0.0+unknown`` when run from a tree that is not installed."""
    try:
        return version("mocme")
    except PackageNotFoundError:
        return "0.0.0+unknown"
