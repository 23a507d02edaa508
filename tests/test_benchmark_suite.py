"""The MMKGC benchmark suite's tables and figures (``benchmarks/mmkgc.py``), on made-up result rows."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite() -> Any:
    spec = importlib.util.spec_from_file_location("mmkgc_suite", ROOT / "benchmarks" / "mmkgc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _split(mrr: float, count: int) -> dict[str, Any]:
    ranks = {"inverse_harmonic_mean_rank": mrr, "hits_at_1": mrr / 2, "hits_at_3": mrr, "hits_at_10": 2 * mrr}
    return {
        "realistic": {**ranks, "arithmetic_mean_rank": 100.0},
        "optimistic": {**ranks, "inverse_harmonic_mean_rank": mrr + 0.01, "arithmetic_mean_rank": 90.0},
        "pessimistic": {**ranks, "inverse_harmonic_mean_rank": mrr - 0.01, "arithmetic_mean_rank": 110.0},
        "count": count,
    }


def _row(dataset: str, variant: str, test: float, *, precision: str = "fp32", **extra: Any) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "variant": variant,
        "modalities": ["structure", "text"] if "text" in variant else ["structure"],
        "device": "cpu",
        "dim": 256,
        "epochs_budget": 4,
        "precision": precision,
        "epochs_trained": 4,
        "selected_epoch": 4,
        "seconds_per_epoch": 12.5,
        "valid": _split(test - 0.02, 200),
        "test": _split(test, 300),
        "valid_curve": [[2, test / 2], [4, test - 0.02]],
        "run_dir": "unused",
        **extra,
    }


def _rows() -> list[dict[str, Any]]:
    return [
        _row("MKG-Y", "TuckER (structure, 1vsAll)", 0.30),
        _row("MKG-Y", "ComplEx-N3 (structure, 1vsAll)", 0.35, recipe="complex-n3"),
        _row("MKG-Y", "MoCME (structure + text)", 0.32, valid_heads={"structure": 0.25, "text": 0.05}),
        _row("WN18RR", "MoCME (structure + text)", 0.40, precision="bf16"),
        _row("MKG-Y", "MoCME (full)", 0.31),
        _row("MKG-Y", "fusion: mean", 0.29),
    ]


def test_tables_sort_by_test_mrr_and_state_the_budget(suite: Any) -> None:
    text = suite.markdown(_rows())
    mkgy = text.split("## MKG-Y\n")[1].split("## ")[0]
    assert mkgy.index("| MoCME (structure + text) |") < mkgy.index("| TuckER (structure, 1vsAll) |")
    assert (
        "| MoCME (structure + text) | structure + text | **32.00** | 16.00 | 32.00 | 64.00 | 100 "
        "| 33.00 / 31.00 | 30.00 | 4/4 | 12.5 | mocme, 256, 4 |" in mkgy
    )
    assert "- MoCME (structure + text): structure 25.00, text 5.00" in mkgy
    assert "MoMoK (ICLR 2025) 37.91 / 35.09 / 43.20" in mkgy
    assert (
        "| complex-n3, 256, 4 |" in mkgy
        and "structure-only baseline (test MRR, as MMKGC papers report it): TuckER 37.05" in mkgy
    )
    assert "Rows from the MoCME config: at most 4 epochs" in mkgy and "Other recipes" in mkgy
    assert "bf16" not in mkgy
    wn = text.split("## WN18RR\n")[1]
    assert "bf16 autocast training (evaluation in fp32)" in wn
    assert "Published" not in wn  # no published MMKGC numbers for WN18RR
    ablation = text.split("## MKG-Y: ablations of MoCME\n")[1].split("## ")[0]
    assert "| MoCME (full) |" in ablation and "| fusion: mean |" in ablation
    assert "TuckER" not in ablation


def test_results_and_figures_are_written(suite: Any, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "results" / "mmkgc"
    suite.write_results(out, _rows())
    assert json.loads(out.with_suffix(".json").read_text()) == _rows()
    assert out.with_suffix(".md").read_text() == suite.markdown(_rows())
    main = out.with_suffix(".svg").read_text()
    assert "MKG-Y" in main and "WN18RR" in main and "best published MMKGC" in main
    curves = (out.parent / "mmkgc_curves.svg").read_text()
    assert "MKG-Y" in curves and "TuckER (structure, 1vsAll)" in curves and "epoch" in curves
    ablation = (out.parent / "mmkgc_ablation_MKG-Y.svg").read_text()
    assert "fusion: mean" in ablation and "TuckER" not in ablation
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "mmkgc.json",
        "mmkgc.md",
        "mmkgc.svg",
        "mmkgc_ablation_MKG-Y.svg",
        "mmkgc_curves.svg",
        "mmkgc_time.svg",
    ]
    time = (out.parent / "mmkgc_time.svg").read_text()
    assert "wall-clock minutes (cpu)" in time and "MKG-Y" in time


def test_suites_side_by_side_each_add_their_rows(suite: Any, tmp_path: Path) -> None:
    out = tmp_path / "mmkgc"
    first, second = _rows()[:2]
    suite.write_results(out, [first])
    # A second suite read the file before `first` landed; recording its row must keep `first`.
    suite.record_row(out, {**second, "seed": 1})
    again = {**_row("MKG-Y", first["variant"], 0.5), "seed": 0}
    rows = suite.record_row(out, again)  # the same (dataset, variant, seed) replaces the old row
    assert json.loads(out.with_suffix(".json").read_text()) == rows == [{**second, "seed": 1}, again]


def test_table_only_waits_for_a_suite_recording_a_row(suite: Any, tmp_path: Path) -> None:
    out = tmp_path / "mmkgc"
    first, second = _rows()[:2]
    suite.write_results(out, [first])
    refreshed = threading.Thread(target=suite.refresh_rows, args=(out,))
    with suite.locked_rows(out):  # a suite is recording a row
        refreshed.start()
        refreshed.join(timeout=0.5)
        assert refreshed.is_alive()  # --table-only waits instead of reading the file mid-update
        suite.write_results(out, [first, second])
    refreshed.join()
    assert [r["variant"] for r in json.loads(out.with_suffix(".json").read_text())] == [
        first["variant"],
        second["variant"],
    ]


def test_no_figure_without_rows(suite: Any) -> None:
    pytest.importorskip("matplotlib")
    assert suite.main_figure([]) is None
    assert suite.curves_figure([]) is None
    assert suite.ablation_figure(_rows(), "WN18RR") is None


def test_rows_carry_the_seen_breakdown_of_the_test_split(suite: Any, tmp_path: Path) -> None:
    """A finished run's row has ``test_by_seen`` and ``test_by_degree``; the table quotes the triples
    with an unseen entity."""
    from mocme.cli import main

    run_dir = tmp_path / "run"
    tiny = ["--set", "dataset.synthetic.num_entities=120", "--set", "model.dim=8", "--set", "model.relation_dim=4"]
    assert main(["train", "--quiet", "--out", str(run_dir), *tiny, "--set", "training.epochs=1"]) == 0
    row = suite.summarize(
        {"dataset": "MKG-Y", "variant": "MoCME (structure + text)", "overrides": [], "run_dir": str(run_dir)}
    )
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]["by_seen"]
    assert set(row["test_by_seen"]) == set(saved) == {"seen"}  # the synthetic split keeps every entity in train
    seen = row["test_by_seen"]["seen"]
    assert seen["realistic"] == saved["seen"]["both"]["realistic"] and seen["triples"] == saved["seen"]["triples"]
    assert seen["count"] == row["test"]["count"]
    by_degree = json.loads((run_dir / "metrics.json").read_text())["test"]["by_degree"]
    assert set(row["test_by_degree"]) == set(by_degree) and "0" not in by_degree
    assert sum(group["triples"] for group in row["test_by_degree"].values()) == row["test"]["count"] // 2

    unseen = {"unseen": {**_split(0.12, 40), "triples": 20}}
    rows = [
        _row("MKG-Y", "MoCME (structure + text)", 0.32, test_by_seen=unseen),
        _row("MKG-Y", "TuckER (structure, 1vsAll)", 0.30, test_by_seen={"unseen": {**_split(0.02, 40), "triples": 20}}),
    ]
    mkgy = suite.markdown(rows).split("## MKG-Y\n")[1]
    assert (
        "Test triples with an entity unseen in training (20 triples, 40 queries), MRR / Hits@10: "
        "MoCME (structure + text) 12.00 / 24.00; TuckER (structure, 1vsAll) 2.00 / 4.00" in mkgy
    )
    assert "unseen in training" not in suite.markdown(_rows())


def test_a_variant_over_seeds_is_one_row_with_mean_and_standard_deviation(suite: Any) -> None:
    rows = [
        _row("MKG-Y", "ComplEx-N3 (structure, 1vsAll)", mrr, seed=seed, selected_epoch=epoch)
        for seed, mrr, epoch in ((2, 0.36, 20), (0, 0.34, 16), (1, 0.35, 18))
    ]
    mkgy = suite.markdown([*rows, _row("MKG-Y", "TuckER (structure, 1vsAll)", 0.30)]).split("## MKG-Y\n")[1]
    assert "| ComplEx-N3 (structure, 1vsAll) (3 seeds) | structure | **35.00** ± 1.00 | 17.50 |" in mkgy
    assert "| 16, 18, 20/4, 4, 4 |" in mkgy  # each seed's selected / trained epochs, in seed order
    assert "| TuckER (structure, 1vsAll) | structure | **30.00** | 15.00 |" in mkgy
    [pooled] = suite.pooled(rows)
    assert pooled["seeds"] == [0, 1, 2] and pooled["valid_curve"] == rows[1]["valid_curve"]


def test_a_seed_already_in_the_results_is_not_run_again(suite: Any) -> None:
    row = {**_row("MKG-Y", "ComplEx-N3 (structure, 1vsAll)", 0.35), "overrides": ["dataset.data_dir=/d"]}
    job = {"dataset": "MKG-Y", "variant": row["variant"], "seed": 0, "overrides": ["dataset.data_dir=/d", "seed=0"]}
    assert suite.same_run(row, job)  # a row from before seeds were recorded used the configs' seed 0
    assert not suite.same_run(row, {**job, "seed": 1, "overrides": ["dataset.data_dir=/d", "seed=1"]})
    assert not suite.same_run(row, {**job, "overrides": ["dataset.data_dir=/d", "training.epochs=16", "seed=0"]})


def test_a_checkout_elsewhere_is_the_same_run(suite: Any) -> None:
    row = {**_row("MKG-Y", "MoCME (structure + text)", 0.35, seed=0), "overrides": ["dataset.data_dir=/a"]}
    row["overrides"].append("dataset.features.text.path=/a/features/MKG-Y/text.safetensors")
    moved = ["dataset.data_dir=/b", "dataset.features.text.path=/b/f/text.safetensors", "seed=0"]
    assert suite.same_run(row, {"dataset": "MKG-Y", "variant": row["variant"], "seed": 0, "overrides": moved})


def test_a_run_of_other_overrides_does_not_replace_a_recorded_seed(suite: Any) -> None:
    recorded = {**_row("DB15K", "MoCME (structure + text, 1vsAll)", 0.40, seed=0), "overrides": ["seed=0"]}
    job = {"dataset": "DB15K", "variant": recorded["variant"], "recipe": "mocme-1vsall", "overrides": []}
    assert suite.job_seed(job) == 0  # no --seeds: the config's seed
    assert suite.conflicting_row({**job, "overrides": ["training.epochs=12"]}, [recorded]) is recorded
    assert suite.conflicting_row({**job, "overrides": ["training.epochs=12", "seed=3"]}, [recorded]) is None
    assert suite.conflicting_row({**job, "seed": 0, "overrides": ["seed=0"]}, [recorded]) is None  # the same run


def test_the_unseen_entity_note_counts_the_seeds_it_averages(suite: Any) -> None:
    unseen = {"unseen": {**_split(0.10, 40), "triples": 20}}
    rows = [
        _row("MKG-Y", "ComplEx-N3 (structure, 1vsAll)", mrr, seed=seed, **({"test_by_seen": unseen} if seed else {}))
        for seed, mrr in ((0, 0.34), (1, 0.35), (2, 0.36))
    ]
    text = suite.markdown(rows)
    assert "ComplEx-N3 (structure, 1vsAll) (2 seeds) 10.00 / 20.00" in text


def test_an_ablation_set_shares_the_main_tables_runs_and_shows_only_once_its_own_have_run(
    suite: Any, tmp_path: Path
) -> None:
    full = _row("MKG-Y", "MoCME (structure + text, 1vsAll, shared experts)", 0.39, recipe="mocme-1vsall")
    assert "ablations of MoCME on the 1vsAll recipe" not in suite.markdown([full])  # the main row alone
    rows = [full, _row("MKG-Y", "1vsAll recipe, fusion: mean", 0.38, recipe="mocme-1vsall")]
    text = suite.markdown(rows)
    ablation = text.split("## MKG-Y: ablations of MoCME on the 1vsAll recipe\n")[1]
    assert "| MoCME (structure + text, 1vsAll, shared experts) |" in ablation
    assert "| 1vsAll recipe, fusion: mean |" in ablation
    assert "| MoCME (structure + text, 1vsAll, shared experts) |" in text.split("## MKG-Y\n")[1].split("## ")[0]
    pytest.importorskip("matplotlib")
    out = tmp_path / "mmkgc"
    suite.write_results(out, rows)
    figure = (tmp_path / "mmkgc_ablation-1vsall_MKG-Y.svg").read_text()
    assert "fusion: mean" in figure and "ablations of MoCME on the 1vsAll recipe" in figure


def test_sigterm_stops_the_suite_through_its_pool(suite: Any) -> None:
    """``kill`` raises ``SystemExit`` in the suite, so its pool's ``with`` ends the workers."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        suite.stop_workers_on_sigterm()
        with pytest.raises(SystemExit) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
        assert stopped.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize(
    ("t", "df"), [(12.706, 1), (4.303, 2), (3.182, 3), (2.776, 4), (2.571, 5), (2.228, 10), (2.086, 20)]
)
def test_students_t_p_is_five_percent_at_the_tabulated_critical_values(suite: Any, t: float, df: int) -> None:
    assert suite.students_t_p(t, df) == pytest.approx(0.05, abs=2e-4)
    assert suite.students_t_p(-t, df) == suite.students_t_p(t, df)
    assert suite.students_t_p(0.0, df) == pytest.approx(1.0)


