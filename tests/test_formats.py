"""The format registry: each example folder loads to its OpenKE twin; column order detection."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mocme.data.columns import detect_columns, reorder
from mocme.data.formats import FORMATS, detect_format, load_folder
from mocme.data.loading import DatasetConfig, load_dataset
from mocme.errors import MocmeError

EXAMPLES = Path(__file__).resolve().parent / "data" / "formats"
ROWS = [("a", "r1", "b"), ("b", "r2", "c"), ("c", "r1", "a")]


def test_every_format_has_an_example_folder():
    assert sorted(p.name for p in EXAMPLES.iterdir()) == sorted(FORMATS)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_example_loads_to_its_openke_twin(name):
    twin, _ = load_folder(EXAMPLES / "openke")
    kg, fmt = load_folder(EXAMPLES / name)
    assert fmt.name == name
    assert list(kg.entities) == list(twin.entities) and list(kg.relations) == list(twin.relations)
    for split in ("train", "valid", "test"):
        assert torch.equal(kg.split(split), twin.split(split)), split


@pytest.mark.parametrize("order", ["hrt", "htr", "rht"])
def test_column_order_is_detected(order):
    rows = [tuple({"h": h, "r": r, "t": t}[c] for c in order) for h, r, t in ROWS]
    assert detect_columns(Path("x"), [rows]) == order
    assert reorder(rows, order) == ROWS


def test_ambiguous_columns_ask_for_the_option(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text("a\tb\tc\n")
    with pytest.raises(MocmeError, match="give --columns hrt, htr or rht"):
        load_folder(tmp_path)
    kg = load_dataset(DatasetConfig(name=str(tmp_path), columns="htr", held_out="as_released"))
    assert kg.relations.name(int(kg.train[0, 1])) == "c"


def test_shipped_features_are_aligned_by_entity2id_name(tmp_path):
    folder = tmp_path / "kb2e"
    folder.mkdir()
    for file in (EXAMPLES / "kb2e").iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    names = [line.split("\t")[0] for line in (folder / "entity2id.txt").read_text().splitlines()]
    ids = list(reversed(range(len(names))))  # row i of the features is the entity with id i in entity2id.txt
    (folder / "entity2id.txt").write_text("".join(f"{n}\t{i}\n" for n, i in zip(names, ids, strict=True)))
    rows = torch.arange(1, len(names) + 1, dtype=torch.float32).unsqueeze(1).repeat(1, 4)
    torch.save(rows, folder / "img_features.pth")
    kg, _ = load_folder(folder)
    visual = kg.modalities["visual"]
    assert bool(visual.mask.all())
    for name, row in zip(names, ids, strict=True):
        assert torch.equal(visual.features[kg.entities.id(name)], rows[row])


def test_no_format_is_a_one_line_error(tmp_path):
    with pytest.raises(MocmeError, match="no dataset found"):
        detect_format(tmp_path)


def test_a_graph_without_its_validation_split_says_so(tmp_path):
    (tmp_path / "train.tsv").write_text("a\tr\tb\n")
    (tmp_path / "test.tsv").write_text("b\tr\ta\n")
    with pytest.raises(MocmeError, match=r"train.tsv but no valid.tsv \(or dev.tsv\)"):
        detect_format(tmp_path)


def test_the_projects_layout_is_named_by_its_dataset_yaml_other_layouts_by_their_folder(tmp_path):
    from mocme.data import save_layout

    kg, _ = load_folder(EXAMPLES / "openke")
    assert kg.name == "openke"
    save_layout(dataclasses.replace(kg, name="Foo"), tmp_path / "bar")
    assert load_dataset(DatasetConfig(name=str(tmp_path / "bar"))).name == "Foo"
    (tmp_path / "bar" / "dataset.yaml").unlink()
    assert load_dataset(DatasetConfig(name=str(tmp_path / "bar"))).name == "bar"


def _copy(source: Path, to: Path) -> Path:
    to.mkdir()
    for file in source.iterdir():
        (to / file.name).write_bytes(file.read_bytes())
    return to


def test_kgbert_and_mygo_folders_with_an_entities_txt_are_not_taken_for_the_projects_layout(tmp_path):
    twin, _ = load_folder(EXAMPLES / "openke")
    kgbert = _copy(EXAMPLES / "kg-bert", tmp_path / "kg-bert")  # kg-bert's data/umls ships these two lists
    (kgbert / "entities.txt").write_text("".join(f"{n}\n" for n in twin.entities))
    (kgbert / "relations.txt").write_text("".join(f"{n}\n" for n in twin.relations))
    kg, fmt = load_folder(kgbert)
    assert fmt.name == "kg-bert" and torch.equal(kg.train, load_folder(EXAMPLES / "kg-bert")[0].train)

    # MyGO's DB15K: entities.txt and relations.txt (one name per line, in id order) beside id triples
    mygo = _copy(EXAMPLES / "mygo", tmp_path / "mygo")
    (mygo / "entity2id.txt").rename(mygo / "entities.txt")
    (mygo / "relation2id.txt").rename(mygo / "relations.txt")
    (mygo / "entities.txt").write_text("".join(f"{n}\n" for n in twin.entities))
    (mygo / "relations.txt").write_text("".join(f"{n}\n" for n in twin.relations))
    kg, fmt = load_folder(mygo)
    assert (
        fmt.name == "mygo" and list(kg.entities) == list(twin.entities) and list(kg.relations) == list(twin.relations)
    )
    for split in ("train", "valid", "test"):
        assert torch.equal(kg.split(split), twin.split(split)), split
    # MyGO's MKG-Y: no relation list at all; the relations are their ids
    (mygo / "relations.txt").unlink()
    kg, _ = load_folder(mygo)
    assert list(kg.relations) == [str(i) for i in range(len(twin.relations))]
    assert torch.equal(kg.train, twin.train)


def test_libkge_file_names_are_read_from_the_flattened_keys_libkge_writes(tmp_path):
    folder = _copy(EXAMPLES / "libkge", tmp_path / "libkge")
    (folder / "test_filtered.del").write_text((folder / "test.del").read_text().splitlines()[0] + "\n")
    (folder / "dataset.yaml").write_text(
        "dataset:\n  name: people\n  files.test.filename: test_filtered.del\n  files.test.type: triples\n"
    )
    kg, _ = load_folder(folder)
    assert len(kg.test) == 1 and len(load_folder(EXAMPLES / "libkge")[0].test) > 1


def test_a_pykeen_header_gives_the_column_order_and_a_data_row_of_header_words_is_kept(tmp_path):
    folder = tmp_path / "pykeen"
    folder.mkdir()
    rows = [("Alice", "knows", "Bob"), ("Bob", "likes", "Carol")]
    for split in ("train", "valid", "test"):
        lines = "".join(f"{h}\t{t}\t{r}\n" for h, r, t in rows)
        (folder / f"{split}.tsv").write_text("head\ttail\trelation\n" + lines)
    kg, _ = load_folder(folder)
    assert list(kg.relations) == ["knows", "likes"] and kg.entities.name(int(kg.train[0, 2])) == "Bob"
    (folder / "train.tsv").write_text("source\th\ttarget\n" + "".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows))
    for split in ("valid", "test"):
        (folder / f"{split}.tsv").write_text("".join(f"{h}\t{r}\t{t}\n" for h, r, t in rows))
    kg, _ = load_folder(folder)
    assert len(kg.train) == 3 and "h" in list(kg.relations)  # two heads named: data, not a header


def test_a_bipartite_graph_with_an_entity_named_like_a_relation_asks_for_the_columns():
    """Users -> items in 'h t r' order, one item called 'views': the user column is disjoint from the
    others, but it is not the relations (it has more distinct values), so detection asks."""
    users, items = [f"user{i}" for i in range(5)], ["book", "film", "views", "song"]
    rows = [(u, items[(i + j) % 4], ("buys", "views")[j % 2]) for i, u in enumerate(users) for j in range(3)]
    with pytest.raises(MocmeError, match="give --columns"):
        detect_columns(Path("x"), [rows])


def test_one_file_of_triples_is_cut_into_seeded_transductive_splits(tmp_path, capsys):
    import random

    from mocme.cli import main
    from mocme.data.splitting import split_triples

    rng = random.Random(0)
    triples = [(f"e{rng.randrange(40)}", f"r{rng.randrange(3)}", f"e{rng.randrange(40)}") for _ in range(400)]
    train, valid, test = split_triples(triples, 0.1, 0.1, seed=1)
    distinct = list(dict.fromkeys(triples))
    assert sorted(train + valid + test) == sorted(distinct) and len(valid) == len(test) == round(0.1 * len(distinct))
    seen = {x for h, r, t in train for x in (h, r, t)}
    assert all(h in seen and r in seen and t in seen for h, r, t in valid + test)
    assert split_triples(triples, 0.1, 0.1, seed=1) == (train, valid, test)
    assert split_triples(triples, 0.1, 0.1, seed=2) != (train, valid, test)
    with pytest.raises(MocmeError, match="cannot hold out"):
        split_triples([("a", "r", "b"), ("b", "r", "c")], 0.0, 0.5)

    source = tmp_path / "all.tsv"
    source.write_text("head\trelation\ttail\n" + "".join(f"{h}\t{r}\t{t}\n" for h, r, t in triples))
    assert main(["split", str(source), str(tmp_path / "graph"), "--seed", "1"]) == 0
    assert "train" in capsys.readouterr().out
    kg, _ = load_folder(tmp_path / "graph")
    assert (len(kg.train), len(kg.valid), len(kg.test)) == (len(train), len(valid), len(test))
    assert main(["split", str(source), str(tmp_path / "graph")]) == 2  # no overwrite without --overwrite
    assert "already has split files" in capsys.readouterr().err
    source.write_text("head\ttail\trelation\n" + "".join(f"{h}\t{t}\t{r}\n" for h, r, t in triples))
    assert main(["split", str(source), str(tmp_path / "other"), "--seed", "1"]) == 0  # the header's order
    assert load_folder(tmp_path / "other")[0].relations == kg.relations
