"""HTML fragments of the report: one self-contained page, no scripts, no external resources."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape
from typing import Any

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1f2328; background: #fff; margin: 0; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d8dee4; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.subtitle { color: #59636e; margin: 0 0 16px; }
code, pre { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0; }
.card { border: 1px solid #d8dee4; border-radius: 6px; padding: 8px 12px; min-width: 110px; }
.card .label { color: #59636e; font-size: 12px; }
.card .value { font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { padding: 3px 7px; border-bottom: 1px solid #e6e9ed; text-align: left; white-space: nowrap; }
thead th { background: #f6f8fa; border-bottom: 1px solid #d0d7de; font-weight: 600; }
thead tr.group th { text-align: center; border-bottom: none; }
.wide-table { overflow-x: auto; }
.wide-table table { font-size: 12px; }
.wide-table th, .wide-table td { padding: 3px 5px; }
table.wrap td:last-child { white-space: normal; overflow-wrap: anywhere; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #6e7781; }
th.sep, td.sep { border-left: 1px solid #d0d7de; }
.figures { display: flex; flex-wrap: wrap; gap: 12px 16px; align-items: flex-start; }
figure { margin: 4px 0; max-width: 100%; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: #59636e; font-size: 12px; margin-top: 4px; max-width: 470px; }
figure.wide figcaption { max-width: 900px; }
.note { background: #f6f8fa; border-left: 3px solid #8c959f; padding: 8px 12px; margin: 8px 0; color: #424a53; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
details pre { background: #f6f8fa; padding: 10px 12px; border-radius: 6px; overflow-x: auto; }
""".strip()


def page(title: str, body: str) -> str:
    """A complete HTML document with the report's style sheet."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'  # no favicon request
        f"<title>{escape(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def section(title: str, *parts: str, anchor: str | None = None) -> str:
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{ident}>\n<h2>{escape(title)}</h2>\n" + "\n".join(p for p in parts if p) + "\n</section>"


def heading(text: str) -> str:
    return f"<h3>{escape(text)}</h3>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def cards(items: Sequence[tuple[str, str]]) -> str:
    """Headline numbers as labelled boxes: ``(label, value)`` pairs."""
    boxes = (
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div></div>'
        for label, value in items
    )
    return '<div class="cards">' + "".join(boxes) + "</div>"


def figure(svg: str, caption: str, alt: str, wide: bool = False) -> str:
    """An SVG figure embedded as a ``data:`` image (its ids cannot clash with the page's)."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (
        f'<figure class="{"wide" if wide else "small"}">'
        f'<img alt="{escape(alt)}" src="data:image/svg+xml;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def figures(*items: str) -> str:
    """Figures side by side, wrapping to the page width."""
    return '<div class="figures">' + "".join(items) + "</div>" if any(items) else ""


def details(summary: str, text: str) -> str:
    """A collapsed block of preformatted text."""
    return f"<details><summary>{escape(summary)}</summary><pre>{escape(text)}</pre></details>"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    groups: Sequence[tuple[str, int]] = (),
    separators: Sequence[int] = (),
    muted: Sequence[int] = (),
    wide: bool = False,
    wrap: bool = False,
) -> str:
    """A table; numbers are right-aligned and formatted by :func:`number`.

    Args:
        groups: an extra header row of ``(label, column span)`` pairs above ``headers``.
        separators: column indices that get a vertical rule on their left.
        muted: column indices shown in grey (secondary numbers).
        wide: smaller type, and a horizontal scroll bar where the page is too narrow.
        wrap: let the last column's text wrap (long free text).
    """

    def cls(i: int, value: Any = None) -> str:
        names = [n for n, on in (("num", _is_number(value)), ("sep", i in separators), ("muted", i in muted)) if on]
        return f' class="{" ".join(names)}"' if names else ""

    head = ""
    if groups:
        cells, start = [], 0
        for label, span in groups:
            cells.append(f'<th colspan="{span}"{cls(start)}>{escape(label)}</th>')
            start += span
        head += '<tr class="group">' + "".join(cells) + "</tr>"
    head += "<tr>" + "".join(f"<th{cls(i)}>{escape(h)}</th>" for i, h in enumerate(headers)) + "</tr>"
    body = "".join(
        "<tr>" + "".join(f"<td{cls(i, v)}>{escape(number(v))}</td>" for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    opening = '<table class="wrap">' if wrap else "<table>"
    html = f"{opening}<thead>{head}</thead><tbody>{body}</tbody></table>"
    return f'<div class="wide-table">{html}</div>' if wide else html


def number(value: Any) -> str:
    """Integers as they are; rates (at most 1) with 4 decimals, larger values with 2 (1 from 1000); NaN as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "–"
    if abs(value) <= 1:
        return f"{value:.4f}"
    return f"{value:.2f}" if abs(value) < 1000 else f"{value:.1f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
