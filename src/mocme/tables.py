"""Plain-text tables of metrics and predictions, for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mocme.evaluation.evaluator import SEEN_GROUPS
from mocme.evaluation.metrics import short_name


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """A fixed-width table; numbers right-aligned with one precision per column, text left-aligned."""
    numeric = [bool(rows) and all(_is_number(row[i]) for row in rows) for i in range(len(headers))]
    decimals = [_decimals([row[i] for row in rows]) if numeric[i] else None for i in range(len(headers))]
    cells = [[_cell(v, decimals[i]) for i, v in enumerate(row)] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [title] if title else []
    out += [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _decimals(values: Sequence[Any]) -> int:
    """Decimals for a numeric column: 0 for counts, 1 when values reach 100 (ranks), else 4."""
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool) and v == v]
    if all(isinstance(v, int) for v in numbers):
        return 0
    return 1 if max((abs(v) for v in numbers), default=0) >= 100 else 4


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


def scorers_table(per_scorer: dict[str, dict[str, Any]], title: str | None = None) -> str:
    """One row per scorer (both sides, realistic ranks), the joint decision last."""
    realistic = per_scorer["decision"]["both"]["realistic"]
    names = list(realistic)
    rows = []
    for scorer, metrics in per_scorer.items():
        label = "joint decision" if scorer == "decision" else f"{scorer} scorer"
        both = metrics["both"]
        rows.append([label, *(both["realistic"][n] for n in names), both["optimistic"]["inverse_harmonic_mean_rank"]])
    return render(["ranked by", *(short_name(n) for n in names), "MRR opt"], rows, title)


def breakdown_table(metrics: dict[str, Any]) -> str:
    """Realistic MRR and the smallest and largest Hits@K evaluated (both sides) per relation category,
    per modality availability, by whether the query and answer entities were seen in training and by
    the training degree of the less-known of them (with the triples of each group)."""
    hits = _hits_columns(metrics)
    rows = []
    for category, values in metrics.get("by_relation_category", {}).items():
        rows.append([f"relations {category}", *_summary(values, hits), None])
    for modality, groups in metrics.get("by_modality", {}).items():
        for label, values in groups.items():
            rows.append([f"answer {label}: {modality}", *_summary(values, hits), None])
    for group, values in metrics.get("by_seen", {}).items():
        rows.append([SEEN_GROUPS.get(group, group), *_summary(values, hits), values.get("triples")])
    for group, values in metrics.get("by_degree", {}).items():
        triples = "train triple" if group == "1" else "train triples"
        rows.append([f"less-known entity in {group} {triples}", *_summary(values, hits), values.get("triples")])
    if not rows:
        return ""
    return render(["group", "MRR", *(short_name(n) for n in hits), "queries", "triples"], rows)


def _hits_columns(metrics: dict[str, Any]) -> list[str]:
    """The smallest and largest ``hits_at_K`` the metrics hold (one name when a single K was asked)."""
    ks = sorted(int(n.removeprefix("hits_at_")) for n in metrics["both"]["realistic"] if n.startswith("hits_at_"))
    return list(dict.fromkeys(f"hits_at_{k}" for k in (ks[:1] + ks[-1:])))


def _summary(values: dict[str, Any], hits: list[str]) -> list[Any]:
    both = values["both"]
    realistic = both["realistic"]
    return [realistic["inverse_harmonic_mean_rank"], *(realistic[n] for n in hits), both["count"]]


def _cell(value: Any, decimals: int | None = None) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | float) and decimals is not None:
        return "nan" if value != value else f"{value:.{decimals}f}"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4g}"
    return str(value)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) or value is None
