"""The command line: help texts, a tiny end-to-end run, predictions, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
import torch
import typer
import yaml

from mocme.cli import app, main

TINY = [
    "--set", "dataset.synthetic.num_entities=200",
    "--set", "dataset.synthetic.num_relations=4",
    "--set", "model.dim=16",
    "--set", "model.relation_dim=8",
    "--set", "training.epochs=2",
    "--set", "training.eval_every=1",
    "--set", "training.batch_size=128",
]  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def all_commands() -> list[list[str]]:
    """Every command path of the app, groups included: [[], ["train"], ..., ["features", "text"], ...]."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(group: click.Group, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            paths.append([*prefix, name])
            if isinstance(command, click.Group):
                walk(command, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "mocme")
def test_every_command_explains_itself(capsys, command):
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert "Usage" in out and len(out) > 200


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("mocme ")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", "--quiet", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_complete_run_directory(tiny_run):
    for name in ("config.yaml", "metadata.json", "trace.jsonl", "metrics.json", "checkpoints/last.pt"):
        assert (tiny_run / name).is_file(), name
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["training"]["epochs"] == 2 and config["model"]["dim"] == 16
    metadata = json.loads((tiny_run / "metadata.json").read_text())
    assert {"versions", "seed", "git_revision", "hardware"} <= set(metadata)
    assert metadata["hardware"]["cpu"]  # the CPU's model: wall-clock times depend on it
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert {"valid", "test", "selected_epoch"} <= set(metrics)
    trace = [json.loads(line) for line in (tiny_run / "trace.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in trace] == [1, 2]
    assert {"structure", "joint"} <= set(trace[0]["losses"])


def test_evaluate_reproduces_the_run_metrics(capsys, tiny_run):
    code, out, _ = run(capsys, "evaluate", str(tiny_run), "--split", "test", "--json", "--quiet")
    assert code == 0
    saved = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert json.loads(out)["both"] == saved["both"]


def _strict(text: str):
    """Parse JSON, failing on the NaN and Infinity tokens that Python writes but JSON lacks."""
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in JSON output"))


def test_json_output_is_strict_with_null_for_undefined_metrics(capsys, tiny_run, tmp_path):
    from mocme.io import append_jsonl, to_json, write_json_atomic

    nan, inf = float("nan"), float("inf")
    assert to_json({"mrr": nan, "ranks": (inf, 1.5), "side": {"mr": -inf, "count": 0}}) == (
        '{"mrr": null, "ranks": [null, 1.5], "side": {"mr": null, "count": 0}}'
    )
    write_json_atomic(tmp_path / "metrics.json", {"head": {"mrr": nan}})  # a group's empty side
    append_jsonl(tmp_path / "trace.jsonl", {"epoch": 1, "valid": nan})
    assert _strict((tmp_path / "metrics.json").read_text()) == {"head": {"mrr": None}}
    assert _strict((tmp_path / "trace.jsonl").read_text()) == {"epoch": 1, "valid": None}
    _strict((tiny_run / "metrics.json").read_text())
    for line in (tiny_run / "trace.jsonl").read_text().splitlines():
        _strict(line)
    code, out, _ = run(capsys, "evaluate", str(tiny_run), "--split", "test", "--breakdown", "--json", "--quiet")
    assert code == 0 and {"by_modality", "by_seen", "by_degree"} <= set(_strict(out))


def _edited_copy(run_dir, to, edit):
    """A copy of ``run_dir`` at ``to`` whose config.yaml ``edit(config)`` changed."""
    shutil.copytree(run_dir, to)
    config = yaml.safe_load((to / "config.yaml").read_text())
    edit(config)
    (to / "config.yaml").write_text(yaml.safe_dump(config))
    return to


def test_evaluate_says_raw_ranks_when_the_run_is_unfiltered(capsys, tiny_run, tmp_path):
    run_dir = _edited_copy(tiny_run, tmp_path / "raw", lambda c: c["evaluation"].update(filtered=False))
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--split", "test", "--quiet")
    assert code == 0 and out.startswith("test (raw, realistic ranks; checkpoint best)")
    code, out, _ = run(capsys, "evaluate", str(tiny_run), "--split", "test", "--quiet")
    assert code == 0 and out.startswith("test (filtered, realistic ranks; checkpoint best)")


def test_a_gpu_trained_run_is_read_on_cpu_with_device(capsys, tiny_run, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a machine with a GPU reads a cuda run as it is")
    run_dir = _edited_copy(tiny_run, tmp_path / "gpu", lambda c: c.update(device="cuda"))
    code, _, err = run(capsys, "evaluate", str(run_dir), "--split", "test", "--quiet")
    assert code == 2 and "no CUDA GPU is available (use --device cpu or auto)" in err
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--split", "test", "--json", "--quiet", "--device", "cpu")
    assert code == 0 and json.loads(out)["both"] == json.loads((tiny_run / "metrics.json").read_text())["test"]["both"]
    code, out, _ = run(capsys, "predict", str(run_dir), "--head", "e000", "-r", "r0", "--device", "cpu")
    assert code == 0 and "Top 10 answers of (e000, r0, ?)" in out


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_misspelt_checkpoint_or_device_is_a_one_line_error(capsys, tiny_run, command):
    query = ["--head", "e000", "-r", "r0"] if command == "predict" else []
    code, _, err = run(capsys, command, str(tiny_run), *query, "--checkpoint", "bset")
    assert code == 2 and err.strip() == "error: checkpoint must be 'best' or 'last', got 'bset'"
    code, _, err = run(capsys, command, str(tiny_run), *query, "--device", "gpu")
    assert code == 2 and err.strip() == "error: unknown device 'gpu' (use cpu, cuda, cuda:N or auto)"


def test_predict_says_whether_the_targets_rank_is_raw_or_filtered(capsys, tiny_run):
    query = ["--head", "e000", "-r", "r0", "--tail", "e001"]
    _, raw, _ = run(capsys, "predict", str(tiny_run), *query)
    _, filtered, _ = run(capsys, "predict", str(tiny_run), *query, "--exclude-known")
    assert "(raw: known answers included; score" in raw
    assert "(filtered: known answers left out; score" in filtered


def test_evaluate_scorers_ranks_with_each_scorer_alone(capsys, tiny_run):
    code, out, _ = run(capsys, "evaluate", str(tiny_run), "--split", "test", "--scorers", "--json", "--quiet")
    assert code == 0
    per_scorer = json.loads(out)
    assert list(per_scorer) == ["structure", "text", "visual", "joint", "decision"]
    saved = json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert per_scorer["decision"]["both"] == saved["both"]
    for metrics in per_scorer.values():
        assert 0 < metrics["both"]["realistic"]["inverse_harmonic_mean_rank"] <= 1
    code, out, _ = run(capsys, "evaluate", str(tiny_run), "--split", "test", "--scorers", "--quiet")
    assert code == 0 and "text scorer" in out and "joint decision" in out


def test_the_old_heads_option_still_works_with_a_one_line_notice(capsys, tiny_run):
    _, new, _ = run(capsys, "evaluate", str(tiny_run), "--scorers", "--json", "--quiet")
    code, old, err = run(capsys, "evaluate", str(tiny_run), "--heads", "--json", "--quiet")
    assert code == 0 and json.loads(old) == json.loads(new)
    assert err.strip() == "warning: --heads is now --scorers; the old name is accepted until the next release"


def test_evaluate_scorers_needs_a_mocme_run(capsys, tmp_path):
    out = tmp_path / "tucker"
    assert main(["train", "--quiet", "--out", str(out), *TINY, "--set", "model.name=tucker"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "evaluate", str(out), "--scorers", "--quiet")
    assert code == 2 and "per-scorer evaluation needs a MoCME run" in err
    assert len(err.strip().splitlines()) == 1


def test_predict_with_explanation(capsys, tiny_run):
    code, out, _ = run(
        capsys, "predict", str(tiny_run), "--head", "e000", "--relation", "r0", "--top", "5", "--explain"
    )
    assert code == 0, out
    assert "Top 5 answers of (e000, r0, ?)" in out
    assert "alpha" in out and "driver" in out and "weight in e*" in out and "in the context of r0:" in out
    code, out, _ = run(capsys, "predict", str(tiny_run), "--tail", "e001", "--relation", "r1", "--explain")
    assert code == 0 and "in the context of r1⁻¹:" in out  # a head query reads the relation reversed
    code, out, _ = run(capsys, "predict", str(tiny_run), "--tail", "e001", "--relation", "r1", "--json")
    result = json.loads(out)
    assert result["direction"] == "head" and len(result["candidates"]) == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--set", "training.lrr=1"], "unknown key 'training.lrr' (did you mean 'lr'?)"),
        (["train", "--set", "model.dim=abc"], "model.dim"),
        (["train", "--set", "training.epochs=0"], "training.epochs"),
        (["train", "no-such-config.yaml"], "no-such-config.yaml: config file not found"),
        (["evaluate", "/nonexistent/run"], "not a run directory"),
        (["train", "--set", "dataset.name=no-such-dataset"], "neither a known dataset"),
    ],
)
def test_bad_input_is_one_line_with_status_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err + out


def test_config_file_errors_name_file_and_line(capsys, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("seed: 1\ntraining:\n  epochs: 3\n  lr: -1\n")
    code, _, err = run(capsys, "train", str(path))
    assert code == 2 and f"{path}:4: training.lr" in err


def test_existing_run_directory_is_not_overwritten(capsys, tiny_run):
    before = (tiny_run / "metrics.json").read_bytes()
    code, _, err = run(capsys, "train", "--out", str(tiny_run), *TINY)
    assert code == 2 and "already exists" in err
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_a_data_dir_with_yaml_characters_is_taken_as_it_is():
    from pathlib import Path

    from mocme.cli.runs import _overrides
    from mocme.config import load_config

    for folder in ("/data/run #2", "/data/a: b", "~", "no"):
        config = load_config(overrides=_overrides(None, Path(folder), None, None, None))
        assert config.dataset.data_dir == Path(folder)


def test_damaged_run_directories_are_one_line_errors(capsys, tiny_run, tmp_path):
    import torch

    def damaged(name, edit):
        to = tmp_path / name
        shutil.copytree(tiny_run, to)
        edit(to)
        return to

    cases = {
        "cannot read the run's config": damaged("yaml", lambda d: (d / "config.yaml").write_text("seed: [1,\n")),
        "not a run config": damaged("empty", lambda d: (d / "config.yaml").write_text("")),
        "not a mocme checkpoint": damaged("foreign", lambda d: torch.save([1, 2], d / "checkpoints" / "best.pt")),
        "does not fit the model config.yaml describes": _edited_copy(
            tiny_run, tmp_path / "shape", lambda config: config["model"].update(dim=24)
        ),
    }
    for message, run_dir in cases.items():
        for argv in (["evaluate", str(run_dir)], ["train", "--resume", str(run_dir), "-q"]):
            code, _, err = run(capsys, *argv)
            assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (argv, err)
    afile = tmp_path / "afile"
    afile.write_text("hi")
    for out in (afile, afile / "sub"):
        code, _, err = run(capsys, "train", "--out", str(out), *TINY)
        assert code == 2 and "cannot be a run directory" in err and afile.read_text() == "hi", err


def test_resuming_a_finished_run_returns_its_recorded_metrics_without_scoring_test_again(tiny_run, tmp_path):
    from mocme.pipeline import resume

    copy = tmp_path / "finished"
    shutil.copytree(tiny_run, copy)
    (copy / "metadata.json").unlink()  # as a kill between config.yaml and metadata.json leaves it
    recorded = (copy / "metrics.json").read_bytes()
    result = resume(copy)
    assert (copy / "metrics.json").read_bytes() == recorded and result.metrics == json.loads(recorded)
    assert (
        json.loads((copy / "metadata.json").read_text())["seed"]
        == yaml.safe_load((copy / "config.yaml").read_text())["seed"]
    )


def test_usage_errors_unusable_paths_and_interrupts_are_one_line(capsys, tiny_run, tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("")
    graph = Path(__file__).parent / "bad_inputs" / "_graph"
    cases = [
        (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
        (["convert", str(graph), str(afile / "sub")], str(afile)),
        (["features", "import", str(graph), str(tmp_path), "--name", "v"], str(tmp_path)),
        (["train", "--resume", str(tiny_run), "--epochs", "5"], "do not combine it with --epochs"),
        (["train", "--set", "seed=99999999999999999999999", "--epochs", "1"], "seed"),
    ]
    for argv, expected in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, (argv, err)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("mocme.data.loading.load_dataset", interrupted)
    code, _, err = run(capsys, "inspect", str(graph))
    assert code == 130 and err.strip() == "interrupted"
