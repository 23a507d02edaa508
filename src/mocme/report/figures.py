"""The report's figures, drawn with matplotlib from a run's trace, metrics and modality weights.

Every function returns a matplotlib ``Figure``, or ``None`` when the run holds no data for it.
Call them, and save what they return, inside :func:`mocme.plots.style`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from mocme.evaluation.categories import CATEGORIES
from mocme.evaluation.evaluator import DEGREE_GROUPS
from mocme.plots import color, grouped_bars, subplots
from mocme.report.weights import RECIPROCAL, ModalityWeights

MRR = "inverse_harmonic_mean_rank"

SMALL = (4.6, 3.0)
"""Size in inches of a one-panel figure (two fit side by side in the report)."""
MARKERS_UP_TO = 40
"""Curves with at most this many epochs show a marker at every point."""
MAX_RELATIONS = 30
"""Rows of the per-relation weight figure (the relations with most validation queries)."""
LABEL_WIDTH = 32
"""Longest relation label, in characters."""


def loss_curves(trace: Sequence[dict[str, Any]]) -> Any | None:
    """Mean training loss per epoch of each component (scorers, regularisation); the total is their sum."""
    if not trace:
        return None
    fig, ax = subplots(figsize=SMALL)
    epochs = [r["epoch"] for r in trace]
    components = list(dict.fromkeys(c for r in trace for c in r.get("losses", {}))) or ["loss"]
    values = []
    for i, component in enumerate(components):
        ys = [r.get("losses", {}).get(component, r["loss"] if component == "loss" else math.nan) for r in trace]
        _curve(ax, epochs, ys, component, color(i))
        values += ys
    _log_scale_if_wide(ax, values)
    ax.set(title="Training loss", xlabel="epoch", ylabel="loss")
    ax.legend()
    return fig


def validation_curves(trace: Sequence[dict[str, Any]], selected_epoch: int | None) -> Any | None:
    """Validation MRR and Hits@k (both sides, realistic ranks), with the selected epoch marked."""
    records = [r for r in trace if r.get("valid")]
    if not records:
        return None
    fig, ax = subplots(figsize=SMALL)
    epochs = [r["epoch"] for r in records]
    prefix = "both.realistic."
    hits = {k.removeprefix(prefix) for r in records for k in r["valid"] if k.startswith(prefix + "hits_at_")}
    names = ["inverse_harmonic_mean_rank", *sorted(hits, key=lambda name: int(name.removeprefix("hits_at_")))]
    for i, name in enumerate(names):
        ys = [r["valid"].get(prefix + name, math.nan) for r in records]
        label = "MRR" if name == "inverse_harmonic_mean_rank" else f"Hits@{name.removeprefix('hits_at_')}"
        _curve(ax, epochs, ys, label, color(i))
    if selected_epoch is not None:
        ax.axvline(selected_epoch, color="#888888", linestyle=":", linewidth=1.2)
        ax.annotate(
            f"selected: epoch {selected_epoch}",
            (selected_epoch, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color="#555555",
        )
    ax.set_ylim(bottom=0)
    ax.set(title="Validation metrics", xlabel="epoch", ylabel="filtered, realistic")
    ax.legend(loc="best")
    return fig


def gradient_norms(trace: Sequence[dict[str, Any]]) -> Any | None:
    """Mean and maximum gradient norm over each epoch's batches."""
    records = [r for r in trace if r.get("grad_norm")]
    if not records:
        return None
    fig, ax = subplots(figsize=SMALL)
    epochs = [r["epoch"] for r in records]
    values = []
    for i, key in enumerate(("mean", "max")):
        ys = [r["grad_norm"].get(key, math.nan) for r in records]
        _curve(ax, epochs, ys, key, color(i))
        values += ys
    _log_scale_if_wide(ax, values)
    ax.set(title="Gradient norm (per batch)", xlabel="epoch", ylabel="L2 norm")
    ax.legend()
    return fig


