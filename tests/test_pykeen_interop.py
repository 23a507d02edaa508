"""PyKEEN interoperability: its datasets train with MoCME, and mocme's datasets become PyKEEN's."""

from __future__ import annotations

import sys

import pytest
import torch

import mocme
from mocme.errors import MocmeError
from mocme.extras import MissingExtraError
from mocme.interop.pykeen import from_pykeen, from_triples_factories, to_pykeen_dataset, to_triples_factory
from tests.conftest import tiny_kg

pykeen_datasets = pytest.importorskip("pykeen.datasets")


@pytest.fixture(scope="module")
def nations():
    return pykeen_datasets.Nations()  # bundled in the pykeen wheel: no download


def test_nations_keeps_pykeens_ids_names_and_splits(nations):
    kg = from_pykeen(nations)
    assert (kg.name, kg.num_entities, kg.num_relations) == ("Nations", 14, 55)
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (1592, 199, 201)
    assert all(kg.entities.id(label) == i for label, i in nations.training.entity_to_id.items())
    assert all(kg.relations.id(label) == i for label, i in nations.training.relation_to_id.items())
    for ours, theirs in ((kg.train, nations.training), (kg.valid, nations.validation), (kg.test, nations.testing)):
        assert torch.equal(ours, theirs.mapped_triples.long())
    assert kg.modalities == {}
    assert torch.equal(mocme.load_dataset("pykeen:Nations").train, kg.train)


def test_mocme_trains_on_pykeen_nations_through_the_run_config(tmp_path):
    result = mocme.train(
        dataset={"name": "pykeen:Nations"},
        model={"dim": 32, "relation_dim": 16},
        training={"epochs": 6, "eval_every": 3, "batch_size": 256, "negatives": "k_vs_all"},
        out=tmp_path / "nations",
    )
    assert result.metrics["dataset"] == "Nations" and result.metrics["modalities"] == ["structure"]
    trained = result.metrics["test"]["both"]["realistic"]["inverse_harmonic_mean_rank"]
    untrained_model = mocme.MoCME(result.kg, mocme.load_config(overrides=["model.dim=32"]).model)
    untrained = mocme.evaluate(untrained_model, result.kg, "test")["both"]["realistic"]["inverse_harmonic_mean_rank"]
    assert trained > untrained + 0.05
    _, kg, model = mocme.load_run(tmp_path / "nations")  # the run directory reloads the same dataset
    assert kg.entities == result.kg.entities
    assert mocme.predict(model, kg, "usa", "embassy", top=3).candidates[0].entity in kg.entities


def test_a_graph_round_trips_through_a_pykeen_dataset():
    kg = tiny_kg(num_entities=20, seed=1)
    dataset = to_pykeen_dataset(kg)
    assert dataset.training.entity_to_id == kg.entities.index
    back = from_pykeen(dataset)
    assert back.entities == kg.entities and back.relations == kg.relations and back.name == kg.name
    for split in ("train", "valid", "test"):
        assert torch.equal(back.split(split), kg.split(split))
    factory = to_triples_factory(kg, "test")
    assert factory.num_triples == len(kg.test) and factory.metadata["split"] == "test"


def test_evaluation_splits_with_their_own_mapping_are_mapped_through_labels():
    from pykeen.triples import TriplesFactory

    kg = tiny_kg(num_entities=10, seed=2, with_modality=False)
    training = to_triples_factory(kg, "train")
    reversed_entities = {name: kg.num_entities - 1 - i for name, i in kg.entities.index.items()}
    valid = kg.valid.clone()
    valid[:, [0, 2]] = kg.num_entities - 1 - valid[:, [0, 2]]
    validation = TriplesFactory(valid, reversed_entities, dict(kg.relations.index))
    back = from_triples_factories(training, validation, None, name="tiny")
    assert torch.equal(back.valid, kg.valid) and len(back.test) == 0


def test_pykeen_trains_on_an_exported_graph():
    from pykeen.pipeline import pipeline

    kg = mocme.load_dataset(None)  # the synthetic graph
    result = pipeline(
        dataset=to_pykeen_dataset(kg),
        model="DistMult",
        model_kwargs={"embedding_dim": 8},
        training_kwargs={"num_epochs": 1, "batch_size": 4096},
        evaluation_kwargs={"batch_size": 512},
        random_seed=0,
    )
    assert 0 < result.get_metric("both.realistic.inverse_harmonic_mean_rank") <= 1


def test_unknown_pykeen_dataset_suggests_close_names():
    with pytest.raises(MocmeError, match=r"unknown PyKEEN dataset 'natons' \(did you mean nations"):
        from_pykeen("pykeen:natons")


def test_missing_pykeen_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pykeen.datasets", None)
    with pytest.raises(MissingExtraError, match=r"'peer' extra"):
        mocme.load_dataset("pykeen:Nations")
