"""The bad-input corpus: every case runs through the CLI and fails cleanly, or is accepted.

Each folder of ``tests/bad_inputs`` is one case: its input files, ``cmd`` (the CLI arguments, one
shell-like line) and ``expected`` (a substring of the one-line error, naming file and line). A case
with an ``accepted`` marker must succeed instead; its ``expected`` is then found in the output
(stdout, stdout as one-line JSON, or a one-line warning on stderr). In ``cmd`` and ``expected``,
``{case}`` is the case folder, ``{graph}`` a valid 6-entity graph (``_graph``), ``{run}`` a MoCME run
trained on it with a 3-d ``text`` feature modality (read from a ``.npy`` file, so there is no text
encoder to re-make it with) and ``{out}`` a fresh folder for outputs. Binary inputs come from
``make_binary_cases.py``.

A failing case must exit with status 2, print exactly one ``error: ...`` line and nothing on stdout,
show no traceback, and leave every file as it was: no partial output, no run directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mocme.cli import main
from mocme.data import Vocabulary, save_layout
from mocme.errors import MocmeError
from tests.conftest import tiny_kg

ROOT = Path(__file__).resolve().parent / "bad_inputs"
CASES = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("_"))


def snapshot(directory: Path) -> dict[str, str]:
    """Every path under ``directory`` with a hash of its content (``dir`` for folders)."""
    return {
        str(p.relative_to(directory)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
    }


def test_corpus_is_large_and_well_formed():
    assert len(CASES) >= 40
    for case in CASES:
        folder = ROOT / case
        assert (folder / "cmd").is_file() and (folder / "expected").is_file(), case
    accepted = [c for c in CASES if (ROOT / c / "accepted").exists()]
    assert 0 < len(accepted) < len(CASES) / 2


@pytest.fixture(scope="session")
def corpus_run(tmp_path_factory) -> Path:
    """A tiny MoCME run on ``_graph`` with one feature modality, ``text`` (3-d, from a ``.npy`` file)."""
    import numpy as np

    from mocme.config import validate_config
    from mocme.pipeline import train

    root = tmp_path_factory.mktemp("corpus-run")
    graph = shutil.copytree(ROOT / "_graph", root / "graph")
    features = root / "text.npy"
    np.save(features, np.arange(18, dtype=np.float32).reshape(6, 3) / 10)
    config = validate_config(
        {
            "dataset": {"name": str(graph), "features": {"text": {"path": str(features)}}},
            "model": {"dim": 4, "relation_dim": 2, "attention_dim": 4, "projection_dim": 4},
            "training": {"epochs": 1, "batch_size": 4, "num_negatives": 2, "egns": {"keep": 2}},
        }
    )
    train(config, root / "run")
    return root / "run"


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, monkeypatch, capsys, request):
    work = tmp_path / "case"
    shutil.copytree(ROOT / case, work)
    shutil.copytree(ROOT / "_graph", tmp_path / "graph")
    places = {"{case}": str(work), "{graph}": str(tmp_path / "graph"), "{out}": str(tmp_path / "out")}
    if "{run}" in (work / "cmd").read_text(encoding="utf-8"):
        places["{run}"] = str(request.getfixturevalue("corpus_run"))
        capsys.readouterr()  # nothing of the training belongs to the case

    def fill(text: str) -> str:
        for placeholder, value in places.items():
            text = text.replace(placeholder, value)
        return text

    argv = [fill(arg) for arg in shlex.split((work / "cmd").read_text(encoding="utf-8"))]
    expected = fill((work / "expected").read_text(encoding="utf-8").strip())
    monkeypatch.chdir(tmp_path)  # anything written to the working directory would show in the snapshot
    before = snapshot(tmp_path)

    code = main(argv)
    out, err = capsys.readouterr()

    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    if (work / "accepted").exists():
        assert code == 0, err
        assert all(line.startswith("warning: ") for line in lines), err
        shown = [out, err]
        if out.lstrip().startswith("{"):
            shown.append(json.dumps(json.loads(out)))
        assert any(expected in text for text in shown), f"{expected!r} not in output:\n{out}\n{err}"
    else:
        assert code == 2, f"exit status {code}; stderr: {err}"
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert expected in lines[0]
        assert out == ""
        assert snapshot(tmp_path) == before, "files were written or changed by a failing command"


# -- the same commands on good input ----------------------------------------------------------------
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_commands_explain_themselves(capsys, command):
    assert main([command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_convert_then_inspect_gives_the_same_statistics(tmp_path, capsys):
    source = ROOT / "convert_bom_crlf_openke" / "data"
    feature = ROOT / "feature_float64_pt_with_int_mask" / "text.pt"
    assert main(["inspect", str(source), "--feature", f"text={feature}", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    dest = tmp_path / "converted"
    assert main(["convert", str(source), str(dest), "--feature", f"text={feature}"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {dest}")
    assert main(["inspect", str(dest), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in after.items() if k != "name"} == {k: v for k, v in before.items() if k != "name"}
    assert after["modalities"] == [{"name": "text", "dim": 2, "entities": 4, "coverage": 0.6667}]
    assert sorted(p.name for p in dest.iterdir()) == [
        "dataset.yaml", "entities.txt", "features", "relations.txt", "test.tsv", "train.tsv", "valid.tsv"
    ]  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_convert_overwrite_replaces_the_destination(tmp_path, capsys):
    dest = tmp_path / "converted"
    (dest / "stale").mkdir(parents=True)
    (dest / "entities.txt").write_text("old\n")  # an earlier conversion
    assert main(["convert", str(ROOT / "_graph"), str(dest), "--overwrite"]) == 0
    assert not (dest / "stale").exists() and (dest / "entities.txt").read_text() != "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["converted"]
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("years of work")
    assert main(["convert", str(ROOT / "_graph"), str(documents), "--overwrite"]) == 2
    assert "not a dataset in the project's layout" in capsys.readouterr().err
    assert (documents / "thesis.txt").read_text() == "years of work"


def test_inspect_a_benchmark(data_dir, capsys):
    assert main(["inspect", "UMLS", "--data-dir", str(data_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    sizes = [summary["entities"], summary["relations"], *(summary["splits"][s]["triples"] for s in summary["splits"])]
    assert sizes == [135, 46, 5216, 652, 661]
    assert sum(summary["relation_categories"].values()) + summary["relations_without_train_triples"] == 46
    assert summary["entities_with_text"] == 135


def test_the_console_script_prints_one_line(tmp_path):
    """Outside pytest's capture too: a warning and an error are one line each, with no traceback."""
    warned = ROOT / "openke_unseen_test_entity" / "data"
    result = subprocess.run(
        [sys.executable, "-m", "mocme", "inspect", str(warned)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stderr == "warning: data: 1 of 2 test triples have an entity never seen in training (kept)\n"
    broken = ROOT / "openke_count_too_high" / "data"
    result = subprocess.run(
        [sys.executable, "-m", "mocme", "inspect", str(broken)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"error: {broken}/train2id.txt:1: count line says 6 entries but the file has 5\n"


@pytest.mark.parametrize(
    ("entity", "modality", "message"),
    [
        ("New\tYork", "text", "cannot save name 'New\\tYork'"),
        ("\ufeffa", "text", "byte-order mark"),
        (" padded", "text", "surrounding whitespace"),
        ("e1", "a.b", "cannot save modality 'a.b'"),
        ("e1", "../up", "cannot save modality '../up'"),
    ],
)
def test_save_layout_refuses_what_would_not_read_back(tmp_path, entity, modality, message):
    """Names the layout's files cannot hold are refused before anything is written (Python API)."""
    kg = tiny_kg()
    kg.entities = Vocabulary(entity if n == "e1" else n for n in kg.entities)
    kg.modalities = {modality: kg.modalities["text"]}
    with pytest.raises(MocmeError, match=re.escape(message)):
        save_layout(kg, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_run_refuses_a_dataset_that_changed_since_it_trained(tmp_path, capsys):
    """Entity ids come from the files: a reordered train file or replaced features would silently pair
    the trained rows with other entities, so loading, predicting and resuming refuse, in one line."""
    from mocme.data.synthetic import SyntheticSpec, generate

    folder = save_layout(generate(SyntheticSpec(num_entities=60, num_relations=3)), tmp_path / "graph")
    run_dir = tmp_path / "run"
    tiny = ["--set", "model.dim=8", "--set", "model.relation_dim=4", "--set", "training.epochs=1"]
    assert main(["train", "--quiet", "--out", str(run_dir), "--set", f"dataset.name={folder}", *tiny]) == 0
    assert json.loads((run_dir / "metadata.json").read_text())["data"]["entities_sha256"]
    capsys.readouterr()
    predict = ["predict", str(run_dir), "--head", "e01", "--relation", "r0"]
    assert main(predict) == 0
    capsys.readouterr()
    text = folder / "features" / "text.safetensors"
    original = text.read_bytes()
    from mocme.data import load_layout
    from mocme.data.layout import save_modality

    kg = load_layout(folder)
    kg.modalities["text"].features.mul_(2)
    save_modality(kg.modalities["text"], text, kg.entities)
    assert main(predict) == 2
    assert "the 'text' features changed" in capsys.readouterr().err
    text.write_bytes(original)
    assert main(predict) == 0
    capsys.readouterr()

    plain = tmp_path / "plain"  # TSV splits alone: entity ids in order of first appearance
    plain.mkdir()
    for split in ("train", "valid", "test"):
        shutil.copy(folder / f"{split}.tsv", plain / f"{split}.tsv")
    run_dir = tmp_path / "run-plain"
    assert main(["train", "--quiet", "--out", str(run_dir), "--set", f"dataset.name={plain}", *tiny]) == 0
    (run_dir / "metrics.json").unlink()  # so that --resume has something to do
    capsys.readouterr()
    predict = ["predict", str(run_dir), "--head", "e01", "--relation", "r0"]
    train = plain / "train.tsv"
    train.write_text("".join(reversed(train.read_text().splitlines(keepends=True))))
    for command in (predict, ["evaluate", str(run_dir)], ["train", "--resume", str(run_dir)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "the dataset differs from the one this run trained on (its entity list" in err
        assert len(err.strip().splitlines()) == 1


def test_a_run_trained_on_relative_paths_loads_from_any_folder(tmp_path, monkeypatch, capsys):
    from mocme.data.synthetic import SyntheticSpec, generate

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    save_layout(generate(SyntheticSpec(num_entities=60, num_relations=3)), work / "graph")
    shutil.copy(work / "graph" / "features" / "text.safetensors", work / "text.safetensors")
    tiny = ["--set", "model.dim=8", "--set", "model.relation_dim=4", "--set", "training.epochs=1"]
    features = ["--set", "dataset.features.text.path=text.safetensors"]
    assert main(["train", "--quiet", "--out", "run", "--set", "dataset.name=graph", *features, *tiny]) == 0
    saved = (work / "run" / "config.yaml").read_text()
    assert f"name: {work / 'graph'}" in saved and f"path: {work / 'text.safetensors'}" in saved
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["predict", str(work / "run"), "--head", "e01", "--relation", "r0"]) == 0, capsys.readouterr().err
