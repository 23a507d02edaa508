"""Command-line interface; see :mod:`mocme.cli.app`.

Every other module of this package defines commands on :data:`app` and is imported here, so a new
command is a new module. Commands import heavy dependencies inside their functions, so that
``mocme --help`` stays fast.
"""

import importlib
import pkgutil

from mocme.cli.app import app, main

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "app":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["app", "main"]
