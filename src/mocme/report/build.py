"""Assemble a run directory's report: config, metadata, metrics tables and figures in one HTML file."""

from __future__ import annotations

import json
import os
import warnings
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from mocme.config import RunConfig
from mocme.errors import DataWarning, MocmeError, RunDirError
from mocme.evaluation.evaluator import SEEN_GROUPS
from mocme.evaluation.metrics import RANK_TYPES, short_name
from mocme.io import write_text_atomic
from mocme.plots import figure_svg, require_matplotlib, style
from mocme.report import figures
from mocme.report import html as h
from mocme.report.weights import ModalityWeights
from mocme.rundir import RunDirectory

REPORT_NAME = "report.html"
SIDES = ("both", "tail", "head")
PROTOCOL = (
    "Filtered ranking against every entity (known true answers from train, valid and test removed), "
    "both directions. Realistic ranks (the mean of optimistic and pessimistic, i.e. ties count half) "
    "are the headline; optimistic and pessimistic are shown beside them. Names follow PyKEEN: "
    "MRR = inverse_harmonic_mean_rank, MR = arithmetic_mean_rank."
)


def write_report(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``RUN_DIR/report.html``) atomically.

    ``data_dir`` replaces the config's benchmark folder when the model is rebuilt (for the weights).
    """
    directory = RunDirectory(run_dir)
    path = Path(out) if out is not None else directory.path / REPORT_NAME
    if path.is_dir():
        raise MocmeError(f"{path}: is a directory; give the report's file name")
    if path.resolve().parent == directory.path.resolve() and path.name != REPORT_NAME and path.exists():
        raise MocmeError(f"{path}: is a file of the run itself; give the report another name")
    if path.resolve().is_relative_to((directory.path / "checkpoints").resolve()):
        raise MocmeError(f"{path}: is inside the run's checkpoints; give the report another place")
    if path.parent.exists() and not path.parent.is_dir():
        raise MocmeError(f"{path.parent}: is not a folder")
    write_text_atomic(path, build_report(directory, data_dir))
    return path


def build_report(directory: RunDirectory, data_dir: str | os.PathLike[str] | None = None) -> str:
    """The report of a run directory as one self-contained HTML page.

    A run that has not finished (no ``metrics.json``) still gets its curves; the modality-weight
    figures need the model, rebuilt from the config and the selected checkpoint.
    """
    require_matplotlib()  # fail early, before any work, when matplotlib is missing
    config = directory.load_config()
    config_text = directory.config_path.read_text(encoding="utf-8")
    metadata = _read_json(directory.metadata_path)
    trace = directory.trace()
    metrics = _read_json(directory.metrics_path)
    unfinished = not directory.metrics_path.exists()
    name = f"{config.model.name} on {metrics.get('dataset') or config.dataset.name}"
    with style():
        body = [
            f"<h1>{escape(name)}</h1>",
            f'<p class="subtitle">Run directory <code>{escape(str(directory.path))}</code> · started '
            f"{escape(str(metadata.get('started', '?')))} · report generated "
            f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}</p>",
            h.note("No metrics.json: the run has not finished. The curves show the epochs trained so far.")
            if unfinished
            else "",
            h.cards(_headline(metrics, trace)),
            _metrics_section(metrics, config.training.metric),
            _training_section(trace, metrics.get("selected_epoch")),
            _categories_section(metrics),
            _seen_section(metrics),
            _degree_section(metrics),
            _modalities_section(directory, metrics, config, data_dir),
            _run_section(metadata, config_text),
        ]
    return h.page(f"mocme report: {name}", "\n".join(part for part in body if part))


# -- sections ----------------------------------------------------------------------------------------
def _headline(metrics: dict[str, Any], trace: list[dict[str, Any]]) -> list[tuple[str, str]]:
    items = []
    if metrics.get("modalities"):
        items.append(("dataset modalities", " + ".join(metrics["modalities"])))
    if "selected_epoch" in metrics:
        items.append(("selected epoch", f"{metrics['selected_epoch']} of {metrics['epochs_trained']}"))
    elif trace:
        items.append(("epochs trained", str(trace[-1]["epoch"])))
    for split in ("valid", "test"):
        realistic = metrics.get(split, {}).get("both", {}).get("realistic")
        if realistic:
            items.append((f"{split} MRR", h.number(realistic["inverse_harmonic_mean_rank"])))
            for k in (1, 10):
                if f"hits_at_{k}" in realistic:
                    items.append((f"{split} Hits@{k}", h.number(realistic[f"hits_at_{k}"])))
    seconds = sum(r.get("seconds", 0.0) for r in trace)
    if trace:
        items.append(("training time", f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.1f} s"))
    return items


def _metrics_section(metrics: dict[str, Any], selection: str) -> str:
    splits = [s for s in ("valid", "test") if s in metrics]
    if not splits:
        return ""
    if "valid" in metrics:
        chosen = (
            f"Selected checkpoint: {metrics.get('selected_checkpoint')} (epoch {metrics.get('selected_epoch')}, "
            f"on {metrics.get('selection_metric', 'valid.' + selection)})"
        )
    else:
        chosen = f"No validation split: the last epoch's checkpoint is used (epoch {metrics.get('selected_epoch')})"
    selected = chosen + (
        "; the test split was scored once, there." if "test" in metrics else "; the test split was not scored."
    )
    parts = [f"<p>{escape(PROTOCOL)}</p>", f"<p>{escape(selected)}</p>"]
    for split in splits:
        parts += [_split_heading(split, metrics[split]), _tie_table(metrics[split])]
    return h.section("Metrics", *parts, anchor="metrics")


def _split_heading(split: str, result: dict[str, Any]) -> str:
    return h.heading(f"{split} ({result['both']['count']} queries, both directions)")


def _tie_table(result: dict[str, Any]) -> str:
    """Rows per side; column groups per rank type (realistic first), every metric in each."""
    names = list(result["both"]["realistic"])
    headers = ["side"] + [short_name(n) for _ in RANK_TYPES for n in names] + ["queries"]
    rows = [
        [side] + [result[side][t][n] for t in RANK_TYPES for n in names] + [result[side]["count"]]
        for side in SIDES
        if side in result
    ]
    width = len(names)
    separators = [1 + i * width for i in range(len(RANK_TYPES))] + [1 + len(RANK_TYPES) * width]
    muted = list(range(1 + width, 1 + len(RANK_TYPES) * width))
    groups = [("", 1)] + [(t, width) for t in RANK_TYPES] + [("", 1)]
    return h.table(headers, rows, groups=groups, separators=separators, muted=muted, wide=True)


def _training_section(trace: list[dict[str, Any]], selected_epoch: int | None) -> str:
    if not trace:
        return h.section("Training", h.note("The trace is empty: no epoch has finished."), anchor="training")
    drawn = [
        (
            figures.loss_curves(trace),
            "Mean training loss per epoch of each scorer (and the regulariser, when on); "
            "the loss trained is their sum.",
            "loss",
        ),
        (
            figures.validation_curves(trace, selected_epoch),
            "Validation MRR and Hits@k (both directions, realistic ranks); the dotted line marks the epoch "
            "selected on validation.",
            "validation metrics",
        ),
        (figures.gradient_norms(trace), "Mean and largest gradient norm over each epoch's batches.", "gradient norm"),
        (
            figures.schedules(trace),
            "Learning rate and, when EGNS selects negatives, its entropy temperature (after the warm-up epochs).",
            "schedules",
        ),
    ]
    items = [h.figure(figure_svg(fig), caption, alt) for fig, caption, alt in drawn if fig is not None]
    return h.section("Training", h.figures(*items), anchor="training")


def _categories_section(metrics: dict[str, Any]) -> str:
    fig = figures.hits_by_category(metrics)
    if fig is None:
        return ""
    caption = (
        "Hits@k (both directions, realistic ranks) per relation category, from the training split's "
        "tails per head and heads per tail (threshold 1.5)."
    )
    rows = []
    names: list[str] = []
    for split in ("valid", "test"):
        by_category = metrics.get(split, {}).get("by_relation_category", {})
        for category in figures.ordered_categories(by_category):
            realistic = by_category[category]["both"]["realistic"]
            names = names or list(realistic)
            rows.append([split, category, *(realistic.get(n) for n in names), by_category[category]["both"]["count"]])
    table = h.table(["split", "category", *(short_name(n) for n in names), "queries"], rows)
    return h.section(
        "Relation categories",
        h.figures(h.figure(figure_svg(fig), caption, "Hits@k by category", True)),
        table,
        anchor="categories",
    )


def _group_rows(metrics: dict[str, Any], breakdown: str, label=lambda group: group) -> tuple[list[list], list[str]]:
    """Rows ``[split, label, realistic metrics..., queries, triples]`` of a grouped breakdown that
    counts triples (``by_seen``, ``by_degree``), and the metric names of its columns."""
    rows = []
    names: list[str] = []
    for split in ("valid", "test"):
        for group, values in metrics.get(split, {}).get(breakdown, {}).items():
            realistic = values["both"]["realistic"]
            names = names or list(realistic)
            rows.append(
                [split, label(group), *(realistic.get(n) for n in names), values["both"]["count"], values["triples"]]
            )
    return rows, names


def _seen_section(metrics: dict[str, Any]) -> str:
    """Realistic metrics by whether the query and answer entities occur in a training triple."""
    rows, names = _group_rows(metrics, "by_seen", lambda group: SEEN_GROUPS.get(group, group))
    if not rows:
        return ""
    inductive = any(row[1] != SEEN_GROUPS["seen"] for row in rows)
    text = (
        "Triples with an entity that no training triple has are placed by their other modalities alone "
        "(the inductive case); their rows are the split's own ranks, grouped."
        if inductive
        else "Every entity of these splits occurs in a training triple: there is no unseen group."
    )
    table = h.table(["split", "group", *(short_name(n) for n in names), "queries", "triples"], rows)
    return h.section("Seen in training", h.note(text), table, anchor="seen")


def _degree_section(metrics: dict[str, Any]) -> str:
    """Realistic metrics by the training degree of a triple's less-known entity."""
    fig = figures.mrr_by_degree(metrics)
    if fig is None:
        return ""
    rows, names = _group_rows(metrics, "by_degree")
    caption = (
        "Each triple counts in the group of its less-known entity's training triples (0: unseen in "
        "training); where structure is thin, the other modalities have the most to add."
    )
    table = h.table(["split", "training triples", *(short_name(n) for n in names), "queries", "triples"], rows)
    return h.section(
        "By training degree",
        h.figures(h.figure(figure_svg(fig), caption, "MRR by degree", True)),
        table,
        anchor="degree",
    )


