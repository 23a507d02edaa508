"""The benchmarks page: the repository's ``BENCHMARKS.md``, read at build time, or a "pending" note.

The file is written for the repository, so its relative links point at repository paths: links into
``docs/`` become links between pages, other paths become the path in code (the site holds no
copy of them). An SVG figure on a line of its own is drawn inline. Headings move one level down,
under the page's own title.
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
_FIGURE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+\.svg)\)\s*$")
_SVG_START = re.compile(r"<svg\b")


def benchmarks_markdown(root: Path) -> str:
    """``BENCHMARKS.md`` under ``root``, adapted to the site, or the pending note when it is absent."""
    path = root / FILE
    if not path.is_file():
        return PENDING
    text = path.read_text(encoding="utf-8")
    return "\n".join(_adapt(line, root) for line in _outside_fences(text.splitlines())) + "\n"


def _outside_fences(lines: list[str]) -> list[tuple[str, bool]]:
    out, fenced = [], False
    for line in lines:
        if _FENCE.match(line):
            out.append((line, True))
            fenced = not fenced
            continue
        out.append((line, fenced))
    return out


def _adapt(item: tuple[str, bool], root: Path) -> str:
    line, fenced = item
    if fenced:
        return line
    figure = _FIGURE.match(line)
    if figure:
        return _inline_svg(figure.group(1), root / figure.group(2).removeprefix("./"))
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


def _inline_svg(caption: str, path: Path) -> str:
    """The SVG file as a raw HTML block (no XML prolog, no blank lines), or a mention when it is absent."""
    if not path.is_file():
        return f"*Figure not built yet: {caption}*"
    svg = path.read_text(encoding="utf-8")
    start = _SVG_START.search(svg)
    body = "\n".join(line for line in svg[start.start() if start else 0 :].splitlines() if line.strip())
    return f'<figure class="mocme-figure" title="{caption}">\n{body}\n</figure>'
