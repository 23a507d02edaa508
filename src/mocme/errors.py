"""The project's own error types.

Every problem a user can cause (a malformed file, a bad config value) raises a
:class:`MocmeError`. The CLI prints it as one line and exits with status 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from os import PathLike


class MocmeError(Exception):
    """Base class of every error caused by the user's input, printed as one line."""


class DataError(MocmeError):
    """A data file is malformed: names the file, the line (when known) and the problem."""

    def __init__(self, path: str | PathLike[str], problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        """Pickle by the constructor's arguments, so the error crosses process boundaries intact."""
        return type(self), (self.path, self.problem, self.line)


class ConfigError(MocmeError):
    """A config file or override is invalid: names the source, key and problem."""


class RunDirError(MocmeError):
    """A run directory is missing, incomplete, or would be overwritten."""


class NumericalError(MocmeError):
    """Training or scoring produced NaN or infinite values."""


class DataWarning(UserWarning):
    """Data that loads but deserves attention (e.g. test entities never seen in training); one line."""


class RenamedWarning(DeprecationWarning):
    """An old option or config name that still works, for one release, under its new name; one line."""


def renamed(old: str, new: str) -> RenamedWarning:
    """The warning for ``old``, now called ``new``."""
    return RenamedWarning(f"{old} is now {new}; the old name is accepted until the next release")
