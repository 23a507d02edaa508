"""Fuzzing every reader and the config parser.

The property: any byte string either loads into a valid dataset (or config) or raises the project's
own :class:`~mocme.errors.MocmeError`, never another exception. Each target gets arbitrary bytes
plus structure-aware inputs (token soup close to the format, and mutations of a valid file), so that
both the error paths and the success paths are exercised. Whatever loads is checked for the
invariants the rest of the library relies on, and whole datasets must survive a round trip through
the project's own layout.

Examples per target: ``MOCME_FUZZ_EXAMPLES`` (default 200; set it high for a long session).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as save_safetensors

from mocme.config import RunConfig, dump_config, load_config, validate_config
from mocme.data.kg import SPLITS, Modality, MultiModalKG
from mocme.data.layout import load_layout, save_layout
from mocme.data.loading import DatasetConfig, load_dataset
from mocme.data.readers import (
    read_entity_text,
    read_features,
    read_name_list,
    read_name_triples,
    read_openke_triples,
    read_openke_vocabulary,
)
from mocme.data.vocab import Vocabulary
from mocme.errors import MocmeError
from mocme.io import read_text

EXAMPLES = int(os.environ.get("MOCME_FUZZ_EXAMPLES", "200"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def loads_or_refuses(load: Callable[[], Any]) -> Any | None:
    """``load()``'s result, or ``None`` when it raised a :class:`MocmeError`; anything else propagates."""
    try:
        result = load()
    except MocmeError as err:
        event("refused", type(err).__name__)
        return None
    event("loaded")
    return result