def _modalities_section(
    directory: RunDirectory, metrics: dict[str, Any], config: RunConfig, data_dir: str | os.PathLike[str] | None
) -> str:
    parts = []
    rows = []
    names: list[str] = []
    for split in ("valid", "test"):
        for modality, groups in metrics.get(split, {}).get("by_modality", {}).items():
            for label, result in groups.items():
                realistic = result["both"]["realistic"]
                names = names or list(realistic)
                rows.append([split, modality, label, *(realistic.get(n) for n in names), result["both"]["count"]])
    if rows:
        parts += [
            h.heading("Metrics by the answer entity's modality availability"),
            h.table(["split", "modality", "answer has it", *(short_name(n) for n in names), "queries"], rows),
        ]
    parts.append(h.heading("Inter-modal weights α"))
    weights, reason = _weights(directory, config, data_dir)
    if weights is None:
        parts.append(h.note(reason))
    else:
        items = [
            h.figure(
                figure_svg(figures.alpha_distribution(weights)),
                "Weight α of each modality in the unified embedding, per entity, in the neutral (no relation) "
                "context; entities that lack a modality give it weight 0 and are left out of its panel. "
                "n counts the entities in each group; lines mark the median and the extremes."
                + (
                    " This run's unified embedding is anchored: an entity's structural view enters it whole "
                    "and each other view is added with weight α, so structure's own α only sets the others' share."
                    if config.model.unified == "anchored"
                    else ""
                ),
                "alpha distribution",
                wide=True,
            )
        ]
        by_relation = figures.alpha_by_relation(weights)
        if by_relation is not None:
            items.append(
                h.figure(
                    figure_svg(by_relation),
                    "Mean α of the query entity over the validation queries of each relation, encoded in that "
                    "relation's context (⁻¹: the reciprocal relation, i.e. head prediction; in brackets the "
                    f"number of queries; at most {figures.MAX_RELATIONS} relations, the most queried). "
                    "The first row averages all entities in the neutral context. Missing modalities count as 0.",
                    "alpha by relation",
                    wide=True,
                )
            )
        parts.append(h.figures(*items))
    return h.section("Modalities", *parts, anchor="modalities")


