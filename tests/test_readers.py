"""Readers: the formats the field uses, and one-line errors naming file and line."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mocme.data import Vocabulary
from mocme.data.readers import (
    read_entity_text,
    read_features,
    read_name_triples,
    read_new_entity_text,
    read_openke_triples,
    read_openke_vocabulary,
    triples_to_ids,
)
from mocme.errors import DataError


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_openke_vocabulary_splits_on_last_whitespace(tmp_path):
    path = write(tmp_path / "entity2id.txt", "3\nNew York 1\nParis\t0\n<http://x/A_b> 2\n")
    vocab = read_openke_vocabulary(path)
    assert vocab.names == ["Paris", "New York", "<http://x/A_b>"]


def test_openke_triples_are_reordered_to_hrt(tmp_path):
    path = write(tmp_path / "train2id.txt", "2\n0 1 2\n1 0 0\n")
    triples = read_openke_triples(path, num_entities=2, num_relations=3)
    assert triples.tolist() == [[0, 2, 1], [1, 0, 0]]


def test_gzip_bom_and_crlf_are_accepted(tmp_path):
    (tmp_path / "train2id.txt.gz").write_bytes(gzip.compress("\ufeff1\r\n0 1 0\r\n".encode()))
    triples = read_openke_triples(tmp_path / "train2id.txt", 2, 1)
    assert triples.tolist() == [[0, 0, 1]]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("3\n0 1 0\n1 0 0\n", 1, "count line says 3"),
        ("2\n0 1 0\n1 0\n", 3, "expected 3 columns"),
        ("2\n0 1 0\n\n1 0 0\n", 3, "empty line"),
        ("1\n0 x 0\n", 2, "integers"),
        ("1\n0 5 0\n", 2, "entity id 5 out of range"),
        ("1\n0 1 -1\n", 2, "relation id -1 out of range"),
        ("", None, "empty"),
    ],
)
def test_openke_triple_errors_name_the_line(tmp_path, text, line, fragment):
    path = write(tmp_path / "t.txt", text)
    with pytest.raises(DataError) as info:
        read_openke_triples(path, 2, 1)
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("2\na 0\na 1\n", 3, "duplicate name"),
        ("2\na 0\nb 0\n", 3, "id 0 appears twice"),
        ("2\na 0\nb 2\n", 3, "out of range"),
        ("2\na 0\nb\n", 3, "expected 'name<whitespace>id'"),
        ("x\na 0\n", 1, "number of entries"),
    ],
)
def test_openke_vocabulary_errors(tmp_path, text, line, fragment):
    path = write(tmp_path / "entity2id.txt", text)
    with pytest.raises(DataError) as info:
        read_openke_vocabulary(path)
    assert info.value.line == line
    assert fragment in str(info.value)


def test_non_utf8_is_an_error_with_its_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"a\tr\tb\nc\tr\t\xff\n")
    with pytest.raises(DataError, match="UTF-8") as info:
        read_name_triples(path)
    assert info.value.line == 2


def test_name_triples_and_unknown_names(tmp_path):
    path, named = read_name_triples(write(tmp_path / "train.tsv", "a\tr\tb\nb\tr\tc\n"))
    entities, relations = Vocabulary(["a", "b"]), Vocabulary(["r"])
    with pytest.raises(DataError, match="unknown entity 'c'") as info:
        triples_to_ids(path, named, entities, relations)
    assert info.value.line == 2
    with pytest.raises(DataError, match="3 tab-separated columns"):
        read_name_triples(write(tmp_path / "bad.tsv", "a r b\n"))


def test_entity_text(tmp_path):
    vocab = Vocabulary(["a", "b", "c"])
    path = write(tmp_path / "entity2text.txt", "b\tthe letter b\nz\tunknown\na\tA, first letter\n")
    assert read_entity_text(path, vocab, strict=False) == ["A, first letter", "the letter b", None]
    with pytest.raises(DataError, match="unknown entity 'z'"):
        read_entity_text(path, vocab, strict=True)
    with pytest.raises(DataError, match="listed twice"):
        read_entity_text(write(tmp_path / "dup.txt", "a\tx\na\ty\n"), vocab)


def test_entities_of_a_graph_and_entities_added_later_read_the_same_text(tmp_path):
    """Both ``name<TAB>text`` readers normalise alike, so an entity's features do not depend on which read it."""
    path = write(tmp_path / "entity2text.txt", "a\t  two   spaces\tand a tab \nb\t   \nc\tplain\n")
    of_graph = read_entity_text(path, Vocabulary(["a", "b", "c"]))
    added = [text for _, text, _ in read_new_entity_text(path)]
    assert of_graph == added == ["two spaces and a tab", None, "plain"]  # an empty text is no text