# -- input strategies ------------------------------------------------------------------------------
TOKENS = (
    *("0", "1", "2", "3", "4", "-1", "10", "007", "+1", "1.5", "1e3", "99999999999999999999", "١"),
    *("a", "b", "c", "e0", "e1", "r0", "New York", "é", "名", "<http://x/A_b>", "#"),
    *(" ", "  ", "\t", "\t", "\n", "\n", "\r", "\r\n", "\ufeff", "\x00", "\x0b", "\x1c", "\x85", "\u2028"),
)
soup = st.lists(st.sampled_from(TOKENS) | st.text(max_size=2), max_size=40).map("".join)
YAML_TOKENS = (
    *("name: ", "seed: ", "training:", "model:", "dataset:", "\n  ", "\n", ": ", "- ", "[", "]", "{", "}", ", "),
    *("!!int ", "!!float ", "!!binary ", "!!timestamp ", "!!set ", "!!python/name:os.system ", "&a ", "*a", "? "),
    *("2001-13-45", "2001-01-01 25:00:00", ".nan", ".inf", "1e999", "0x1F", "~", "'", '"', "#", "\t", "|", ">"),
)
yaml_soup = st.lists(st.sampled_from(YAML_TOKENS) | st.text(max_size=2), max_size=40).map("".join)
names = st.sampled_from(("a", "b", "c", "e 1", "名", "x\ty", "\ufeffz", " ", "")) | st.text(max_size=4)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` truncated, with bytes flipped, inserted or deleted, or unchanged."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(("truncate", "flip", "insert", "delete", "keep")))
        at = draw(st.integers(0, len(data)))
        if action == "truncate":
            del data[at:]
        elif action == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def encoded(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Text as UTF-8, sometimes with a BOM, CRLF line ends, or broken bytes."""
    plain = text.map(lambda s: s.encode("utf-8", "surrogatepass"))
    with_bom = plain.map(lambda b: b"\xef\xbb\xbf" + b)
    crlf = plain.map(lambda b: b.replace(b"\n", b"\r\n"))
    return st.one_of(plain, with_bom, crlf, plain.flatmap(mutated))


@st.composite
def openke_vocabulary_text(draw: st.DrawFn) -> str:
    entries = draw(st.lists(names, max_size=6))
    ids = draw(st.permutations(range(len(entries))))
    ids = [draw(st.sampled_from((i, i, i, i - 1, i + 1, -i))) for i in ids]
    count = len(entries) + draw(st.sampled_from((0, 0, 0, 1, -1)))
    sep = draw(st.sampled_from((" ", "\t", "  ")))
    return f"{count}\n" + "".join(f"{n}{sep}{i}\n" for n, i in zip(entries, ids, strict=True))


@st.composite
def openke_triples_text(draw: st.DrawFn) -> str:
    ids = st.integers(-1, 4) | st.sampled_from(("x", "", "2 2", "99999999999999999999"))
    rows = draw(st.lists(st.tuples(ids, ids, ids), max_size=6))
    count = len(rows) + draw(st.sampled_from((0, 0, 0, 1, -1)))
    sep = draw(st.sampled_from((" ", "\t")))
    return f"{count}\n" + "".join(sep.join(map(str, row)) + "\n" for row in rows)


@st.composite
def name_triples_text(draw: st.DrawFn) -> str:
    rows = draw(st.lists(st.tuples(names, names, names), max_size=6))
    return "".join("\t".join(row) + "\n" for row in rows)


@st.composite
def entity_text_text(draw: st.DrawFn) -> str:
    rows = draw(st.lists(st.tuples(names, st.sampled_from(("\t", " ", "\t\t", ""))), max_size=6))
    return "".join(f"{name}{sep}{draw(st.text(max_size=6))}\n" for name, sep in rows)


def text_inputs(structured: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=200), encoded(soup), encoded(structured))


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return path


# -- invariants of whatever loads -------------------------------------------------------------------
def check_vocabulary(vocab: Vocabulary) -> None:
    assert len(set(vocab.names)) == len(vocab.names)
    for name in vocab:
        assert isinstance(name, str) and name and name == name.strip() and "\n" not in name


def check_triples(triples: torch.Tensor, num_entities: int, num_relations: int) -> None:
    assert triples.dtype == torch.long and triples.ndim == 2 and triples.shape[1] == 3
    if len(triples):
        assert int(triples[:, [0, 2]].min()) >= 0 and int(triples[:, [0, 2]].max()) < num_entities
        assert int(triples[:, 1].min()) >= 0 and int(triples[:, 1].max()) < num_relations


def check_modality(modality: Modality, num_entities: int) -> None:
    assert modality.features.dtype == torch.float32 and modality.features.ndim == 2
    assert modality.features.shape[0] == num_entities and modality.features.shape[1] >= 1
    assert modality.mask.dtype == torch.bool and modality.mask.shape == (num_entities,)
    assert torch.isfinite(modality.features[modality.mask]).all()
    assert (modality.features[~modality.mask] == 0).all()


def check_kg(kg: MultiModalKG) -> None:
    check_vocabulary(kg.entities)
    check_vocabulary(kg.relations)
    for split in SPLITS:
        check_triples(kg.split(split), kg.num_entities, kg.num_relations)
    assert len(kg.train) > 0
    for modality in kg.modalities.values():
        check_modality(modality, kg.num_entities)
    if kg.entity_text is not None:
        assert len(kg.entity_text) == kg.num_entities


def check_round_trip(kg: MultiModalKG, directory: Path) -> None:
    """Saving in the project's layout and loading again gives the same graph (or refuses cleanly)."""
    saved = loads_or_refuses(lambda: save_layout(kg, directory / "converted"))
    if saved is None:
        assert not (directory / "converted").exists()
        return
    again = load_layout(saved)
    assert again.entities == kg.entities and again.relations == kg.relations
    for split in SPLITS:
        assert torch.equal(again.split(split), kg.split(split))
    assert set(again.modalities) == set(kg.modalities)
    for name, modality in kg.modalities.items():
        assert torch.equal(again.modalities[name].features, modality.features)
        assert torch.equal(again.modalities[name].mask, modality.mask)
    texts = [" ".join(t.split()) or None if t else None for t in (kg.entity_text or [])]
    assert (again.entity_text or []) == texts


# -- text readers ------------------------------------------------------------------------------------
@fuzz
@given(data=st.binary(max_size=300) | encoded(soup), gz=st.booleans())
def test_read_text(data, gz):
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "f.txt.gz" if gz else "f.txt", data)
        if gz and data:
            path.write_bytes(data)  # raw bytes under a .gz name: mostly not gzip at all
        result = loads_or_refuses(lambda: read_text(path))
        if result is not None and not gz:
            expected = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
            assert result[1] == expected


@fuzz
@given(data=text_inputs(openke_vocabulary_text()))
def test_read_openke_vocabulary(data):
    with tempfile.TemporaryDirectory() as tmp:
        vocab = loads_or_refuses(lambda: read_openke_vocabulary(write(Path(tmp), "entity2id.txt", data)))
        if vocab is not None:
            check_vocabulary(vocab)


@fuzz
@given(data=text_inputs(openke_triples_text()))
def test_read_openke_triples(data):
    with tempfile.TemporaryDirectory() as tmp:
        triples = loads_or_refuses(lambda: read_openke_triples(write(Path(tmp), "train2id.txt", data), 4, 3))
        if triples is not None:
            check_triples(triples, 4, 3)


@fuzz
@given(data=text_inputs(name_triples_text()))
def test_read_name_triples(data):
    with tempfile.TemporaryDirectory() as tmp:
        result = loads_or_refuses(lambda: read_name_triples(write(Path(tmp), "train.tsv", data)))
        if result is not None:
            for triple in result[1]:
                assert len(triple) == 3 and all(n and n == n.strip() and "\t" not in n for n in triple)


@fuzz
@given(data=text_inputs(soup))
def test_read_name_list(data):
    with tempfile.TemporaryDirectory() as tmp:
        vocab = loads_or_refuses(lambda: read_name_list(write(Path(tmp), "entities.txt", data)))
        if vocab is not None:
            check_vocabulary(vocab)


@fuzz
@given(data=text_inputs(entity_text_text()), strict=st.booleans())
def test_read_entity_text(data, strict):
    vocab = Vocabulary(["a", "b", "c", "e 1", "名"])
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "entity2text.txt", data)
        texts = loads_or_refuses(lambda: read_entity_text(path, vocab, strict=strict))
        if texts is not None:
            assert len(texts) == len(vocab)
            assert all(t is None or (isinstance(t, str) and "\n" not in t) for t in texts)


# -- feature files -----------------------------------------------------------------------------------
N = 5
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool", "complex64", ">f4", "<f8")
SHAPES = ((N, 3), (N, 1), (N - 1, 3), (N + 1, 3), (N,), (N, 3, 1), (0, 3), (N, 0), ())


@st.composite
def arrays(draw: st.DrawFn, shapes=SHAPES) -> np.ndarray | torch.Tensor:
    """A small array of a random dtype and shape, sometimes with NaN or inf in it."""
    shape = draw(st.sampled_from(shapes))
    dtype = draw(st.sampled_from(DTYPES))
    size = int(np.prod(shape))
    entries = draw(st.lists(st.sampled_from((0.0, 1.0, -2.5, 3.0)), min_size=size, max_size=size))
    values = np.array(entries, dtype=np.float64).reshape(shape)
    if values.size and draw(st.booleans()):
        values.reshape(-1)[draw(st.integers(0, values.size - 1))] = draw(
            st.sampled_from((math.nan, math.inf, -math.inf))
        )
    if dtype == "bfloat16":
        return torch.from_numpy(values).to(torch.bfloat16)
    with np.errstate(invalid="ignore", over="ignore"):
        return values.astype(np.dtype(dtype))


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray | torch.Tensor:
    kind = draw(st.sampled_from(("bool", "int", "float", "shape", "values")))
    bits = np.array(draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    if kind == "bool":
        return bits
    if kind == "int":
        return bits.astype(draw(st.sampled_from(("int64", "uint8", ">i4"))))
    if kind == "float":
        return bits.astype(np.float32)
    if kind == "shape":
        return np.ones(draw(st.sampled_from(((N - 1,), (N, 1), ()))), dtype=bool)
    return bits.astype(np.int64) * draw(st.sampled_from((2, -1)))


def to_torch(value: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.from_numpy(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("=")))


def feature_bytes(suffix: str, features, mask) -> dict[str, bytes]:
    """File name -> bytes of a feature file (and a separate mask file for ``.npy``)."""
    if suffix == ".npy":
        files = {}
        for name, value in (("f.npy", features), ("mask.npy", mask)):
            if value is not None:
                buffer = io.BytesIO()
                np.save(buffer, value.float().numpy() if isinstance(value, torch.Tensor) else value)
                files[name] = buffer.getvalue()
        return files
    tensors = (
        {"features": to_torch(features)} if mask is None else {"features": to_torch(features), "mask": to_torch(mask)}
    )
    if suffix == ".safetensors":
        try:
            return {"f.safetensors": save_safetensors({k: v.contiguous() for k, v in tensors.items()})}
        except Exception:  # dtypes safetensors cannot store (complex): store a plain float file instead
            return {"f.safetensors": save_safetensors({"features": torch.ones(N, 2)})}
    buffer = io.BytesIO()
    torch.save(tensors if mask is not None or len(tensors) > 1 else tensors["features"], buffer)
    return {"f.pt": buffer.getvalue()}


VALID_FEATURES = {
    suffix: feature_bytes(suffix, torch.randn(N, 3), np.array([1, 0, 1, 1, 0], dtype=bool))
    for suffix in (".safetensors", ".npy", ".pt")
}


@st.composite
def feature_files(draw: st.DrawFn) -> dict[str, bytes]:
    suffix = draw(st.sampled_from((".safetensors", ".npy", ".pt")))
    how = draw(st.sampled_from(("arrays", "arrays", "mutated", "raw")))
    if how == "arrays":
        return feature_bytes(suffix, draw(arrays()), draw(st.none() | masks()))
    if how == "mutated":
        files = dict(VALID_FEATURES[suffix])
        name = draw(st.sampled_from(sorted(files)))
        files[name] = draw(mutated(files[name]))
        return files
    return {f"f{suffix}": draw(st.binary(max_size=400))}


def check_features(files: dict[str, bytes], tmp: Path) -> Modality | None:
    paths = {name: write(tmp, name, data) for name, data in files.items()}
    main = next(p for name, p in paths.items() if name.startswith("f."))
    modality = loads_or_refuses(lambda: read_features(main, N, name="f", mask_path=paths.get("mask.npy")))
    if modality is not None:
        check_modality(modality, N)
    return modality


@fuzz
@given(files=feature_files())
def test_read_features(files):
    with tempfile.TemporaryDirectory() as tmp:
        check_features(files, Path(tmp))


@fuzz
@given(
    obj=st.recursive(
        st.none() | st.integers() | st.floats() | st.text(max_size=3) | arrays().map(to_torch),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=3)
        ),
        max_leaves=6,
    )
)
def test_read_features_from_any_pickled_object(obj):
    """``.pt`` files may hold any object ``torch.save`` writes; only tensors (or a features dict) load."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with tempfile.TemporaryDirectory() as tmp:
        check_features({"f.pt": buffer.getvalue()}, Path(tmp))


# -- whole datasets ------------------------------------------------------------------------------------
def layout_files() -> dict[str, bytes]:
    files = {
        "entities.txt": "a\nb\nc\nd\ne\n",
        "relations.txt": "r\ns\n",
        "train.tsv": "a\tr\tb\nb\ts\tc\nc\tr\td\n",
        "valid.tsv": "a\ts\tc\n",
        "test.tsv": "d\tr\te\n",
        "entity_text.tsv": "a\tthe letter a\nc\tsee\n",
        "dataset.yaml": "name: tiny\ndescription: fuzz\n",
    }
    out = {name: text.encode() for name, text in files.items()}
    out["features/text.safetensors"] = VALID_FEATURES[".safetensors"]["f.safetensors"]
    return out


def openke_files() -> dict[str, bytes]:
    files = {
        "entity2id.txt": "5\na 0\nb 1\nNew York\t2\nd 3\ne 4\n",
        "relation2id.txt": "2\nr 0\ns 1\n",
        "train2id.txt": "3\n0 1 0\n1 2 1\n2 3 0\n",
        "valid2id.txt": "1\n0 2 1\n",
        "test2id.txt": "1\n3 4 0\n",
    }
    return {name: text.encode() for name, text in files.items()}


def kgbert_files() -> dict[str, bytes]:
    files = {"train.tsv": "a\tr\tb\nb\ts\tc\n", "dev.tsv": "a\ts\tc\n", "test.tsv": "c\tr\td\n"}
    return {name: text.encode() for name, text in files.items()}


FORMATS = {"layout": layout_files(), "openke": openke_files(), "kg-bert": kgbert_files()}
STRUCTURED = {
    ".txt": soup,
    "2id.txt": openke_triples_text(),
    "entity2id.txt": openke_vocabulary_text(),
    "relation2id.txt": openke_vocabulary_text(),
    ".tsv": name_triples_text(),
    "entity_text.tsv": entity_text_text(),
    ".yaml": yaml_soup,
}


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, bytes]:
    """A valid small dataset in one of the three formats with one file replaced by fuzz."""
    files = dict(FORMATS[draw(st.sampled_from(sorted(FORMATS)))])
    name = draw(st.sampled_from(sorted(files)))
    if name.endswith(".safetensors"):
        files[name] = draw(mutated(files[name]))
        return files
    structured = next(
        s for suffix, s in sorted(STRUCTURED.items(), key=lambda kv: -len(kv[0])) if name.endswith(suffix)
    )
    files[name] = draw(st.one_of(mutated(files[name]), encoded(structured), st.binary(max_size=100)))
    if draw(st.booleans()):
        files[name + ".gz"] = files.pop(name)
    return files


@fuzz
@given(files=datasets())
def test_load_dataset_directory(files):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for name, data in files.items():
            write(root, name, data)
        kg = loads_or_refuses(lambda: load_dataset(DatasetConfig(name=str(root))))
        if kg is not None:
            check_kg(kg)
            check_round_trip(kg, Path(tmp))


# -- the config parser -----------------------------------------------------------------------------------
def _leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


LEAVES = _leaves(RunConfig().model_dump(mode="json"))
yaml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(sorted({str(v) for _, v in LEAVES})),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=5,
)


@st.composite
def config_trees(draw: st.DrawFn) -> dict[str, Any]:
    """Known keys with plausible or wrong values, plus some misspelt or unknown keys."""
    data: dict[str, Any] = {}
    for path, default in draw(st.lists(st.sampled_from(LEAVES), max_size=6)):
        if draw(st.integers(0, 9)) == 0:
            path = (*path[:-1], path[-1] + draw(st.sampled_from(("x", "_", "s"))))
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {}) if isinstance(target.get(part, {}), dict) else {}
        target[path[-1]] = draw(st.just(default) | yaml_values)
    return data


def check_config(config: RunConfig | None) -> None:
    if config is None:
        return
    assert isinstance(config, RunConfig)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resolved.yaml"
        path.write_text(dump_config(config), encoding="utf-8")
        assert load_config(path) == config  # the resolved config reloads to itself


@fuzz
@given(
    data=st.binary(max_size=300)
    | encoded(yaml_soup)
    | config_trees().map(lambda d: yaml.safe_dump(d).encode()).flatmap(lambda b: st.just(b) | mutated(b))
)
def test_load_config_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "run.yaml", data)
        check_config(loads_or_refuses(lambda: load_config(path)))


@fuzz
@given(tree=config_trees())
def test_validate_config(tree):
    check_config(loads_or_refuses(lambda: validate_config(tree, "fuzz")))


override_texts = st.one_of(
    st.text(max_size=30),
    st.tuples(
        st.sampled_from([".".join(p) for p, _ in LEAVES]),
        st.text(max_size=10) | st.sampled_from(("[", "{a: 1", "2001-13-45", "!!int x", "1e999", ".nan", "&a [*a]")),
    ).map("=".join),
)


@fuzz
@given(overrides=st.lists(override_texts, max_size=4))
def test_overrides(overrides):
    check_config(loads_or_refuses(lambda: load_config(None, overrides)))