def _weights(
    directory: RunDirectory, config: RunConfig, data_dir: str | os.PathLike[str] | None
) -> tuple[ModalityWeights | None, str]:
    """The run's α (selected checkpoint), or ``None`` and why not."""
    if config.model.name != "mocme":
        return None, (
            f"{config.model.name} is a structure-only baseline: it has no modality experts, so there are no "
            "inter-modal weights to show."
        )
    from mocme.data.loading import load_dataset
    from mocme.models.mocme import MoCME
    from mocme.pipeline import load_run
    from mocme.report.weights import modality_weights

    try:
        dataset = config.dataset if data_dir is None else config.dataset.model_copy(update={"data_dir": Path(data_dir)})
        _, kg, model = load_run(directory.path, kg=load_dataset(dataset), device="cpu")  # a GPU run too
    except MocmeError as err:
        warnings.warn(f"{directory.path}: modality weights left out of the report ({err})", DataWarning, stacklevel=2)
        return None, f"The model could not be loaded, so the weights are left out: {err}"
    assert isinstance(model, MoCME)
    if len(model.modalities) == 1:
        return None, "The model has the structural modality only, so α is 1 for every entity; nothing to show."
    return modality_weights(model, kg), ""


def _run_section(metadata: dict[str, Any], config_text: str) -> str:
    rows = [[key, _plain(value)] for key, value in _flatten(metadata)]
    return h.section(
        "Run",
        h.heading("Metadata"),
        h.table(["field", "value"], rows, wrap=True) if rows else h.note("No metadata.json."),
        h.details("Resolved config (config.yaml)", config_text),
        anchor="run",
    )


# -- helpers -----------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when the file is missing; a one-line error when it is unreadable."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: cannot read ({err})") from None
    return data if isinstance(data, dict) else {}


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _plain(value: Any) -> str:
    return "–" if value is None else str(value)
