"""The MMKGC benchmark suite: structural baselines and MoCME on the real benchmarks, same budget.

For each dataset the MoCME config is ``configs/<dataset>.yaml`` (structure + text features); the
MoCME variants and ablations are that config plus a few overrides, so they share the seed, the
epoch budget, the optimiser and the validation schedule. The structural baselines train with their
own recipe, ``configs/baselines/<dataset>-<recipe>.yaml`` (e.g. ComplEx-N3: 1vsAll cross-entropy,
N3, Adagrad); the "MoCME's recipe" rows are baselines trained from the MoCME config instead, for
comparison. Every run selects its epoch on the validation split and scores the test split once.
Text features are computed first (offline MiniLM, ``mocme features text``) when missing; MKG-W has
no entity text in its files, so its text comes from the Wikipedia titles of the 2,255 entities that
the FB15k-Wikidata mapping covers with a title (the rest are masked: an imbalanced modality, which is what MoCME
is for).

    python benchmarks/mmkgc.py --datasets MKG-Y --variants main --set training.epochs=50
    python benchmarks/mmkgc.py --datasets MKG-Y --variants ablation --jobs 4
    python benchmarks/mmkgc.py --datasets MKG-Y --variants ablation-1vsall --seeds 0 1 2 --jobs 2 --threads 1
    python benchmarks/mmkgc.py --datasets MKG-Y --only "ComplEx-N3 (structure, 1vsAll)" --seeds 0 1 2
    python benchmarks/mmkgc.py --table-only          # rebuild the tables from finished runs

With ``--seeds`` every variant runs once per seed (run directories ``<variant>-seed<N>``); a variant
whose row for that seed and overrides is already in ``<out>.json`` is not run again, and the tables
give the mean ± standard deviation over a variant's seeds. Below each ablation table, each switch's
test MRR gap to the set's full model on the seeds both ran, per seed, with the two-sided paired
t-test's p (runs of one seed share what a switch leaves alone: initialisation and batch order).

A run directory without ``metrics.json`` (the suite was killed) resumes from its last checkpoint
when its config is unchanged. Results: ``<out>.json`` (every run) and ``<out>.md`` (tables next to
the published numbers). Each finished row is merged into ``<out>.json`` under a file lock, so two
suites may run side by side (for example one per dataset) without losing each other's rows.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import math
import multiprocessing as mp
import os
import signal
import statistics
import sys
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DATASETS = ("DB15K", "MKG-W", "MKG-Y", "FB15K-237", "WN18RR")
SMOKE = "UMLS"  # small, for a quick end-to-end check of the suite (not part of the default list)
STRUCTURE_ONLY = ["dataset.modalities=[]"]
MOCME_CONFIG = "mocme"  # configs/<dataset>.yaml; "mocme-NAME" is configs/<dataset>-NAME.yaml (MoCME on another
# recipe); any other recipe is a baseline's, configs/baselines/<dataset>-<recipe>.yaml
# Variant name -> overrides; a first item "recipe:NAME" picks the baseline recipe config instead of MoCME's.
MAIN_VARIANTS: dict[str, list[str]] = {  # in the order they run
    "ComplEx-N3 (structure, 1vsAll)": ["recipe:complex-n3"],
    # the configs' text experts are shared; the main-table rows of MKG-Y and DB15K ran linear ones
    "MoCME (structure + text, 1vsAll)": ["recipe:mocme-1vsall", "model.expert=linear"],
    "MoCME (structure + text, 1vsAll, shared experts)": ["recipe:mocme-1vsall", "model.expert=shared"],
    "MoCME (structure only, 1vsAll)": ["recipe:mocme-1vsall", *STRUCTURE_ONLY],
    "TuckER (structure, 1vsAll)": ["recipe:tucker"],
    "MoCME (structure + text)": [],
    "TuckER (MoCME's recipe)": [*STRUCTURE_ONLY, "model.name=tucker"],
    "ComplEx (MoCME's recipe)": [*STRUCTURE_ONLY, "model.name=complex"],
    "MoCME (structure only)": STRUCTURE_ONLY,
}
ABLATION_VARIANTS: dict[str, list[str]] = {
    "MoCME (full)": [],
    "fusion: attention (MoMoK style)": ["model.fusion=attention"],
    "fusion: mean": ["model.fusion=mean"],
    "intra-modal complementarity off": ["model.intra=false"],
    "inter-modal complementarity off": ["model.inter=false"],
    "K = 1 expert": ["model.experts=1"],
    "joint decision: confidence-weighted": ["model.joint=confidence"],
    "joint decision: unified scorer alone": ["model.joint=unified"],
    "negatives: 1-N BCE": ["training.negatives=one_to_n"],
    "negatives: uniform sampled": ["training.negatives=uniform", "training.pool=sampled"],
    "negatives: self-adversarial": ["training.negatives=self_adversarial", "training.pool=sampled"],
    "negatives: Bernoulli sampled": ["training.negatives=bernoulli", "training.pool=sampled"],
    "no text (structure only)": STRUCTURE_ONLY,
}
# MoCME on the 1vsAll recipe (shared text experts), one switch per row; its full model and its
# structure-only row are the main table's runs of the same name (run once, shown in both tables).
SHARED = ["recipe:mocme-1vsall", "model.expert=shared"]
ABLATION_1VSALL_VARIANTS: dict[str, list[str]] = {
    "MoCME (structure + text, 1vsAll, shared experts)": SHARED,
    "1vsAll recipe, fusion: mean": [*SHARED, "model.fusion=mean"],
    "1vsAll recipe, fusion: attention (MoMoK style)": [*SHARED, "model.fusion=attention"],
    "1vsAll recipe, intra-modal complementarity off": [*SHARED, "model.intra=false"],
    "1vsAll recipe, inter-modal complementarity off": [*SHARED, "model.inter=false"],
    "1vsAll recipe, K = 1 expert": [*SHARED, "model.experts=1"],
    "1vsAll recipe, EGNS off (plain 1vsAll)": [*SHARED, "training.negatives=one_vs_all"],
    "1vsAll recipe, degree gate on": [*SHARED, "model.degree_gate=true"],
    "MoCME (structure only, 1vsAll)": MAIN_VARIANTS["MoCME (structure only, 1vsAll)"],
}
# Ablation sets: --variants name -> (table title, variants; the first is the full model).
ABLATIONS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "ablation": ("ablations of MoCME", ABLATION_VARIANTS),
    "ablation-1vsall": ("ablations of MoCME on the 1vsAll recipe", ABLATION_1VSALL_VARIANTS),
}

# Test, filtered; MRR / Hits@1 / Hits@10 in %, as published (see ../shared/METHOD.md). These used
# image and text features that are not available here, and most select on the test split.
PUBLISHED: dict[str, dict[str, tuple[float, float, float]]] = {
    "MoMoK (ICLR 2025)": {
        "DB15K": (39.57, 32.38, 54.14),
        "MKG-W": (35.89, 30.38, 46.13),
        "MKG-Y": (37.91, 35.09, 43.20),
    },
    "MyGO": {"DB15K": (37.72, 30.08, 52.21), "MKG-W": (36.10, 29.78, 47.75), "MKG-Y": (38.44, 35.01, 44.19)},
    "AdaMF": {"DB15K": (32.51, 21.31, 51.68), "MKG-W": (34.27, 27.21, 47.21), "MKG-Y": (38.06, 33.49, 45.48)},
    "MMRNS": {"DB15K": (32.68, 23.01, 51.01), "MKG-W": (35.03, 28.59, 47.47), "MKG-Y": (35.93, 30.53, 45.47)},
    "IMF": {"DB15K": (32.25, 24.20, 48.19), "MKG-W": (34.50, 28.77, 45.44), "MKG-Y": (35.79, 32.95, 40.63)},
    "OTKGE": {"DB15K": (23.86, 18.45, 34.23), "MKG-W": (34.36, 28.85, 44.88), "MKG-Y": (35.51, 31.97, 41.38)},
}


# -- text features -----------------------------------------------------------------------------------
def mkgw_text_file(data_dir: Path, out: Path) -> Path:
    """``name<TAB>title`` for the MKG-W entities that the FB15k mid -> Wikidata -> Wikipedia map covers."""
    mapping = data_dir / "FB15K-237" / "jtwang_fb15k_mid2wikidata_wikipedia.tsv.gz"
    titles = {}
    with gzip.open(mapping, "rt", encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                title = urllib.parse.unquote(parts[2].rsplit("/wiki/", 1)[-1]).replace("_", " ").strip()
                titles[parts[1]] = title
    names = (data_dir / "MKG-W" / "entity2id.txt").read_text(encoding="utf-8").splitlines()[1:]
    lines = []
    for line in names:
        name = line.rsplit(None, 1)[0].strip()
        if name in titles:
            lines.append(f"{name}\t{titles[name]}\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(lines), encoding="utf-8")
    return out


def ensure_text_features(dataset: str, data_dir: Path, features_dir: Path) -> Path:
    """Compute ``features_dir/<dataset>/text.safetensors`` unless it is already up to date."""
    from mocme.cli import main as cli

    target = features_dir / dataset
    args = ["features", "text", dataset, "--data-dir", str(data_dir), "--out", str(target), "--quiet"]
    if dataset == "MKG-W":
        args += ["--text-file", str(mkgw_text_file(data_dir, target / "wikipedia_titles.tsv"))]
    if cli(args) != 0:
        raise SystemExit(f"text features for {dataset} failed")
    return target / "text.safetensors"


# -- runs --------------------------------------------------------------------------------------------
def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one variant (unless its run directory holds a finished run) and return its summary row."""
    import torch

    from mocme import pipeline
    from mocme.config import load_config
    from mocme.data.loading import with_absolute_paths
    from mocme.errors import ConfigError
    from mocme.rundir import RunDirectory

    torch.set_num_threads(job["threads"])
    run_dir = Path(job["run_dir"])
    config = load_config(config_path(job["dataset"], job.get("recipe", MOCME_CONFIG)), job["overrides"])
    config = config.model_copy(update={"dataset": with_absolute_paths(config.dataset)})  # as a run saves it
    directory = RunDirectory(run_dir)
    existing = directory.load_config() if directory.path.joinpath("config.yaml").exists() else None
    if existing is not None and (run_dir / "metrics.json").exists():  # a finished run of this config is reused
        if config_fingerprint(existing) != config_fingerprint(config) or existing.seed != config.seed:
            raise ConfigError(
                f"{run_dir} holds a finished run of another config or seed; train this one elsewhere with "
                "--runs-dir (and --out), or remove that folder first"
            )
    elif existing == config and directory.has_checkpoint("last"):
        pipeline.resume(run_dir)  # a killed suite picks up where it stopped
    else:  # no run, or an unfinished run of another config
        pipeline.train(config, run_dir, overwrite=True)
    return with_head_metrics(summarize(job))


