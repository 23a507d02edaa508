"""Own layout round trip, registry of real benchmarks, synthetic generator."""

from __future__ import annotations

import pytest
import torch

from mocme.data import BENCHMARKS, generate, load_benchmark, load_dataset, load_layout, save_layout
from mocme.data.loading import DatasetConfig, FeatureFile
from mocme.data.registry import readable_name
from mocme.data.synthetic import SyntheticModality, SyntheticSpec
from mocme.errors import MocmeError


def small_spec(**kw) -> SyntheticSpec:
    return SyntheticSpec(num_entities=300, num_relations=4, **kw)


def test_layout_round_trip(tmp_path):
    kg = generate(small_spec())
    kg.entity_text = [f"entity number {i}" if i % 3 else None for i in range(kg.num_entities)]
    save_layout(kg, tmp_path / "g")
    again = load_layout(tmp_path / "g")
    assert again.entities == kg.entities and again.relations == kg.relations
    for split in ("train", "valid", "test"):
        assert torch.equal(again.split(split), kg.split(split))
    assert again.entity_text == kg.entity_text
    for name, modality in kg.modalities.items():
        assert torch.equal(again.modalities[name].features, modality.features)
        assert torch.equal(again.modalities[name].mask, modality.mask)
    with pytest.raises(MocmeError, match="already exists"):
        save_layout(kg, tmp_path / "g")
    assert load_dataset(str(tmp_path / "g")).num_entities == kg.num_entities


def test_synthetic_is_deterministic_and_seeded():
    a, b, c = generate(small_spec()), generate(small_spec()), generate(small_spec(seed=1))
    assert torch.equal(a.train, b.train) and torch.equal(a.modalities["text"].features, b.modalities["text"].features)
    assert not torch.equal(a.train, c.train)


def test_synthetic_spec_refuses_more_tails_per_head_than_other_entities():
    """A head's tails are other entities; max_tails >= N planted self-loops (N) or crashed (> N)."""
    with pytest.raises(ValueError, match=r"max_tails \(10\) must be below num_entities \(10\)"):
        SyntheticSpec(num_entities=10, num_relations=10, max_tails=10)
    kg = generate(SyntheticSpec(num_entities=10, num_relations=10, max_tails=9, triples_per_entity=20))
    triples = torch.cat([kg.train, kg.valid, kg.test])
    assert not bool((triples[:, 0] == triples[:, 2]).any())


def test_synthetic_structure():
    spec = small_spec(
        modalities={
            "text": SyntheticModality(factors=4, dim=10, missing=0.3),
            "noise": SyntheticModality(factors=0, dim=6, missing=0.0),
        }
    )
    kg = generate(spec)
    assert set(kg.modalities) == {"text", "noise"}
    assert kg.modalities["text"].features.shape == (300, 10)
    assert 0.55 < kg.modalities["text"].coverage < 0.85
    assert kg.modalities["noise"].coverage == 1.0
    assert len(kg.train) > 5 * len(kg.test) > 0
    # every valid/test entity also occurs in train
    seen = set(kg.train[:, 0].tolist()) | set(kg.train[:, 2].tolist())
    assert set(kg.test[:, [0, 2]].reshape(-1).tolist()) <= seen
    assert (kg.train[:, 0] != kg.train[:, 2]).all()


def test_modalities_filter():
    kg = load_dataset(DatasetConfig(synthetic=small_spec(), modalities=["visual"]))
    assert list(kg.modalities) == ["visual"]
    assert load_dataset(DatasetConfig(synthetic=small_spec(), modalities=[])).modalities == {}
    with pytest.raises(MocmeError, match="no modality 'audio'"):
        load_dataset(DatasetConfig(synthetic=small_spec(), modalities=["audio"]))


def test_a_left_out_modality_needs_no_feature_file(tmp_path):
    directory = save_layout(generate(small_spec()), tmp_path / "graph")
    missing = {"text": FeatureFile(path=tmp_path / "absent.safetensors")}
    assert load_dataset(DatasetConfig(name=str(directory), features=missing, modalities=[])).modalities == {}
    with pytest.raises(MocmeError, match=r"absent\.safetensors: file not found"):
        load_dataset(DatasetConfig(name=str(directory), features=missing))


def test_readable_names():
    assert readable_name("<http://dbpedia.org/resource/Rock_music>") == "Rock music"
    assert readable_name("<http://dbpedia.org/resource/Caf%C3%A9>") == "Café"
    assert readable_name("Gilles_Mbang_Ondo") == "Gilles Mbang Ondo"


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(MocmeError, match="neither a known dataset"):
        load_dataset("no-such-thing")
    with pytest.raises(MocmeError, match="not found"):
        load_benchmark("UMLS", tmp_path)


@pytest.mark.data
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmarks_load_with_published_sizes(data_dir, name):
    kg = load_benchmark(name, data_dir)
    sizes = (kg.num_entities, kg.num_relations, len(kg.train), len(kg.valid), len(kg.test))
    assert sizes == BENCHMARKS[name].sizes
    if name != "MKG-W":
        assert kg.entity_text is not None and all(t for t in kg.entity_text)


def test_held_out_lines_that_are_training_triples_or_repeats_are_dropped():
    kg = generate(small_spec())
    train, valid = kg.train, kg.valid
    kg.valid = torch.cat([valid, train[:5], valid[:3], train[:1]])  # 5 + 1 training triples, 3 repeats
    redundant = kg.redundant_held_out("valid")
    assert redundant.tolist() == [False] * len(valid) + [True] * 9
    clean, dropped = kg.without_redundant_held_out()
    assert dropped == {"valid": 9, "test": 0}
    assert torch.equal(clean.valid, valid) and torch.equal(clean.test, kg.test) and torch.equal(clean.train, kg.train)
    again, none = clean.without_redundant_held_out()
    assert again is clean and none == {"valid": 0, "test": 0}


@pytest.mark.data
def test_db15k_validation_keeps_its_897_new_triples(data_dir):
    with pytest.warns(UserWarning, match="dropped 9007 of 9904 valid lines"):
        kg = load_dataset(DatasetConfig(name="DB15K", data_dir=data_dir))
    assert (len(kg.valid), len(kg.test)) == (897, 9902)
    released = load_dataset(DatasetConfig(name="DB15K", data_dir=data_dir, held_out="as_released"))
    assert len(released.valid) == 9904


def test_a_modality_zeroes_its_masked_rows_without_touching_the_callers_tensor():
    from mocme.data.kg import Modality

    given = torch.tensor([[1.0, 2.0], [float("nan"), 3.0], [4.0, 5.0]])
    modality = Modality("text", given, torch.tensor([True, False, True]))
    assert modality.features.tolist() == [[1.0, 2.0], [0.0, 0.0], [4.0, 5.0]]
    assert given[1, 1] == 3.0 and given[1, 0].isnan()  # the caller's rows as they were
