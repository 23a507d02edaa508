"""Small helpers that put arbitrary text into Markdown safely."""

from __future__ import annotations

import html
import re

_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")


def code(text: str) -> str:
    """An inline code span holding ``text`` (backticks inside are fenced with longer runs)."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def cell(text: str) -> str:
    """``text`` for a table cell: one line; HTML, Markdown emphasis and pipes escaped outside code spans."""
    return _escape_outside_code(" ".join(text.split()), pipes=True)


def prose(text: str) -> str:
    """Markdown-ready help text: HTML and emphasis escaped outside indented code blocks."""
    lines, out, in_code, previous_blank = text.split("\n"), [], False, True
    for line in lines:
        if line.startswith("    ") and (in_code or previous_blank):
            in_code = True
            out.append(line)
        else:
            in_code = False
            out.append(_escape_outside_code(line))
        previous_blank = not line.strip()
    return "\n".join(out)


def _escape_outside_code(text: str, pipes: bool = False) -> str:
    out, end = [], 0
    for span in _CODE_SPAN.finditer(text):
        out += [_escape(text[end : span.start()], pipes), span.group(0)]
        end = span.end()
    return "".join([*out, _escape(text[end:], pipes)])


def _escape(text: str, pipes: bool = False) -> str:
    text = html.escape(text, quote=False)
    for char in "\\*_[]" + ("|" if pipes else ""):
        text = text.replace(char, "\\" + char)
    return text
