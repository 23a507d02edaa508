"""A published feature matrix read from its file and its rows placed at a dataset's entity ids.

The MMKGC repositories ship features as ``torch.save`` tensors, ``.npy``/``.npz`` arrays,
``.safetensors`` or HDF5 files, their rows in the order of an ``entity2id`` file. The data layer
attaches such files when they sit in a dataset folder (:mod:`mocme.data.foreign`), and
``mocme features import`` converts them (:mod:`mocme.features.importing`); both read them here.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mocme.data.readers import read_openke_vocabulary, read_vector_lines
from mocme.data.vocab import Vocabulary
from mocme.errors import DataError
from mocme.extras import require
from mocme.io import read_text, resolve

PathLike = str | os.PathLike[str]
SUFFIXES = (".pth", ".pt", ".npy", ".npz", ".safetensors", ".h5", ".hdf5")


@contextlib.contextmanager
def open_published(path: PathLike, key: str | None = None, allow_pickle: bool = False) -> Iterator[Any]:
    """Yield a matrix (tensor or array, shape ``(rows, d)``) or a mapping ``key -> vector``.

    HDF5 files stay open while the caller reads from the mapping, so only the needed keys are read.
    """
    path = resolve(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        h5py = require("h5py", "hdf5")
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise DataError(path, f"cannot read HDF5 file ({err})") from None
        with handle:
            yield _select(path, {k: handle[k] for k in handle if isinstance(handle[k], h5py.Dataset)}, key)
        return
    try:
        if suffix in (".pth", ".pt"):
            data = _torch_load(path, allow_pickle)
        elif suffix == ".npy":
            data = np.load(path, allow_pickle=allow_pickle)
            if data.dtype == object and data.ndim == 0:  # np.save of a dict
                data = data.item()
        elif suffix == ".npz":
            with np.load(path, allow_pickle=allow_pickle) as archive:
                data = {k: archive[k] for k in archive.files}
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            raise DataError(path, f"unsupported feature format {suffix!r} (use {', '.join(SUFFIXES)})")
    except DataError:
        raise
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(path, "holds pickled Python objects; if you trust the file, pass --allow-pickle") from None
        raise DataError(path, f"cannot read {suffix} file ({str(err).splitlines()[0][:120]})") from None
    except Exception as err:  # truncated or corrupt files raise many library-specific types
        message = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DataError(path, f"cannot read {suffix} file ({message})") from None
    yield _select(path, data, key)


def _torch_load(path: Path, allow_pickle: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not allow_pickle:
            raise DataError(
                path, "holds pickled Python objects (e.g. numpy arrays); if you trust the file, pass --allow-pickle"
            ) from None
    return torch.load(path, map_location="cpu", weights_only=False)


def _select(path: Path, data: Any, key: str | None) -> Any:
    """The matrix or mapping inside ``data``; ``key`` picks one entry of a dict-like file."""
    if isinstance(data, (list, tuple)) and data and all(_is_array(v) for v in data):
        rows = [as_tensor(path, v, f"row {i}").reshape(-1) for i, v in enumerate(data)]
        odd = next((i for i, row in enumerate(rows) if row.shape != rows[0].shape), None)
        if odd is not None:
            raise DataError(path, f"row {odd} has {rows[odd].numel()} values, row 0 has {rows[0].numel()}")
        return torch.stack(rows)
    if not isinstance(data, Mapping):
        if key is not None:
            raise DataError(path, f"holds a single {type(data).__name__}, so there is no entry {key!r} to select")
        if not _is_array(data):
            raise DataError(path, f"expected a tensor, an array or a dict of them, found {type(data).__name__}")
        return data
    if key is not None:
        if key not in data:
            raise DataError(path, f"no entry {key!r} (entries: {_listing(data)})")
        return data[key]
    if "features" in data:
        if "mask" in data:
            raise DataError(path, "is already in the project's format: use it directly (dataset.features.NAME.path)")
        return data["features"]
    if len(data) == 1:
        return next(iter(data.values()))
    if not data:
        raise DataError(path, "holds no arrays")
    if not all(isinstance(k, str) for k in data):
        raise DataError(path, "a dict of vectors must be keyed by entity names (or image keys with --index)")
    return data


def _is_array(value: Any) -> bool:
    return isinstance(value, (Tensor, np.ndarray)) or (hasattr(value, "shape") and hasattr(value, "dtype"))


def _listing(data: Mapping) -> str:
    keys = [str(k) for k in list(data)[:5]]
    return ", ".join(keys) + (", ..." if len(data) > 5 else "")


def as_tensor(path: Path, value: Any, what: str) -> Tensor:
    """A float32 tensor from a tensor, an array, an HDF5 dataset or a list of numbers."""
    if not isinstance(value, (Tensor, np.ndarray)):
        try:
            value = np.asarray(value[()] if _is_array(value) else value)  # HDF5 datasets read fully on demand
        except (TypeError, ValueError):
            raise DataError(path, f"{what} is not a numeric array ({type(value).__name__})") from None
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            detail = "is not a numeric array" if value.dtype.kind == "O" else f"has unsupported dtype {value.dtype}"
            raise DataError(path, f"{what} {detail}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64, torch.int16, torch.uint8)):
        raise DataError(path, f"{what} has unsupported dtype {value.dtype}")
    return value.float()


# -- names of the rows ------------------------------------------------------------------------------
def read_row_names(path: PathLike) -> list[str]:
    """Entity names in row order from an ``entity2id`` file.

    Accepts OpenKE's form (a count line, then ``name<ws>id``), ``name<ws>id`` lines without a count
    (MoMoK), and one name per line; names may contain spaces (the id follows the last whitespace).
    """
    path, text = read_text(path)
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise DataError(path, "file is empty")
    first = lines[0].strip()
    if first.isdigit() and int(first) == len(lines) - 1:
        return list(read_openke_vocabulary(path))
    pairs = [line.rstrip().rsplit(None, 1) for line in lines]
    if all(len(p) == 2 and p[1].isdigit() for p in pairs) and sorted(int(p[1]) for p in pairs) == list(
        range(len(pairs))
    ):
        return _unique(path, [name.strip() for name, _ in sorted(pairs, key=lambda p: int(p[1]))])
    return _unique(path, [line.strip() for line in lines])


def _unique(path: Path, names: list[str]) -> list[str]:
    try:
        Vocabulary(names)
    except ValueError as err:
        raise DataError(path, str(err)) from None
    return names


# -- alignment ---------------------------------------------------------------------------------------
def align_matrix(
    path: Path,
    matrix: Tensor,
    entities: Vocabulary,
    row_names: list[str] | None,
    names_path: Path | None,
    partial: bool,
) -> tuple[Tensor, Tensor, int]:
    """Rows of a published matrix placed at the dataset's entity ids.

    Returns:
        features ``(N, d)``, mask ``(N,)`` and the number of rows naming no entity of the dataset.
    """
    if matrix.ndim == 3 and matrix.shape[1] == 1:
        matrix = matrix[:, 0]
    if matrix.ndim != 2:
        raise DataError(path, f"expected a 2-D matrix (rows x dim), got shape {tuple(matrix.shape)}")
    if matrix.shape[1] == 0:
        raise DataError(path, "its vectors have dimension 0")
    rows, n = matrix.shape[0], len(entities)
    if row_names is None:
        if rows != n:
            problem = f"has {rows} rows but the dataset has {n} entities; pass --entity2id FILE naming the rows"
            raise DataError(path, problem)
        return matrix.clone(), torch.ones(n, dtype=torch.bool), 0
    if rows != len(row_names):
        raise DataError(path, f"has {rows} rows but {names_path} lists {len(row_names)} names")
    ids = torch.tensor([entities.index.get(name, -1) for name in row_names], dtype=torch.long)
    known = ids >= 0
    features = torch.zeros(n, matrix.shape[1])
    mask = torch.zeros(n, dtype=torch.bool)
    features[ids[known]] = matrix[known]
    mask[ids[known]] = True
    missing = int((~mask).sum())
    if missing and not partial:
        first = entities.name(int((~mask).nonzero()[0]))
        raise DataError(
            names_path or path,
            f"{missing} of {n} dataset entities are not listed (first: {first[:60]!r}); pass --partial to mask them",
        )
    return features, mask, int((~known).sum())


# -- vectors of entities by name ---------------------------------------------------------------------
TEXT_SUFFIXES = (".tsv", ".txt")


def read_entity_vectors(path: PathLike, order: Sequence[str] | None = None) -> list[tuple[str, Tensor, str]]:
    """One vector per entity name: ``(name, vector (d,), where)``, ``where`` naming the file and line or entry.

    - ``.tsv`` / ``.txt``: ``name<TAB>v1 v2 ... vd`` lines;
    - a mapping from names to vectors (a dict saved with ``torch.save``, an ``.npz``, a
      ``.safetensors`` or HDF5 file with one entry per name);
    - a matrix ``(rows, d)`` (``.npy``, ``.pt``, ...) whose row i belongs to the i-th name of ``order``.
    """
    path = resolve(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        return [(name, vector, f"{path}:{line}") for name, vector, line in read_vector_lines(path)]
    with open_published(path) as data:
        if isinstance(data, Mapping):
            rows = [
                (str(k), as_tensor(path, v, f"entry {k!r}").reshape(-1), f"{path}: entry {k!r}")
                for k, v in data.items()
            ]
        else:
            matrix = as_tensor(path, data, "matrix")
            if matrix.ndim == 1:
                matrix = matrix.unsqueeze(0)
            if matrix.ndim != 2:
                raise DataError(path, f"expected a matrix (rows x dim), got shape {tuple(matrix.shape)}")
            if order is None:
                raise DataError(
                    path,
                    "holds a matrix without entity names: give 'name<TAB>values' lines (.tsv), a dict keyed by "
                    "name, or list the names in the new-entities file (rows in its order)",
                )
            if len(matrix) != len(order):
                raise DataError(path, f"has {len(matrix)} rows but {len(order)} new entities are listed")
            rows = [(name, matrix[i], f"{path}: row {i}") for i, name in enumerate(order)]
    for _, vector, where in rows:
        if not torch.isfinite(vector).all():
            raise DataError(where, "contains a NaN or an infinite value")
        if not len(vector):
            raise DataError(where, "is empty")
    return rows
