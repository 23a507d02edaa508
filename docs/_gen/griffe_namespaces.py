"""A Griffe extension: sub-packages without ``__init__.py`` (``mocme.training``) become documentable.

Python imports such a directory as an implicit namespace package, but Griffe only looks inside one
when its parent is a namespace package too. Declaring the directory as a member of its parent
before the parent's submodules are scanned lets Griffe load the modules in it. A directory that
gains an ``__init__.py`` is left to Griffe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import griffe


class NamespaceSubpackages(griffe.Extension):
    def on_module_members(self, *, mod: griffe.Module, **kwargs: Any) -> None:
        if not isinstance(mod.filepath, Path) or not mod.is_init_module:
            return
        folder = mod.filepath.parent
        for child in sorted(folder.iterdir()):
            is_module_dir = child.is_dir() and not (child / "__init__.py").exists() and any(child.glob("*.py"))
            if is_module_dir and child.name.isidentifier() and child.name not in mod.members:
                mod.set_member(child.name, griffe.Module(child.name, filepath=[child]))