def schedules(trace: Sequence[dict[str, Any]]) -> Any | None:
    """The learning rate and, when EGNS ran, its entropy temperature ``τ_t``, per epoch."""
    named = (("lr", "Learning rate"), ("egns_temperature", "EGNS temperature τ_t"))
    panels = [(key, title) for key, title in named if any(key in r for r in trace)]
    if not panels:
        return None
    from matplotlib import ticker

    fig, axes = subplots(1, len(panels), figsize=SMALL, squeeze=False)
    for i, (ax, (key, title)) in enumerate(zip(axes[0], panels, strict=True)):
        records = [r for r in trace if key in r]
        ys = [r[key] for r in records]
        _curve(ax, [r["epoch"] for r in records], ys, None, color(i))
        if min(ys) == max(ys):
            ax.set_ylim(0, 1.5 * ys[0] if ys[0] > 0 else 1)
        _log_scale_if_wide(ax, ys)
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.set(title=title, xlabel="epoch")
    fig.tight_layout()
    return fig


def hits_by_category(metrics: dict[str, Any]) -> Any | None:
    """Hits@k (both sides, realistic ranks) per relation category, one panel per split."""
    splits = [s for s in ("valid", "test") if metrics.get(s, {}).get("by_relation_category")]
    if not splits:
        return None
    fig, axes = subplots(1, len(splits), figsize=(4.6 * len(splits), 3.2), squeeze=False, sharey=True)
    for ax, split in zip(axes[0], splits, strict=True):
        by_category = metrics[split]["by_relation_category"]
        categories = ordered_categories(by_category)
        some = by_category[categories[0]]["both"]["realistic"]
        ks = sorted(int(k.removeprefix("hits_at_")) for k in some if k.startswith("hits_at_"))
        series = {
            f"Hits@{k}": [by_category[c]["both"]["realistic"].get(f"hits_at_{k}", math.nan) for c in categories]
            for k in ks
        }
        groups = [f"{c}\n({by_category[c]['both']['count']} queries)" for c in categories]
        grouped_bars(ax, groups, series, title=split, fmt="{:.2f}")
        ax.set_ylim(0, 1.08)
    axes[0][0].set_ylabel("filtered, realistic")
    fig.suptitle("Hits@k by relation category", fontweight="bold", fontsize=10)
    fig.tight_layout()
    return fig


def mrr_by_degree(metrics: dict[str, Any]) -> Any | None:
    """Realistic MRR per training-degree group of a triple's less-known entity, one bar per split."""
    splits = [s for s in ("valid", "test") if metrics.get(s, {}).get("by_degree")]
    if not splits:
        return None
    present = {group for split in splits for group in metrics[split]["by_degree"]}
    groups = [group for group in DEGREE_GROUPS if group in present]
    series = {
        split: [
            metrics[split]["by_degree"].get(g, {}).get("both", {}).get("realistic", {}).get(MRR, math.nan)
            for g in groups
        ]
        for split in splits
    }
    last = splits[-1]
    labels = [f"{g}\n({metrics[last]['by_degree'].get(g, {}).get('triples', 0)})" for g in groups]
    fig, ax = subplots(figsize=(max(4.6, 0.9 * len(groups) + 1.5), 3.2))
    grouped_bars(ax, labels, series, fmt="{:.2f}")
    ax.set_ylim(0, 1.08)
    ax.set(xlabel=f"training triples of the less-known entity ({last} triples per group)", ylabel="MRR, realistic")
    ax.legend(frameon=False, fontsize=8)
    fig.suptitle("MRR by the training degree of a triple's less-known entity", fontweight="bold", fontsize=10)
    fig.tight_layout()
    return fig


