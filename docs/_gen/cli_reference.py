"""The CLI reference, generated from the Typer app (``typer.main.get_command(mocme.cli.app)``).

Each command and sub-command gets its usage line, its help text (written as Markdown: Typer
renders it with ``rich_markup_mode="markdown"``) and a table of its arguments and options, whose
rows are the parameters' own help records (``get_help_record``), the text ``--help`` shows.
"""

from __future__ import annotations

import inspect
from typing import Any

from markdown_text import cell, code, prose


def cli_reference() -> str:
    """Markdown for ``mocme`` and every command under it, depth first, in registration order."""
    import typer.main

    from mocme.cli import app

    root = typer.main.get_command(app)
    context = root.make_context("mocme", [], resilient_parsing=True)
    parts = [_command(root, context, level=2)]
    commands = _subcommands(root, context)
    if commands:
        parts.insert(1, _summary(commands, context))
    for name, command in commands:
        parts.extend(_tree(command, command.make_context(name, [], parent=context, resilient_parsing=True)))
    return "\n\n".join(parts) + "\n"


def _tree(command: Any, context: Any) -> list[str]:
    parts = [_command(command, context, level=2 + context.command_path.count(" ") - 1)]
    for name, sub in _subcommands(command, context):
        parts.extend(_tree(sub, sub.make_context(name, [], parent=context, resilient_parsing=True)))
    return parts


def _subcommands(command: Any, context: Any) -> list[tuple[str, Any]]:
    if not hasattr(command, "list_commands"):
        return []
    found = ((name, command.get_command(context, name)) for name in command.list_commands(context))
    return [(name, sub) for name, sub in found if sub is not None and not getattr(sub, "hidden", False)]


def _summary(commands: list[tuple[str, Any]], context: Any) -> str:
    rows = ["| command | what it does |", "|---|---|"]
    for name, command in commands:
        path = f"{context.command_path} {name}"
        rows.append(f"| [`{path}`](#{_anchor(path)}) | {cell(command.get_short_help_str(limit=200))} |")
    return "\n".join(rows)


def _command(command: Any, context: Any, level: int) -> str:
    path = context.command_path
    usage = " ".join([path, *command.collect_usage_pieces(context)])
    parts = [f"{'#' * level} `{path}`", f"```text\n{usage}\n```"]
    if command.help:
        parts.append(prose(_dedent(command.help)))
    rows = []
    for param in command.get_params(context):
        record = param.get_help_record(context)
        if record is None:
            continue
        kind = "argument" if param.param_type_name == "argument" else "option"
        rows.append(f"| {code(record[0])} | {kind} | {cell(record[1])} |")
    if rows:
        parts.append("\n".join(["| name | kind | help |", "|---|---|---|", *rows]))
    return "\n\n".join(parts)


def _anchor(path: str) -> str:
    """The heading id Python-Markdown's ``toc`` gives ``` `mocme train` ```."""
    return path.replace(" ", "-")


def _dedent(text: str) -> str:
    return inspect.cleandoc(text)
