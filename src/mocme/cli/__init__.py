"""Command-line interface; see :mod:`mocme.cli.app`.

Every other module of this package defines commands on :data:`app` and is imported here, so a new
command is a new module. ``--help`` lists commands in import order: the ones in :data:`ORDER`
first (the order a user meets them), then any others. Commands import heavy dependencies inside
their functions, so that ``mocme --help`` stays fast.
"""

import importlib
import pkgutil

from mocme.cli.app import app, main

ORDER = ("runs", "report", "datasets", "download", "features", "data", "hpo", "ls")

for _name in (*ORDER, *sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in (*ORDER, "app"))):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["app", "main"]