@pytest.mark.parametrize("suffix", [".safetensors", ".npy", ".pt"])
def test_feature_formats_round_trip(tmp_path, suffix):
    features = torch.randn(5, 3)
    mask = torch.tensor([True, False, True, True, False])
    path = tmp_path / f"text{suffix}"
    if suffix == ".safetensors":
        save_file({"features": features, "mask": mask}, str(path))
        modality = read_features(path, 5)
    elif suffix == ".pt":
        torch.save({"features": features.double(), "mask": mask.int()}, path)
        modality = read_features(path, 5)
    else:
        np.save(path, features.numpy())
        np.save(tmp_path / "mask.npy", mask.numpy())
        modality = read_features(path, 5, mask_path=tmp_path / "mask.npy")
    assert modality.name == "text"
    assert modality.features.dtype == torch.float32
    assert torch.equal(modality.mask, mask)
    assert torch.allclose(modality.features[mask], features[mask])
    assert (modality.features[~mask] == 0).all()


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: np.save(p, np.ones((4, 3), dtype=np.float32)), "has 4 rows, expected 5"),
        (lambda p: np.save(p, np.ones((5, 3), dtype=np.int64)), "floating point"),
        (lambda p: np.save(p, np.ones(5, dtype=np.float32)), "2-D"),
        (
            lambda p: np.save(p, np.array([[1.0], [np.nan], [1], [1], [1]], dtype=np.float32)),
            "row 1 (entity 1) contains a NaN",
        ),
        (lambda p: np.save(p, np.array([[1.0], [1], [np.inf], [1], [1]], dtype=np.float32)), "infinite"),
        (lambda p: p.write_bytes(b"\x93NUMPY garbage"), "cannot read .npy"),
    ],
)
def test_feature_errors(tmp_path, make, fragment):
    path = tmp_path / "f.npy"
    make(path)
    with pytest.raises(DataError, match=None) as info:
        read_features(path, 5)
    assert fragment in str(info.value)


def test_nan_in_masked_out_rows_is_fine(tmp_path):
    features = torch.ones(3, 2)
    features[1] = float("nan")
    save_file({"features": features, "mask": torch.tensor([True, False, True])}, str(tmp_path / "v.safetensors"))
    modality = read_features(tmp_path / "v.safetensors", 3)
    assert torch.isfinite(modality.features).all()


def test_truncated_safetensors_is_a_data_error(tmp_path):
    path = tmp_path / "v.safetensors"
    save_file({"features": torch.ones(5, 8)}, str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"cannot read \.safetensors"):
        read_features(path, 5)


def test_mask_shape_and_values(tmp_path):
    save_file({"features": torch.ones(3, 2), "mask": torch.tensor([1, 2, 0])}, str(tmp_path / "a.safetensors"))
    with pytest.raises(DataError, match="boolean"):
        read_features(tmp_path / "a.safetensors", 3)
    save_file({"features": torch.ones(3, 2), "mask": torch.ones(2, dtype=torch.bool)}, str(tmp_path / "b.safetensors"))
    with pytest.raises(DataError, match=r"mask must have shape \(3,\)"):
        read_features(tmp_path / "b.safetensors", 3)


@pytest.mark.parametrize("token", ["1_0", "１", "٣"])
def test_ids_that_numpy_would_misread_are_refused_with_their_line(tmp_path, token):
    from mocme.data.readers import read_id_triples

    path = tmp_path / "train.txt"
    path.write_text(f"0\t1\t0\n{token}\t0\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.txt:2: ids must be integers"):
        read_id_triples(path, 20, 5, "hrt", count_line=False)
