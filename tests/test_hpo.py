"""mocme hpo: a small search end to end, continuing a study, and one-line errors for the search space."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from mocme import pipeline
from mocme.cli import main
from mocme.config import load_config
from mocme.hpo import PruneOnValidation

optuna = pytest.importorskip("optuna")

BASE = {
    "dataset": {"synthetic": {"num_entities": 60, "num_relations": 2}},
    "model": {"dim": 8, "relation_dim": 4, "experts": 2},
    "training": {"epochs": 2, "eval_every": 1, "batch_size": 512},
}
SEARCH = {
    "training.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "model.experts": {"type": "int", "low": 1, "high": 3},
    "model.fusion": {"type": "categorical", "choices": ["complementarity", "mean"]},
}


def write_config(tmp_path, search=SEARCH, **sections) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({**BASE, **sections, "search": search}, sort_keys=False))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_search_writes_trials_best_config_and_continues_its_study(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "study"
    code, stdout, _ = run(capsys, "hpo", config, "--trials", "3", "--out", str(out), "--quiet", "--startup-trials", "1")
    assert code == 0
    assert "Study 'search': 3 trials (3 added)" in stdout and "valid MRR" in stdout
    assert sorted(p.name for p in out.glob("trial-*")) == ["trial-0000", "trial-0001", "trial-0002"]
    best = load_config(out / "best.yaml")  # a normal run config: no search section
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    assert best.training.lr == pytest.approx(study.best_trial.params["training.lr"])
    assert best.model.experts == study.best_trial.params["model.experts"]
    assert best == load_config(out / f"trial-{study.best_trial.number:04d}" / "config.yaml")
    for trial in study.trials:  # each trial is a normal run directory with its sampled values
        run_config = load_config(out / f"trial-{trial.number:04d}" / "config.yaml")
        assert run_config.model.fusion == trial.params["model.fusion"]

    code, stdout, _ = run(capsys, "hpo", config, "--trials", "1", "--out", str(out), "--quiet", "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["added"] == 1 and len(summary["trials"]) == 4 and summary["metric"].startswith("valid.")
    assert len(optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}").trials) == 4
    assert (out / "trial-0003" / "config.yaml").is_file()
    assert len({tuple(sorted(t["params"].items())) for t in summary["trials"]}) == 4  # no repeated proposals
    assert all(t["seconds"] > 0 for t in summary["trials"])  # each trial's wall-clock, from start to end

    code, stdout, _ = run(capsys, "hpo", config, "--trials", "0", "--out", str(out), "--quiet")  # show it
    assert code == 0 and "4 trials (0 added)" in stdout and "seconds" in stdout


def test_a_study_continued_from_another_folder_reads_its_own_trials(tmp_path, capsys, monkeypatch):
    """Trial folders are found in the study directory, not relative to where the command runs (where an
    unrelated ``study/trial-0000`` would have been taken for the best trial)."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    config = write_config(tmp_path / "a")
    assert run(capsys, "hpo", config, "--trials", "1", "--out", "study", "--quiet")[0] == 0
    best = (tmp_path / "a" / "study" / "best.yaml").read_text()
    elsewhere = tmp_path / "b"
    decoy = elsewhere / "study" / "trial-0000"
    assert main(["train", "--quiet", "--out", str(decoy), "--set", "dataset.synthetic.num_entities=50"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(elsewhere)
    code, stdout, _ = run(
        capsys, "hpo", "../a/search.yaml", "--trials", "0", "--out", "../a/study", "--quiet", "--json"
    )
    assert code == 0 and json.loads(stdout)["trials"][0]["run_dir"] == str(Path("../a/study/trial-0000"))
    assert (tmp_path / "a" / "study" / "best.yaml").read_text() == best


def test_a_study_refuses_a_changed_config(tmp_path, capsys):
    out = tmp_path / "study"
    assert run(capsys, "hpo", write_config(tmp_path), "--trials", "1", "--out", str(out), "-q")[0] == 0
    changed = write_config(tmp_path, model={"dim": 16, "relation_dim": 4})
    code, _, err = run(capsys, "hpo", changed, "--trials", "1", "--out", str(out), "-q")
    assert code == 2 and "was started with a different config or search space" in err
    assert not (out / "trial-0001").exists()


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"training.lrr": {"type": "float", "low": 0.1, "high": 1}}, "search.yaml:14: unknown key 'training.lrr'"),
        ({"model.dim": {"type": "categorical"}}, "search.yaml:14: search.model.dim: categorical needs"),
        ({"model.dim": {"type": "int", "low": 8, "high": 4}}, "search.yaml:14: search.model.dim: low (8) is above"),
        ({"model.dim": {"type": "int", "low": 0, "high": 4}}, "search.yaml:14: model.dim: Input should be greater"),
        ({"training.lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "a log scale needs low > 0"),
        ({"model.dim": {"type": "int", "low": 2, "high": 8, "size": 3}}, "search.model.dim: size: Extra inputs"),
        ({}, "search.yaml:13: search must map dotted config keys"),
    ],
)
def test_search_space_errors_are_one_line_with_the_line(tmp_path, capsys, search, expected):
    out = tmp_path / "study"
    code, _, err = run(capsys, "hpo", write_config(tmp_path, search=search), "--out", str(out))
    assert code == 2
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_config_without_search_section_is_an_error(tmp_path, capsys):
    path = tmp_path / "plain.yaml"
    path.write_text(yaml.safe_dump(BASE))
    code, _, err = run(capsys, "hpo", str(path), "--out", str(tmp_path / "study"))
    assert code == 2 and "no 'search' section" in err


