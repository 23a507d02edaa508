"""The benchmarks page: the repository's ``BENCHMARKS.md``, read at build time, or a "pending" note.

The file is written for the repository, so its relative links point at repository paths: links into
``docs/`` become links between pages, other paths become the path in code (the site holds no
copy of them). Headings move one level down, under the page's own title.
"""

from __future__ import annotations

import re
from pathlib import Path

FILE = "BENCHMARKS.md"
PENDING = (
    '!!! note "Results pending"\n'
    f"    This version of the repository has no `{FILE}` yet, so there are no benchmark results to show.\n"
    f"    When `{FILE}` exists at the root of the repository, its content appears on this page at the next build.\n"
)
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def benchmarks_markdown(root: Path) -> str:
    """``BENCHMARKS.md`` under ``root``, adapted to the site, or the pending note when it is absent."""
    path = root / FILE
    if not path.is_file():
        return PENDING
    text = path.read_text(encoding="utf-8")
    return "\n".join(_adapt(line) for line in _outside_fences(text.splitlines())) + "\n"


def _outside_fences(lines: list[str]) -> list[tuple[str, bool]]:
    out, fenced = [], False
    for line in lines:
        if _FENCE.match(line):
            out.append((line, True))
            fenced = not fenced
            continue
        out.append((line, fenced))
    return out


def _adapt(item: tuple[str, bool]) -> str:
    line, fenced = item
    if fenced:
        return line
    if line.startswith("#"):
        line = "#" + line
    return _LINK.sub(_link, line)


def _link(match: re.Match[str]) -> str:
    text, target = match.group(1), match.group(2)
    if re.match(r"^([a-z][a-z0-9+.-]*:|#)", target):
        return match.group(0)
    clean = target.removeprefix("./")
    if clean.startswith("docs/"):
        return f"[{text}]({clean.removeprefix('docs/')})"
    if text.strip("`") == clean:
        return f"`{clean}`"
    return f"{text} (`{clean}`)"
