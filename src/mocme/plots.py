"""Small plotting helpers on matplotlib (the optional ``plot`` extra), for reports and benchmarks.

matplotlib is imported on first use; a missing install is a one-line error naming the extra.
Figures come from :func:`subplots`, not pyplot, so no GUI backend is ever involved (PNG renders with
Agg); draw and save them inside :func:`style` so that the project's look never leaks into the
caller's global ``rcParams``.

Example (a benchmark comparing methods)::

    with style():
        figure, ax = subplots(figsize=(6, 3))
        grouped_bars(ax, ["DB15K", "MKG-W"], {"MoCME": [0.40, 0.36], "TuckER": [0.33, 0.32]}, ylabel="MRR")
        save_figure(figure, "mrr.png")
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import Any

from mocme.extras import require

PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")
"""Colours of successive series (colour-blind tolerant, print friendly)."""

STYLE = {
    "figure.dpi": 100,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "svg.fonttype": "none",  # keep text as text: smaller files, crisp in a browser
    "svg.hashsalt": "mocme",  # deterministic element ids
}


def require_matplotlib() -> ModuleType:
    """The ``matplotlib`` module; a one-line error naming the ``plot`` extra when it is missing."""
    return require("matplotlib", extra="plot")


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A new ``Figure`` and its axes, as ``pyplot.subplots`` gives them, without pyplot.

    The figure belongs to no GUI backend or pyplot registry: it renders with Agg (PNG) or the SVG
    backend when saved and is freed like any object, so the caller's backend is never touched.
    """
    figure_kwargs = {k: kwargs.pop(k) for k in ("figsize", "dpi", "layout") if k in kwargs}
    figure = require("matplotlib.figure", extra="plot").Figure(**figure_kwargs)
    return figure, figure.subplots(nrows, ncols, **kwargs)


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Create and save figures inside this context to give them the project's look."""
    with require_matplotlib().rc_context(STYLE):
        yield


def color(index: int) -> str:
    """The colour of series ``index`` (cycling through :data:`PALETTE`)."""
    return PALETTE[index % len(PALETTE)]


def grouped_bars(
    ax: Any,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str | None = None,
    title: str | None = None,
    labels: bool = True,
    fmt: str = "{:.2f}",
) -> None:
    """Draw one cluster of bars per group, one bar per series, on the axes ``ax``.

    Args:
        groups: the cluster names along the x axis, ``G`` of them.
        series: ``{legend name: G values}``; a NaN value leaves its bar out.
        labels: write each value above its bar (with ``fmt``).
    """
    count = max(len(series), 1)
    width = 0.8 / count
    for i, (name, values) in enumerate(series.items()):
        if len(values) != len(groups):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(groups)} groups")
        xs = [g + (i - (count - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width * 0.92, label=name, color=color(i))
        if labels:
            shown = [fmt.format(v) if v == v else "" for v in values]
            ax.bar_label(bars, shown, padding=2, fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.grid(axis="x", visible=False)
    ax.margins(y=0.12)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()


NO_DATE = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}
"""``savefig`` metadata that leaves the creation date out, per format (PNG carries none)."""


def figure_svg(figure: Any) -> str:
    """The figure as standalone SVG text (no date, deterministic ids)."""
    buffer = io.StringIO()
    with style():
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata=NO_DATE["svg"])
    return buffer.getvalue()


def save_figure(figure: Any, path: str | os.PathLike[str]) -> None:
    """Write the figure to ``path`` (format from the suffix: .svg, .png, .pdf) atomically, with no date
    in it, so the same figure gives the same file."""
    from mocme.io import atomic_path

    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    with atomic_path(path) as tmp, style():
        figure.savefig(tmp, format=suffix, bbox_inches="tight", dpi=150, metadata=NO_DATE.get(suffix))