def test_an_override_of_a_searched_key_is_an_error(tmp_path, capsys):
    study = tmp_path / "study"
    code, _, err = run(capsys, "hpo", write_config(tmp_path), "--out", str(study), "--set", "training.lr=0.5")
    assert code == 2 and err.strip() == (
        "error: --set training.lr: the study searches this key; change its range in 'search' instead"
    )
    assert not study.exists()


def test_a_storage_that_cannot_be_opened_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    folder = tmp_path / "adir"
    folder.mkdir()
    for storage in (str(folder), "bogus://x"):
        study = tmp_path / "study"
        code, _, err = run(capsys, "hpo", write_config(tmp_path), "--out", str(study), "--storage", storage)
        assert code == 2 and "cannot open the study storage" in err and len(err.strip().splitlines()) == 1, err
        assert not study.exists()
    code, _, err = run(capsys, "hpo", write_config(tmp_path), "--sampler-seed", "-5")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--sampler-seed" in err, err


class FakeTrial:
    def __init__(self, prune: bool):
        self.prune, self.reported = prune, []

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return self.prune


def test_pruning_stops_a_run_after_a_validation_epoch_but_never_at_the_last(tmp_path):
    config = load_config(
        overrides=[
            "dataset.synthetic.num_entities=60",
            "model.dim=8",
            "model.relation_dim=4",
            "training.epochs=3",
            "training.eval_every=1",
            "training.batch_size=512",
        ]
    )
    trial = FakeTrial(prune=True)
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        pipeline.train(config, tmp_path / "pruned", callbacks=[PruneOnValidation(trial, config.training.metric, 3)])
    assert [step for step, _ in trial.reported] == [1]
    trial = FakeTrial(prune=True)
    last = PruneOnValidation(trial, config.training.metric, 1)
    last({"epoch": 1, "valid": {config.training.metric: 0.5}})  # the last epoch: reported, not pruned
    last({"epoch": 1})  # no validation this epoch: nothing to report
    assert trial.reported == [(1, 0.5)]


def test_missing_optuna_names_the_hpo_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    code, _, err = run(capsys, "hpo", write_config(tmp_path), "--out", str(tmp_path / "study"))
    assert code == 2 and "pip install 'mocme[hpo]'" in err and err.count("\n") == 1