def test_ablation_tables_give_each_switch_its_gap_per_shared_seed_and_the_paired_p(suite: Any) -> None:
    full = "MoCME (structure + text, 1vsAll, shared experts)"
    rows = [
        _row("MKG-Y", full, mrr, recipe="mocme-1vsall", seed=seed) for seed, mrr in enumerate((0.390, 0.392, 0.394))
    ] + [
        _row("MKG-Y", "1vsAll recipe, fusion: mean", mrr, recipe="mocme-1vsall", seed=seed)
        for seed, mrr in enumerate((0.388, 0.391, 0.391))
    ]
    rows.append(_row("MKG-Y", "1vsAll recipe, K = 1 expert", 0.395, recipe="mocme-1vsall", seed=2))
    ablation = suite.markdown(rows).split("## MKG-Y: ablations of MoCME on the 1vsAll recipe\n")[1]
    gaps = [-0.2, -0.1, -0.3]  # points, seeds 0, 1, 2: t = −0.2 / (0.1 / √3), 2 degrees of freedom
    p = suite.students_t_p(-0.2 / (0.1 / 3**0.5), 2)
    assert suite.paired_t_p(gaps) == pytest.approx(p)
    assert f"| 1vsAll recipe, fusion: mean | 0, 1, 2 | −0.20 (−0.20 / −0.10 / −0.30) | {p:.2f} |" in ablation
    assert "| 1vsAll recipe, K = 1 expert | 2 | +0.10 (+0.10) |  |" in ablation  # one shared seed: no test


