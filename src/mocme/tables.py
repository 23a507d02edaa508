"""Plain-text tables of metrics and predictions, for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mocme.evaluation.metrics import short_name


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """A fixed-width table; numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def metrics_table(metrics: dict[str, Any], title: str | None = None) -> str:
    """Realistic MRR, MR, Hits@k per side, with optimistic and pessimistic MRR beside them."""
    sides = [s for s in ("both", "tail", "head") if s in metrics]
    if not sides:
        return title or ""
    realistic = metrics[sides[0]]["realistic"]
    names = list(realistic)
    headers = ["side", *(short_name(n) for n in names), "MRR opt", "MRR pess", "queries"]
    rows = []
    for side in sides:
        row = [side, *(metrics[side]["realistic"][n] for n in names)]
        row += [
            metrics[side]["optimistic"]["inverse_harmonic_mean_rank"],
            metrics[side]["pessimistic"]["inverse_harmonic_mean_rank"],
            metrics[side]["count"],
        ]
        rows.append(row)
    return render(headers, rows, title)


def breakdown_table(metrics: dict[str, Any]) -> str:
    """Realistic MRR and Hits@10 (both sides) per relation category and per modality availability."""
    rows = []
    for category, values in metrics.get("by_relation_category", {}).items():
        rows.append([f"relations {category}", *_summary(values)])
    for modality, groups in metrics.get("by_modality", {}).items():
        for label, values in groups.items():
            rows.append([f"answer {label}: {modality}", *_summary(values)])
    if not rows:
        return ""
    return render(["group", "MRR", "Hits@1", "Hits@10", "queries"], rows)


def _summary(values: dict[str, Any]) -> list[Any]:
    both = values["both"]
    realistic = both["realistic"]
    return [
        realistic["inverse_harmonic_mean_rank"],
        realistic.get("hits_at_1", float("nan")),
        realistic.get("hits_at_10", float("nan")),
        both["count"],
    ]


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value.is_integer() and abs(value) >= 1:
            return str(int(value))
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or value is None
