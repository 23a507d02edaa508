"""MkDocs hooks: the generated reference pages and a tidier rendering of Sphinx-style docstrings.

A page asks for generated content with a marker line, ``<!-- mocme:NAME -->``, where NAME is
``config-reference``, ``cli-reference`` or ``benchmarks``. The content is produced from the code at
every build, so it cannot go stale; an unknown marker stops the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from benchmarks_page import FILE, benchmarks_markdown
from cli_reference import cli_reference
from config_reference import config_reference

_MARKER = re.compile(r"^<!-- mocme:([a-z-]+) -->$", re.MULTILINE)
# Sphinx roles that docstrings use (:func:`x`, :class:`~a.b.C`): rendered as plain code.
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|const):<code>(~?)([^<]+)</code>")


def _root(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent


def on_config(config: Any) -> Any:
    """Generate from the source tree being built, even when another mocme is installed."""
    source = str(_root(config) / "src")
    if source not in sys.path:
        sys.path.insert(0, source)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    generators = {
        "config-reference": config_reference,
        "cli-reference": cli_reference,
        "benchmarks": lambda: benchmarks_markdown(_root(config)),
    }

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in generators:
            raise ValueError(f"{page.file.src_path}: unknown generated-content marker {match.group(0)!r}")
        return generators[name]()

    return _MARKER.sub(expand, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    html = _ROLE.sub(lambda m: f"<code>{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}</code>", html)
    return html.replace("::</p>", ":</p>")  # reST's "Example::" before a literal block


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    benchmarks = _root(config) / FILE
    if benchmarks.exists():
        server.watch(str(benchmarks))
    return server