# Config fields a row's identity leaves out: the seed (compared on its own), where the files are (a
# checkout elsewhere is the same run) and how many threads trained it.
UNCOMPARED_FIELDS = ("seed", "threads")


def config_fingerprint(config: Any) -> str:
    """SHA-256 of what a resolved run config trains: its values that differ from the defaults (so a new
    option with a default leaves old runs' fingerprints alone), without the seed, threads, data
    folder and feature file paths."""
    import hashlib

    values = config.model_dump(mode="json", exclude_defaults=True)
    for field in UNCOMPARED_FIELDS:
        values.pop(field, None)
    dataset = values.get("dataset", {})
    dataset.pop("data_dir", None)
    for feature in dataset.get("features", {}).values():
        feature.pop("path", None)
    return hashlib.sha256(json.dumps(_without_empty(values), sort_keys=True).encode()).hexdigest()


def _without_empty(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the sections left empty (a section holding only a location, say)."""
    nested = {key: _without_empty(value) if isinstance(value, dict) else value for key, value in values.items()}
    return {key: value for key, value in nested.items() if value != {}}


def job_fingerprint(job: dict[str, Any]) -> str:
    """The :func:`config_fingerprint` of the config ``job`` would train."""
    from mocme.config import load_config

    config = load_config(config_path(job["dataset"], job.get("recipe", MOCME_CONFIG)), job["overrides"])
    return config_fingerprint(config)


def config_path(dataset: str, recipe: str) -> Path:
    """The run config of ``dataset`` for MoCME (``recipe`` ``mocme``) or a baseline recipe."""
    if recipe == MOCME_CONFIG:
        return ROOT / "configs" / f"{dataset.lower()}.yaml"
    if recipe.startswith(MOCME_CONFIG + "-"):
        return ROOT / "configs" / f"{dataset.lower()}-{recipe.removeprefix(MOCME_CONFIG + '-')}.yaml"
    return ROOT / "configs" / "baselines" / f"{dataset.lower()}-{recipe}.yaml"


def uses_text(recipe: str) -> bool:
    """Whether runs of ``recipe`` read the text features (MoCME's configs do; baselines' do not)."""
    return recipe == MOCME_CONFIG or recipe.startswith(MOCME_CONFIG + "-")


def split_recipe(overrides: list[str]) -> tuple[str, list[str]]:
    """A variant's recipe (``mocme`` unless its first item is ``recipe:NAME``) and its overrides."""
    if overrides and overrides[0].startswith("recipe:"):
        return overrides[0].removeprefix("recipe:"), overrides[1:]
    return MOCME_CONFIG, overrides


def summarize(job: dict[str, Any]) -> dict[str, Any]:
    """The summary row of a finished run, read from its run directory.

    ``seconds_per_epoch`` is the median epoch (validation included), which one slow epoch on a
    shared machine does not move; ``train_seconds`` the sum of all epochs; ``valid_curve`` the
    validation MRR (realistic) at every validated epoch, as ``[epoch, mrr]`` pairs;
    ``test_by_seen`` the test metrics by whether the query and answer entities were seen in
    training (``seen``, ``unseen``, ``query_unseen``, ``answer_unseen``, ``both_unseen``; each with
    its queries and triples) and ``test_by_degree`` by the training degree of a triple's
    less-known entity (``0``, ``1``, ``2-3``, ... ``32+``), for runs whose ``metrics.json`` has them.
    """
    from mocme.rundir import RunDirectory

    directory = RunDirectory(job["run_dir"])
    metrics = directory.metrics()
    config = directory.load_config()
    trace = directory.trace()
    epoch_seconds = [r["seconds"] for r in trace if "seconds" in r]
    by_seen, by_degree = _test_groups(metrics, "by_seen"), _test_groups(metrics, "by_degree")
    row = {
        "dataset": job["dataset"],
        "variant": job["variant"],
        "overrides": job["overrides"],
        "recipe": job.get("recipe", MOCME_CONFIG),
        "modalities": metrics["modalities"] if config.model.name == "mocme" else ["structure"],
        "device": config.device,
        "dim": config.model.dim,
        "epochs_budget": config.training.epochs,
        "precision": config.training.precision,
        "epochs_trained": metrics["epochs_trained"],
        "selected_epoch": metrics["selected_epoch"],
        "seconds_per_epoch": round(statistics.median(epoch_seconds), 2) if epoch_seconds else None,
        "train_seconds": round(sum(epoch_seconds), 1),
        "valid": _headline(metrics["valid"]),
        "test": _headline(metrics["test"]),
        "valid_curve": [[r["epoch"], r["valid"][MRR]] for r in trace if "valid" in r],
        "valid_time_curve": _time_curve(trace),
        "run_dir": job["run_dir"],
        "seed": config.seed,
        "config_sha256": config_fingerprint(config),
        "cpus": _cpus(directory),
    } | {key: job[key] for key in ("threads", "jobs") if key in job}
    if by_seen:
        row["test_by_seen"] = by_seen
    if by_degree:
        row["test_by_degree"] = by_degree
    return row | {key: job[key] for key in ("valid_heads", "valid_heads_queries") if key in job}


def _cpus(directory: Any) -> list[str]:
    """The CPU models the run's epochs ran on (its start and each resume, as ``metadata.json`` records
    them; runs from before the record have none): its wall-clock is theirs."""
    try:
        metadata = json.loads(directory.metadata_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(metadata, dict):
        return []
    resumes = metadata.get("resumes")
    parts = [metadata, *(resumes if isinstance(resumes, list) else [])]
    machines = [part.get("hardware") for part in parts if isinstance(part, dict)]
    return sorted({m["cpu"] for m in machines if isinstance(m, dict) and isinstance(m.get("cpu"), str)})


def _test_groups(metrics: dict[str, Any], breakdown: str) -> dict[str, Any]:
    """The headline metrics and triples of each group of a test breakdown (empty when it is absent)."""
    return {
        group: _headline(values) | {"triples": values["triples"]}
        for group, values in metrics["test"].get(breakdown, {}).items()
    }


def _time_curve(trace: list[dict[str, Any]]) -> list[list[float]]:
    """``[seconds, mrr]`` at every validated epoch: wall-clock seconds of training and validation so far."""
    elapsed, curve = 0.0, []
    for record in trace:
        elapsed += record.get("seconds", 0.0)
        if "valid" in record:
            curve.append([round(elapsed, 1), record["valid"][MRR]])
    return curve


def with_head_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """Add the validation MRR of each MoCME scorer alone (``valid_heads``) to a MoCME row.

    Validation only: it explains the joint decision (which head carries it) without touching test.
    """
    from mocme.pipeline import evaluate_scorers
    from mocme.rundir import RunDirectory

    run_dir = Path(row["run_dir"])
    if "valid_heads" in row or not (run_dir / "metrics.json").exists():
        return row
    if RunDirectory(run_dir).load_config().model.name != "mocme":
        return row
    heads = evaluate_scorers(run_dir, "valid")
    mrr = {head: metrics["both"]["realistic"]["inverse_harmonic_mean_rank"] for head, metrics in heads.items()}
    return {**row, "valid_heads": mrr, "valid_heads_queries": heads["decision"]["both"]["count"]}


# Structure-only rows as MMKGC papers report them (test MRR, %), the bar for the tuned baselines.
PUBLISHED_STRUCTURE = {"DB15K": ("TuckER", 33.86), "MKG-W": ("RotatE", 33.67), "MKG-Y": ("TuckER", 37.05)}


def _headline(split: dict[str, Any]) -> dict[str, Any]:
    both = split["both"]
    return {kind: both[kind] for kind in ("realistic", "optimistic", "pessimistic")} | {"count": both["count"]}


MRR = "both.realistic.inverse_harmonic_mean_rank"  # the headline metric's key in a trace record

# Validation splits whose release repeats training triples: (lines as released, new triples kept).
REDUNDANT_VALID = {"DB15K": (9904, 897)}


# -- seeds -------------------------------------------------------------------------------------------
def seed_of(row: dict[str, Any]) -> int:
    """The seed a row trained with (rows written before seeds were recorded used the configs' seed 0)."""
    return row.get("seed", 0)


# Overrides a row's identity leaves out: the seed (compared on its own) and where the files are (a
# checkout elsewhere is the same run).
IGNORED_OVERRIDES = ("seed=", "dataset.data_dir=", "dataset.features.text.path=")


def same_run(row: dict[str, Any], job: dict[str, Any]) -> bool:
    """Whether ``row`` is the finished result of ``job``: same dataset, variant, seed and overrides
    (apart from the seed and the data and feature locations), and the same config where both know its
    fingerprint (a config file edited since the row gives another)."""

    def others(overrides: list[str]) -> list[str]:
        return [o for o in overrides if not o.startswith(IGNORED_OVERRIDES)]

    return (
        (row["dataset"], row["variant"], seed_of(row)) == (job["dataset"], job["variant"], job["seed"])
        and others(row["overrides"]) == others(job["overrides"])
        and not _other_config(row, job)
    )


def _other_config(row: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two rows (or a row and a job) record config fingerprints, and they differ."""
    return "config_sha256" in row and "config_sha256" in other and row["config_sha256"] != other["config_sha256"]


def job_seed(job: dict[str, Any]) -> int:
    """The seed ``job`` trains with: its ``--seeds`` seed, else its resolved config's."""
    if "seed" in job:
        return job["seed"]
    from mocme.config import load_config

    return load_config(config_path(job["dataset"], job.get("recipe", MOCME_CONFIG)), job["overrides"]).seed


def conflicting_row(job: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A recorded row that ``job`` must not join: a row of its dataset and variant, of any seed, whose
    config fingerprint differs (the tables would pool runs of different configs as one variant), or
    a row of its seed that other overrides produced (recording ``job`` would replace it). Rows from
    before fingerprints were recorded are compared by their overrides only."""
    key = (job["dataset"], job["variant"], job_seed(job))
    for row in rows:
        if (row["dataset"], row["variant"]) != key[:2]:
            continue
        if _other_config(row, job) or (seed_of(row) == key[2] and not same_run(row, {**job, "seed": key[2]})):
            return row
    return None


def pooled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (dataset, variant): a variant run with several seeds becomes their mean.

    A pooled row holds the mean of every test / valid metric (and of the unseen-entity breakdown),
    ``seeds`` (the seeds, ascending), ``test_mrr_sd`` (sample standard deviation of the realistic
    test MRR) and, for curves, those of its lowest seed; a single run passes through with ``seeds``.
    """
    from mocme.errors import ConfigError

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["variant"]), []).append(row)
    out = []
    for (dataset, variant), group in groups.items():
        if len({r["config_sha256"] for r in group if "config_sha256" in r}) > 1:
            raise ConfigError(f"{dataset} {variant!r}: its rows ran different configs, which one mean would mix")
        group = sorted(group, key=seed_of)
        first = {**group[0], "seeds": [seed_of(r) for r in group]}
        if len(group) > 1:
            for split in ("valid", "test"):
                first[split] = _mean_split([r[split] for r in group])
            mrrs = [r["test"]["realistic"]["inverse_harmonic_mean_rank"] for r in group]
            first["test_mrr_sd"] = statistics.stdev(mrrs)
            first["selected_epoch"] = ", ".join(str(r["selected_epoch"]) for r in group)
            first["epochs_trained"] = ", ".join(str(r["epochs_trained"]) for r in group)
            timed = [r["seconds_per_epoch"] for r in group if r["seconds_per_epoch"] is not None]
            first["seconds_per_epoch"] = statistics.median(timed) if timed else None
            unseen = [r["test_by_seen"]["unseen"] for r in group if "unseen" in r.get("test_by_seen", {})]
            if unseen:
                first["test_by_seen"] = {
                    "unseen": _mean_split(unseen) | {"triples": unseen[0]["triples"], "seeds": len(unseen)}
                }
            first.pop("valid_heads", None)
        out.append(first)
    return out


def paired_gaps(rows: list[dict[str, Any]], dataset: str, variant: str, reference: str) -> dict[int, float]:
    """Per seed, ``variant``'s realistic test MRR minus ``reference``'s (in points) on ``dataset``,
    over the seeds both ran (runs of one seed share what a switch leaves alone)."""
    mrr = {
        (r["variant"], seed_of(r)): _mrr(r)
        for r in rows
        if r["dataset"] == dataset and r["variant"] in (variant, reference)
    }
    seeds = sorted(s for v, s in mrr if v == variant and (reference, s) in mrr)
    return {s: mrr[variant, s] - mrr[reference, s] for s in seeds}


def paired_t_p(gaps: list[float]) -> float:
    """Two-sided p-value of the paired t-test that the mean of ``gaps`` (two or more) is zero."""
    sd = statistics.stdev(gaps)
    mean = statistics.fmean(gaps)
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    return students_t_p(mean / (sd / math.sqrt(len(gaps))), len(gaps) - 1)


def students_t_p(t: float, df: int) -> float:
    """Two-sided p-value P(|T| >= |t|) of Student's t with ``df`` >= 1 degrees of freedom.

    Exact for integer ``df``: with θ = atan(|t| / √df), P(|T| < |t|) is sin θ · Σ_j c_j cos^2j θ
    (even df) or (2/π)(θ + sin θ cos θ · Σ_j d_j cos^2j θ) (odd df), finite sums of df/2 terms.
    """
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    term = total = 1.0
    if df % 2 == 0:
        for j in range(1, df // 2):
            term *= cos2 * (2 * j - 1) / (2 * j)
            total += term
        inside = math.sin(theta) * total
    else:
        for j in range(1, (df - 1) // 2):
            term *= cos2 * (2 * j) / (2 * j + 1)
            total += term
        inside = 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0))
    return max(0.0, 1.0 - inside)


def _mean_split(splits: list[dict[str, Any]]) -> dict[str, Any]:
    """The metric-wise mean of several ``{kind: {metric: value}, "count": n}`` splits."""
    kinds = ("realistic", "optimistic", "pessimistic")
    mean = {kind: {m: statistics.fmean(s[kind][m] for s in splits) for m in splits[0][kind]} for kind in kinds}
    return mean | {"count": splits[0]["count"]}


# -- tables ------------------------------------------------------------------------------------------
def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _mrr_cell(row: dict[str, Any]) -> str:
    """The bold realistic test MRR, with ± its standard deviation over seeds when there are several."""
    cell = f"**{_pct(row['test']['realistic']['inverse_harmonic_mean_rank'])}**"
    return cell + (f" ± {_pct(row['test_mrr_sd'])}" if "test_mrr_sd" in row else "")


def _or_dash(value: Any) -> str:
    return "–" if value is None else str(value)


def _variant_cell(row: dict[str, Any], seeds: int | None = None) -> str:
    """The variant's name, with the number of seeds its figures average (``seeds``: of a part of them)."""
    count = seeds if seeds is not None else len(row.get("seeds", [seed_of(row)]))
    return row["variant"] + (f" ({count} seeds)" if count > 1 else "")


def markdown(rows: list[dict[str, Any]]) -> str:
    """Main table per dataset (ours beside the published numbers), then the ablation tables."""
    out = ["# MMKGC benchmark results", ""]
    out.append(
        "Test split, filtered, both directions; **realistic** ranks (optimistic / pessimistic MRR beside). "
        "Rows of one table may differ in recipe (the last column, with the dimension), epoch budget and "
        "seeds; every row selects its epoch on validation and the test split is scored once. Percentages. "
        "A row over several seeds gives the mean (MRR ± its sample standard deviation) and each seed's "
        "selected / trained epochs."
    )
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for row in pooled(rows):
        by_dataset.setdefault(row["dataset"], []).append(row)
    for dataset in _datasets_in(by_dataset):
        tables = [(f"## {dataset}", [r for r in by_dataset[dataset] if r["variant"] in MAIN_VARIANTS], None)]
        tables += [
            (f"## {dataset}: {title}", ablation_rows(by_dataset[dataset], variants), list(variants))
            for title, variants in ABLATIONS.values()
        ]
        for title, chosen, ablation in tables:
            if not chosen:
                continue
            out += ["", title, ""]
            mocme_recipe = [r for r in chosen if r.get("recipe", MOCME_CONFIG) == MOCME_CONFIG]
            if mocme_recipe:
                first = mocme_recipe[0]
                out.append(
                    f"Rows from the MoCME config: at most {first['epochs_budget']} epochs (early stopping on "
                    f"validation MRR), dimension {first['dim']}, device {first['device']}"
                    + (", bf16 autocast training (evaluation in fp32)." if first.get("precision") == "bf16" else ".")
                    + (
                        " Other recipes: the row's own config (`mocme-NAME`: `configs/<dataset>-NAME.yaml`; a "
                        "baseline's: `configs/baselines/<dataset>-<recipe>.yaml`), with its epoch budget in the "
                        "last column."
                        if len(mocme_recipe) < len(chosen)
                        else ""
                    )
                )
            released = REDUNDANT_VALID.get(dataset)
            if released and any(r["valid"]["count"] == 2 * released[0] for r in chosen):
                out += [
                    "",
                    f"These runs selected on the validation split as released: {released[0]:,} lines, of which only "
                    f"{released[1]:,} are new triples (the rest are training triples or repeats, which "
                    "`dataset.held_out: deduplicate`, now the default, drops). Their valid MRR mostly measures "
                    "memorising training triples; the test split is clean.",
                ]
            out += [
                "",
                "| model | modalities | MRR | Hits@1 | Hits@3 | Hits@10 | MR | MRR opt / pess | valid MRR "
                "| epoch selected / trained | s/epoch | recipe, d, epoch budget |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for r in sorted(chosen, key=lambda r: -_mrr(r)):
                t = r["test"]["realistic"]
                out.append(
                    f"| {_variant_cell(r)} | {' + '.join(r['modalities'])} | {_mrr_cell(r)} | "
                    f"{_pct(t['hits_at_1'])} | {_pct(t['hits_at_3'])} | {_pct(t['hits_at_10'])} | "
                    f"{t['arithmetic_mean_rank']:.0f} | "
                    f"{_pct(r['test']['optimistic']['inverse_harmonic_mean_rank'])} / "
                    f"{_pct(r['test']['pessimistic']['inverse_harmonic_mean_rank'])} | "
                    f"{_pct(r['valid']['realistic']['inverse_harmonic_mean_rank'])} | "
                    f"{r['selected_epoch']}/{r['epochs_trained']} | {_or_dash(r['seconds_per_epoch'])} | "
                    f"{r.get('recipe', MOCME_CONFIG)}{', bf16' if r.get('precision') == 'bf16' else ''}, {r['dim']}, "
                    f"{r['epochs_budget']} |"
                )
            if ablation:
                out += paired_table(rows, dataset, ablation)
            unseen = [r for r in chosen if "unseen" in r.get("test_by_seen", {})]
            if unseen:
                group = unseen[0]["test_by_seen"]["unseen"]
                out += [
                    "",
                    f"Test triples with an entity unseen in training ({group['triples']:,} triples, "
                    f"{group['count']:,} queries), MRR / Hits@10: "
                    + "; ".join(
                        f"{_variant_cell(r, r['test_by_seen']['unseen'].get('seeds'))} "
                        f"{_pct(_unseen(r)['inverse_harmonic_mean_rank'])} / {_pct(_unseen(r)['hits_at_10'])}"
                        for r in sorted(unseen, key=lambda r: -_unseen(r)["inverse_harmonic_mean_rank"])
                    ),
                ]
            by_head = [r for r in chosen if "valid_heads" in r]
            if by_head:
                out += [
                    "",
                    "Validation MRR of each MoCME scorer alone, beside the joint decision (`decision`):",
                    "",
                ]
                out += [
                    f"- {r['variant']}: "
                    + ", ".join(f"{head} {_pct(value)}" for head, value in r["valid_heads"].items())
                    + _heads_split_note(r)
                    for r in by_head
                ]
            published = {m: v[dataset] for m, v in PUBLISHED.items() if dataset in v}
            if title == f"## {dataset}" and dataset in PUBLISHED_STRUCTURE:
                model, mrr = PUBLISHED_STRUCTURE[dataset]
                out += [
                    "",
                    f"Published structure-only baseline (test MRR, as MMKGC papers report it): {model} {mrr:.2f}.",
                ]
            if title == f"## {dataset}" and published:
                out += [
                    "",
                    "Published (test MRR / Hits@1 / Hits@10, %; image + text features we do not have; most select "
                    "on test): " + "; ".join(f"{m} {a:.2f} / {b:.2f} / {c:.2f}" for m, (a, b, c) in published.items()),
                ]
    return "\n".join(out) + "\n"


def paired_table(rows: list[dict[str, Any]], dataset: str, variants: list[str]) -> list[str]:
    """Lines of a table: the test MRR gap of each of an ablation set's ``variants`` to its first (the full
    model) on the seeds both ran, per seed, with the paired t-test's p when they share two or more."""
    full = variants[0]

    def signed(points: float) -> str:
        return "0.00" if abs(points) < 0.005 else f"{points:+.2f}".replace("-", "−")

    lines = []
    for variant in variants[1:]:
        gaps = paired_gaps(rows, dataset, variant, full)
        if not gaps:
            continue
        p = f"{paired_t_p(list(gaps.values())):.2f}" if len(gaps) > 1 else ""
        per_seed = " / ".join(signed(g) for g in gaps.values())
        seeds = ", ".join(map(str, gaps))
        lines.append(f"| {variant} | {seeds} | {signed(statistics.fmean(gaps.values()))} ({per_seed}) | {p} |")
    if not lines:
        return []
    return [
        "",
        f"Test MRR gap to {full} on the seeds both ran (points, per seed in brackets), with the two-sided "
        "paired t-test's p over those seeds:",
        "",
        "| variant | seeds | gap (per seed) | paired p |",
        "|---|---|---|---|",
        *lines,
    ]


def ablation_rows(rows: list[dict[str, Any]], variants: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The ``rows`` of an ablation set's ``variants``, or none when every one of them is a main variant
    (a set whose own rows have not run yet gets no table of the main rows alone)."""
    chosen = [r for r in rows if r["variant"] in variants]
    return chosen if any(r["variant"] not in MAIN_VARIANTS for r in chosen) else []


def _unseen(row: dict[str, Any]) -> dict[str, float]:
    """Realistic test metrics of a row on the triples with an entity unseen in training."""
    return row["test_by_seen"]["unseen"]["realistic"]


def _heads_split_note(row: dict[str, Any]) -> str:
    """Say so when the scorers were scored on another validation split than the run selected on."""
    queries = row.get("valid_heads_queries")
    if queries is None or queries == row["valid"]["count"]:
        return ""
    return (
        f" (on the deduplicated validation split, {queries:,} queries; the run selected on "
        f"{row['valid']['count']:,} as released)"
    )


# -- figures -----------------------------------------------------------------------------------------
def _mrr(row: dict[str, Any], split: str = "test") -> float:
    """The row's realistic MRR on ``split``, in %."""
    return 100 * row[split]["realistic"]["inverse_harmonic_mean_rank"]


def _datasets_in(names: Iterable[str]) -> list[str]:
    """The distinct dataset ``names``, in table order (``DATASETS``, then the smoke set)."""
    present = set(names)
    return [d for d in (*DATASETS, SMOKE) if d in present]


def main_figure(rows: list[dict[str, Any]]) -> Any | None:
    """Test MRR (realistic, %) of every main variant per dataset, beside the best published result.

    One cluster per dataset (``DATASETS`` order), one bar per variant; a missing run leaves a gap.
    """
    from mocme.plots import grouped_bars, subplots

    main = [r for r in pooled(rows) if r["variant"] in MAIN_VARIANTS]
    datasets = _datasets_in(r["dataset"] for r in main)
    if not datasets:
        return None
    found = {(r["dataset"], r["variant"]): _mrr(r) for r in main}
    series = {
        variant: [found.get((d, variant), float("nan")) for d in datasets]
        for variant in MAIN_VARIANTS
        if any((d, variant) in found for d in datasets)
    }
    best = [max((v[d][0] for v in PUBLISHED.values() if d in v), default=float("nan")) for d in datasets]
    if any(b == b for b in best):
        series["best published MMKGC (image + text)"] = best
    budgets = ", ".join(f"{d} {_budget_range([r for r in main if r['dataset'] == d])}" for d in datasets)
    figure, ax = subplots(figsize=(max(6.0, 2.1 * len(datasets)), 3.8))
    grouped_bars(ax, datasets, series, ylabel="test MRR, realistic (%)", fmt="{:.1f}")
    ax.set_title(f"MoCME and structural baselines, epoch budgets: {budgets}", fontsize=9)
    ax.legend(ncol=min(len(series), 3), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return figure


def _budget_range(rows: list[dict[str, Any]]) -> str:
    """The epoch budgets of ``rows``: ``"40 ep."``, or ``"10-100 ep."`` where they differ."""
    low, high = min(r["epochs_budget"] for r in rows), max(r["epochs_budget"] for r in rows)
    return f"{low} ep." if low == high else f"{low}-{high} ep."


def ablation_figure(rows: list[dict[str, Any]], dataset: str, ablation: str = "ablation") -> Any | None:
    """Test and validation MRR (realistic, %) of each variant of the ablation set ``ablation`` on ``dataset``.

    One pair of horizontal bars per variant (the set's order); a dashed line marks the full model's
    (the set's first variant) test MRR.
    """
    from mocme.plots import color, subplots

    title, ablations = ABLATIONS[ablation]
    found = {r["variant"]: r for r in ablation_rows([r for r in pooled(rows) if r["dataset"] == dataset], ablations)}
    variants = [v for v in ablations if v in found]
    if not variants:
        return None
    figure, ax = subplots(figsize=(7.0, 0.42 * len(variants) + 1.2))
    ys = range(len(variants))
    for offset, split, shade in ((-0.2, "test", color(0)), (0.2, "valid", color(7))):
        values = [_mrr(found[v], split) for v in variants]
        bars = ax.barh([y + offset for y in ys], values, 0.38, label=split, color=shade)
        ax.bar_label(bars, [f"{v:.2f}" for v in values], padding=2, fontsize=7)
    full = next(iter(ablations))
    if full in found:
        ax.axvline(_mrr(found[full]), color=color(3), linestyle="--", linewidth=1)
    ax.set_yticks(list(ys), variants)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.margins(x=0.15)
    first = found[variants[0]]
    ax.set_xlabel("MRR, realistic (%)")
    seeds = len(first.get("seeds", [seed_of(first)]))
    ax.set_title(
        f"{dataset}: {title} (at most {first['epochs_budget']} epochs, d {first['dim']}"
        + (f", mean of {seeds} seeds)" if seeds > 1 else ")")
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def curves_figure(rows: list[dict[str, Any]]) -> Any | None:
    """Validation MRR (realistic, %) against epoch for the main variants, one panel per dataset."""
    curves = {
        (r["dataset"], r["variant"]): r["valid_curve"]
        for r in pooled(rows)
        if r["variant"] in MAIN_VARIANTS and r.get("valid_curve")
    }
    return _curve_panels(curves, "epoch", 1.0, len(MAIN_VARIANTS))


def time_figure(rows: list[dict[str, Any]]) -> Any | None:
    """Time to quality: validation MRR (realistic, %) against wall-clock minutes, one panel per dataset.

    Rows written before ``valid_time_curve`` existed are placed at ``epoch × seconds_per_epoch``.
    """
    curves = {}
    for r in pooled(rows):
        if r["variant"] not in MAIN_VARIANTS or not r.get("valid_curve"):
            continue
        curve = r.get("valid_time_curve") or [[e * (r.get("seconds_per_epoch") or 0), v] for e, v in r["valid_curve"]]
        curves[r["dataset"], r["variant"]] = curve
    devices = sorted({r["device"] for r in pooled(rows) if (r["dataset"], r["variant"]) in curves})
    return _curve_panels(curves, f"wall-clock minutes ({', '.join(devices)})", 1 / 60, 2)


def _curve_panels(
    curves: dict[tuple[str, str], list[list[float]]], xlabel: str, x_scale: float, legend_columns: int
) -> Any | None:
    """One panel per dataset of ``[x, mrr]`` curves of the main variants (``x`` times ``x_scale``)."""
    from mocme.plots import color, subplots

    datasets = _datasets_in(dataset for dataset, _ in curves)
    if not datasets:
        return None
    figure, axes = subplots(1, len(datasets), figsize=(3.2 * len(datasets) + 0.6, 3.0), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for index, variant in enumerate(MAIN_VARIANTS):
            if (dataset, variant) in curves:
                x, mrr = zip(*curves[dataset, variant], strict=True)
                ax.plot(
                    [v * x_scale for v in x],
                    [100 * v for v in mrr],
                    marker="o",
                    markersize=3,
                    color=color(index),
                    label=variant,
                )
        ax.set_title(dataset)
        ax.set_xlabel(xlabel)
    axes[0][0].set_ylabel("valid MRR, realistic (%)")
    figure.legend(
        *axes[0][0].get_legend_handles_labels(),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.06),
        ncol=legend_columns,
    )
    return figure


def write_figures(out: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """``<out>.svg`` (test MRR), ``<out>_curves.svg`` (validation curves), ``<out>_time.svg`` (time
    to quality) and ``<out>_<ablation set>_<dataset>.svg``; none when matplotlib is not installed."""
    from mocme.extras import MissingExtraError
    from mocme.plots import require_matplotlib, save_figure

    try:
        require_matplotlib()
    except MissingExtraError:
        return []
    written = []
    figures = {
        out.with_suffix(".svg"): main_figure(rows),
        out.with_name(f"{out.name}_curves.svg"): curves_figure(rows),
        out.with_name(f"{out.name}_time.svg"): time_figure(rows),
    }
    for ablation, (_, variants) in ABLATIONS.items():
        for dataset in sorted({r["dataset"] for r in rows if r["variant"] in variants}):
            figures[out.with_name(f"{out.name}_{ablation}_{dataset}.svg")] = ablation_figure(rows, dataset, ablation)
    for path, figure in figures.items():
        if figure is not None:
            save_figure(figure, path)
            written.append(path)
    return written


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """``<out>.json`` (every run), ``<out>.md`` (the tables) and the figures, each replaced atomically."""
    from mocme.io import to_json, write_text_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".json"), to_json(rows, indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), markdown(rows))
    write_figures(out, rows)


@contextlib.contextmanager
def locked_rows(out: Path) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``<out>.json``, read under an exclusive ``flock`` on ``<out>.lock`` held until the
    ``with`` ends: suites running side by side (one per dataset, say) each add their rows instead of
    writing back a list they read at start."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    results_path = out.with_suffix(".json")
    with open(out.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield json.loads(results_path.read_text()) if results_path.exists() else []


def record_row(out: Path, row: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Put ``row`` (if any) into ``<out>.json`` in place of its (dataset, variant, seed), rewrite the
    outputs, under the results lock. Returns every row now recorded."""
    from mocme.errors import ConfigError

    with locked_rows(out) as rows:
        if row is not None:
            key = (row["dataset"], row["variant"], row["seed"])
            rows = [r for r in rows if (r["dataset"], r["variant"], seed_of(r)) != key]
            clash = next((r for r in rows if (r["dataset"], r["variant"]) == key[:2] and _other_config(r, row)), None)
            if clash is not None:  # a suite beside this one recorded the variant with another config meanwhile
                raise ConfigError(
                    f"{key[0]} {key[1]!r} seed {key[2]}: {out.with_suffix('.json')} holds seed {seed_of(clash)} of "
                    f"another config; this run stays in {row['run_dir']}"
                )
            rows.append(row)
        write_results(out, rows)
    return rows


def refresh_rows(out: Path) -> None:
    """Re-read every recorded row whose run directory is here and rewrite the outputs (``--table-only``),
    under the results lock, so a row that a running suite records meanwhile is kept."""
    with locked_rows(out) as rows:
        rows = [with_head_metrics(summarize(row)) if _still_its_run(row) else row for row in rows]
        write_results(out, rows)


def _still_its_run(row: dict[str, Any]) -> bool:
    """Whether ``row``'s run directory holds a finished run of the config that produced the row (its
    fingerprint, or for an older row the config its overrides give today); warns when it holds another."""
    from mocme.errors import MocmeError
    from mocme.rundir import RunDirectory

    run_dir = Path(row["run_dir"])
    if not (run_dir / "metrics.json").exists():
        return False
    expected = found = None
    try:
        expected = row.get("config_sha256") or job_fingerprint(row)
        found = config_fingerprint(RunDirectory(run_dir).load_config())
    except MocmeError:  # a config that no longer loads: keep the row as recorded
        pass
    if found is None or found != expected:
        print(f"{run_dir}: holds another run than its row in the results; the row is kept as recorded", file=sys.stderr)
        return False
    return True


def stop_workers_on_sigterm() -> None:
    """Turn SIGTERM (``kill``) into ``SystemExit``, so the pool's ``with`` terminates its workers.

    Without it the suite dies at once and its spawned workers go on training as orphans, holding their
    runs' locks; with it they stop too, and each run resumes from its last checkpoint next time.
    """
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main() -> None:
    from mocme.errors import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=(*DATASETS, SMOKE))
    parser.add_argument(
        "--variants", choices=("main", *ABLATIONS, "both"), default="main", help="both: main and every ablation."
    )
    parser.add_argument("--only", nargs="+", help="Run only these variant names.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Override for every run.")
    parser.add_argument(
        "--seeds", nargs="+", type=int, help="Run every variant once per seed (default: once, with the config's)."
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("MOCME_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--features-dir", type=Path, default=ROOT / "features")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mmkgc")
    parser.add_argument("--jobs", type=int, default=1, help="Runs in parallel (processes).")
    parser.add_argument("--threads", type=int, default=2, help="Torch CPU threads per run.")
    parser.add_argument("--table-only", action="store_true", help="Only rebuild the tables from <out>.json.")
    parser.add_argument(
        "--no-extract", action="store_true", help="Use the text features already in --features-dir (no encoder needed)."
    )
    args = parser.parse_args()

    results_path = args.out.with_suffix(".json")
    if args.table_only:
        refresh_rows(args.out)
    else:
        previous = json.loads(results_path.read_text()) if results_path.exists() else []
        if not args.data_dir.is_dir():
            print(f"benchmark data not found at {args.data_dir}; set MOCME_DATA or --data-dir", file=sys.stderr)
            return
        variants = {
            "main": MAIN_VARIANTS,
            **{name: variants for name, (_, variants) in ABLATIONS.items()},
            "both": MAIN_VARIANTS | ABLATION_VARIANTS | ABLATION_1VSALL_VARIANTS,
        }[args.variants]
        if args.only:
            variants = {k: v for k, v in variants.items() if k in args.only}
        jobs = []
        needs_text = any(uses_text(split_recipe(v)[0]) for v in variants.values())
        for dataset in args.datasets:
            features = (
                args.features_dir / dataset / "text.safetensors"
                if args.no_extract or not needs_text
                else ensure_text_features(dataset, args.data_dir, args.features_dir)
            )
            for seed in args.seeds or [None]:
                for name, variant in variants.items():
                    recipe, overrides = split_recipe(variant)
                    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
                    features_override = [f"dataset.features.text.path={features}"] if uses_text(recipe) else []
                    job = {
                        "dataset": dataset,
                        "variant": name,
                        "recipe": recipe,
                        "overrides": [
                            f"dataset.data_dir={args.data_dir}",
                            *features_override,
                            *args.overrides,
                            *overrides,
                            *([] if seed is None else [f"seed={seed}"]),
                        ],
                        "run_dir": str(args.runs_dir / dataset / (slug if seed is None else f"{slug}-seed{seed}")),
                        "threads": args.threads,
                        "jobs": args.jobs,
                    }
                    job["config_sha256"] = job_fingerprint(job)
                    if seed is not None:
                        job["seed"] = seed
                        if any(same_run(row, job) for row in previous):
                            print(f"{dataset:10s} {name:35s} seed {seed}: already in {results_path}", flush=True)
                            continue
                    recorded = conflicting_row(job, previous)
                    if recorded is not None:
                        raise ConfigError(
                            f"{dataset} {name!r} seed {job_seed(job)} is in {results_path} from other overrides "
                            f"({' '.join(recorded['overrides'])}) or another config; record this run elsewhere "
                            "with --out and --runs-dir, or remove that row first"
                        )
                    jobs.append(job)
        stop_workers_on_sigterm()
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for row in pool.imap_unordered(run_one, jobs):
                print(
                    f"{row['dataset']:10s} {row['variant']:35s} test MRR "
                    f"{row['test']['realistic']['inverse_harmonic_mean_rank']:.4f} "
                    f"(seed {row['seed']}, epoch {row['selected_epoch']}/{row['epochs_trained']}, "
                    f"{row['train_seconds']} s)",
                    flush=True,
                )
                # Saved after every run, so a long suite that is stopped keeps what it finished.
                record_row(args.out, row)
        record_row(args.out)  # the tables from the file, with any side-by-side suite's rows
    print(f"wrote {results_path} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    from mocme.errors import MocmeError

    try:
        main()
    except MocmeError as err:  # bad data or config, here or in a worker: one line, status 2
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