def alpha_distribution(weights: ModalityWeights) -> Any:
    """Violins of each modality's ``α`` (neutral context) over the entities that have it.

    Each modality's panel splits its entities into those with every modality and those missing
    some; the weight of a missing modality is 0 by construction and is left out.
    """
    count = len(weights.modalities)
    from matplotlib.patches import Rectangle

    fig, axes = subplots(1, count, figsize=(max(2.3 * count, 4.6), 3.2), squeeze=False, sharey=True)
    complete = weights.complete
    groups = (("entity has all modalities", complete, color(0)), ("entity misses some", ~complete, color(1)))
    for m, (ax, name) in enumerate(zip(axes[0], weights.modalities, strict=True)):
        has = weights.available[:, m]
        counts = []
        for x, (_, members, shade) in enumerate(groups):
            values = weights.alpha[has & members, m].numpy()
            _violin(ax, x, values, shade)
            counts.append(f"n = {len(values)}")
        ax.set_xticks(range(len(groups)), counts)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_title(literal(name))
    handles = [Rectangle((0, 0), 1, 1, color=shade, alpha=0.55) for _, _, shade in groups]
    fig.legend(handles, [label for label, _, _ in groups], loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.01))
    axes[0][0].set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("α, neutral context")
    fig.suptitle("Inter-modal weights α per modality (entities that have it)", fontweight="bold", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def alpha_by_relation(weights: ModalityWeights) -> Any | None:
    """Heat map of the mean ``α`` per query relation (validation queries, in relation context)."""
    if not weights.relations:
        return None
    order = weights.queries.argsort(descending=True, stable=True)[:MAX_RELATIONS].sort().values
    rows = ["all entities (neutral)"] + [
        f"{literal(short_label(weights.relations[i]))} ({int(weights.queries[i])})" for i in order
    ]
    table = [weights.alpha.mean(0).tolist()] + [weights.by_relation[i].tolist() for i in order]
    count = len(weights.modalities)
    fig, ax = subplots(figsize=(2.2 + 1.1 * count + 0.06 * max(map(len, rows)), 0.9 + 0.26 * len(rows)))
    image = ax.imshow(table, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for r, values in enumerate(table):
        for m, value in enumerate(values):
            ax.text(
                m, r, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value > 0.6 else "black"
            )
    ax.set_xticks(range(count), [literal(m) for m in weights.modalities])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(rows)), rows)
    ax.axhline(0.5, color="white", linewidth=3)
    ax.grid(False)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="mean α")
    ax.set_title("Mean α of the query entity per relation (validation queries)", pad=22)
    fig.tight_layout()
    return fig


def ordered_categories(by_category: dict[str, Any]) -> list[str]:
    """The categories present, in the usual order 1-1, 1-N, N-1, N-N (any others after them)."""
    return [c for c in CATEGORIES if c in by_category] + [c for c in by_category if c not in CATEGORIES]


def literal(text: str) -> str:
    """``text`` as matplotlib shows it verbatim: a ``$`` would start its maths mode (``a$\\foo$b`` raises)."""
    return text.replace("$", r"\$")


def short_label(name: str, width: int = LABEL_WIDTH) -> str:
    """A relation name fit for an axis: a URI's last segment (``<http://x.org/ontology/country>`` ->
    ``country``), otherwise the name, cut to ``width`` characters from the left."""
    suffix = RECIPROCAL if name.endswith(RECIPROCAL) else ""
    bare = name.removesuffix(suffix)
    if "://" in bare:
        bare = re.split(r"[/#]", bare.strip("<>").rstrip("/#"))[-1]
    bare += suffix
    return bare if len(bare) <= width else "…" + bare[-(width - 1) :]


# -- helpers -----------------------------------------------------------------------------------------
def _curve(ax: Any, xs: Sequence[float], ys: Sequence[float], label: str | None, shade: str, **style: Any) -> None:
    marker = "o" if len(xs) <= MARKERS_UP_TO else None
    ax.plot(xs, ys, label=label, color=shade, marker=marker, markersize=3.5, linewidth=1.5, **style)
    if len(xs) <= 12:
        ax.set_xticks(xs)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))


def _log_scale_if_wide(ax: Any, values: Sequence[float]) -> None:
    """Log y axis when every value is positive and they span more than a factor of 20."""
    finite = [v for v in values if v == v and not math.isinf(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")


def _violin(ax: Any, x: float, values: Any, shade: str) -> None:
    """One violin at ``x``; a point where the values are too few or all equal for a density."""
    if len(values) == 0:
        ax.text(x, 0.5, "none", ha="center", va="center", color="#888888", fontsize=8)
        return
    if len(values) < 3 or float(values.max() - values.min()) < 1e-6:
        ax.plot([x], [float(values.mean())], marker="D", color=shade, markersize=6)
        return
    parts = ax.violinplot([values], positions=[x], widths=0.75, showmedians=True, showextrema=True)
    for body in parts["bodies"]:
        body.set_facecolor(shade)
        body.set_edgecolor(shade)
        body.set_alpha(0.55)
    for key in ("cmedians", "cmins", "cmaxes", "cbars"):
        parts[key].set_color(shade)
        parts[key].set_linewidth(1)