def test_rows_of_another_config_are_refused_at_any_seed_and_never_pooled(suite: Any, tmp_path: Path) -> None:
    """A config edited between seeds (the same variant name and overrides) gives another fingerprint:
    the suite refuses to add its runs to the old ones, and a mean over both is refused."""
    from mocme.errors import ConfigError

    variant = "ComplEx-N3 (structure, 1vsAll)"
    recorded = [
        {**_row("MKG-Y", variant, 0.35, seed=seed, recipe="complex-n3"), "overrides": [], "config_sha256": "a"}
        for seed in (0, 1)
    ]
    job = {"dataset": "MKG-Y", "variant": variant, "recipe": "complex-n3", "seed": 3, "overrides": ["seed=3"]}
    assert suite.conflicting_row({**job, "config_sha256": "b"}, recorded) is recorded[0]
    assert suite.conflicting_row({**job, "config_sha256": "a"}, recorded) is None
    assert not suite.same_run(recorded[0], {**job, "seed": 0, "overrides": ["seed=0"], "config_sha256": "b"})
    with pytest.raises(ConfigError, match="different configs"):
        suite.pooled([*recorded, {**recorded[0], "seed": 2, "config_sha256": "b"}])
    out = tmp_path / "mmkgc"
    suite.write_results(out, recorded)
    before = out.with_suffix(".json").read_text()
    with pytest.raises(ConfigError, match="another config"):  # a suite beside recorded seed 2 meanwhile
        suite.record_row(out, {**recorded[0], "seed": 2, "config_sha256": "b", "run_dir": "runs/x"})
    assert out.with_suffix(".json").read_text() == before


