"""Small plotting helpers on matplotlib (the optional ``plot`` extra), for reports and benchmarks.

matplotlib is imported lazily, with the non-interactive Agg backend, and only inside
:func:`pyplot`; a missing install is a one-line error naming the extra. Figures are drawn inside
:func:`style` so that the project's look never leaks into the caller's global ``rcParams``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mocme.errors import MocmeError

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


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend; a :class:`MocmeError` naming the extra when missing."""
    try:
        import matplotlib
    except ImportError:
        raise MocmeError("plotting needs matplotlib, which is not installed: pip install 'mocme[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def style() -> Iterator[Any]:
    """Draw and save figures inside this context to give them the project's look; yields pyplot."""
    plt = pyplot()
    with plt.rc_context(STYLE):
        yield plt


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


def figure_svg(figure: Any) -> str:
    """The figure as standalone SVG text (no date, deterministic ids); the figure is closed."""
    plt = pyplot()
    buffer = io.StringIO()
    try:
        with plt.rc_context(STYLE):
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    finally:
        plt.close(figure)
    return buffer.getvalue()


def save_figure(figure: Any, path: str | os.PathLike[str]) -> None:
    """Write the figure to ``path`` (format from the suffix: .svg, .png, .pdf) atomically; it is closed."""
    from mocme.io import atomic_path

    plt = pyplot()
    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    try:
        with atomic_path(path) as tmp, plt.rc_context(STYLE):
            figure.savefig(tmp, format=suffix, bbox_inches="tight", dpi=150)
    finally:
        plt.close(figure)
