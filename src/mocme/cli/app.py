"""The ``mocme`` command: one Typer app; commands live in sibling modules and register on it.

Bad input never shows a traceback: a :class:`~mocme.errors.MocmeError`, a usage error or a place
that cannot be read or written (``OSError``) prints as one line on stderr and exits with status 2
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import click
import typer

from mocme.errors import DataWarning, MocmeError, RenamedWarning

app = typer.Typer(
    name="mocme",
    help=(
        "Multimodal knowledge graph completion with MoCME (Mixture of Complementary Modality Experts).\n\n"
        "Start with 'mocme train' (MoCME on the built-in synthetic graph), then 'mocme predict RUN_DIR ...'. "
        "Every command explains itself with --help."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_BAD_INPUT = 2
# typer >= 0.20 vendors click: its usage errors and Abort are its own classes, not click's.
USAGE_ERRORS = (click.ClickException, getattr(typer, "TyperException", click.ClickException))
ABORTS = (click.exceptions.Abort, typer.Abort)
EXIT_INTERRUPTED = 130
DEBUG_ENV = "MOCME_DEBUG"

# Options shared by several commands, so that they are spelled the same everywhere.
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Folder of the known benchmarks (default: $MOCME_DATA, else ./data).", show_default=False
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def data_dir_override(folder: Path) -> str:
    """The ``--set`` override of ``--data-dir FOLDER``, quoted: a path is not YAML (``#``, ``: ``, ``~``)."""
    return f"dataset.data_dir={json.dumps(str(folder))}"


def _version(value: bool) -> None:
    if value:
        from mocme import __version__

        typer.echo(f"mocme {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


class Interrupted(Exception):
    """A command stopped by Ctrl-C that says how to go on: its message is printed, exit status 130."""


def fail(message: str) -> None:
    """Raise the project's one-line error (exit status 2)."""
    raise MocmeError(message)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.simplefilter("always", RenamedWarning)
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _main(argv)


def _one_line_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """Print a :class:`DataWarning` or :class:`RenamedWarning` as one ``warning: ...`` line on stderr.

    Other warnings are shown as ``show`` would.
    """

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DataWarning | RenamedWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def _main(argv: list[str] | None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or os.environ.get(DEBUG_ENV) == "1"
    try:
        command = typer.main.get_command(app)
        status = command.main(args=argv, prog_name="mocme", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except Interrupted as stopped:
        typer.echo(str(stopped), err=True)
        return EXIT_INTERRUPTED
    except USAGE_ERRORS as err:  # usage errors: unknown options, missing arguments, bad values
        typer.echo(f"error: {_usage_line(err)}", err=True)
        return EXIT_BAD_INPUT
    except (*ABORTS, KeyboardInterrupt):
        typer.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except (MocmeError, OSError) as err:  # OSError: a place the command cannot read or write
        if debug:
            traceback.print_exc()
        typer.echo(f"error: {_one_line(err)}", err=True)
        return EXIT_BAD_INPUT
    if status == EXIT_INTERRUPTED:  # typer turns a Ctrl-C inside a command into this status
        typer.echo("interrupted", err=True)
    return status if isinstance(status, int) else 0  # without standalone mode, typer.Exit(n) returns n


def _usage_line(err: click.ClickException) -> str:
    """A usage error as one line, pointing to the command's ``--help``."""
    context = getattr(err, "ctx", None)
    where = f" (see '{context.command_path} --help')" if context is not None else ""
    return " ".join(err.format_message().split()) + where


def _one_line(err: Exception) -> str:
    """The project's errors as they are; an ``OSError`` as ``PATH: reason``."""
    if isinstance(err, OSError):
        path = err.filename if err.filename is not None else err.filename2
        return f"{path}: {err.strerror or err}" if path else str(err.strerror or err)
    return str(err)