def test_the_fingerprint_leaves_out_seed_threads_and_file_locations_but_not_the_budget(suite: Any) -> None:
    from mocme.config import load_config

    base = suite.config_fingerprint(load_config(None, []))
    moved = ["seed=3", "threads=1", "dataset.data_dir=/elsewhere"]
    assert suite.config_fingerprint(load_config(None, moved)) == base
    assert suite.config_fingerprint(load_config(None, ["model.dim=64"])) == base  # the default value
    assert suite.config_fingerprint(load_config(None, ["training.epochs=7"])) != base


def test_a_finished_run_of_another_config_is_never_overwritten(suite: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """The run directory is named by variant and seed only: a job of another config must not delete the
    finished run a recorded row points to, and ``--table-only`` must not read another run into a row."""
    from mocme.errors import ConfigError

    monkeypatch.setattr(suite, "config_path", lambda dataset, recipe: None)  # the built-in synthetic default
    monkeypatch.chdir(tmp_path)
    tiny = ["dataset.synthetic.num_entities=120", "model.dim=8", "model.relation_dim=4", "training.epochs=1"]
    tiny.append("dataset.data_dir=.")  # relative: the run saves it absolute
    run_dir = tmp_path / "runs" / "variant-seed0"
    job = {"dataset": "MKG-Y", "variant": "MoCME (structure + text)", "recipe": "mocme", "overrides": tiny}
    job |= {"run_dir": str(run_dir), "threads": 1, "seed": 0}
    row = suite.run_one(job)
    assert row["config_sha256"] == suite.job_fingerprint(job) and row["threads"] == 1
    assert len(row["cpus"]) == 1 and row["cpus"][0]  # the machine its wall-clock was measured on
    metrics = (run_dir / "metrics.json").read_text()
    moved = {**job, "overrides": [*tiny, f"dataset.data_dir={tmp_path / 'elsewhere'}"]}
    assert suite.run_one(moved)["test"] == row["test"]  # the same run from another checkout: reused
    longer = {**job, "overrides": [*tiny, "training.epochs=2"]}
    with pytest.raises(ConfigError, match="--runs-dir"):
        suite.run_one(longer)
    with pytest.raises(ConfigError, match="another config or seed"):  # the fingerprint leaves the seed out
        suite.run_one({**job, "overrides": [*tiny, "seed=1"]})
    assert (run_dir / "metrics.json").read_text() == metrics

    (run_dir / "metrics.json").unlink()  # killed after its last checkpoint: resumed, relative path and all
    from mocme import pipeline

    calls = []
    monkeypatch.setattr(pipeline, "resume", lambda path: calls.append(("resume", path)))
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: calls.append(("train", a)))
    monkeypatch.setattr(suite, "summarize", lambda job: {"run_dir": job["run_dir"]})
    suite.run_one(job)
    assert [name for name, _ in calls] == ["resume"]
    (run_dir / "metrics.json").write_text(metrics)
    monkeypatch.undo()

    out = tmp_path / "mmkgc"
    suite.write_results(out, [{**row, "config_sha256": "another"}])
    suite.refresh_rows(out)  # the folder holds another config's run than the row says: kept as recorded
    assert json.loads(out.with_suffix(".json").read_text())[0]["config_sha256"] == "another"
    old = {k: v for k, v in row.items() if k != "config_sha256"} | {"overrides": ["model.no_such_option=1"]}
    suite.write_results(out, [old])
    suite.refresh_rows(out)  # an older row whose overrides no longer load: kept, no crash
    assert json.loads(out.with_suffix(".json").read_text())[0]["overrides"] == ["model.no_such_option=1"]
