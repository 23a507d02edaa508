"""One entry point from a dataset config section to a :class:`MultiModalKG`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mocme.data.columns import Columns
from mocme.data.formats import load_folder
from mocme.data.kg import MultiModalKG
from mocme.data.readers import read_features
from mocme.data.registry import BENCHMARKS, Benchmark, load_benchmark
from mocme.data.synthetic import SyntheticSpec, generate
from mocme.errors import DataError, DataWarning, MocmeError
from mocme.io import resolve


class FeatureFile(BaseModel):
    """A feature matrix on disk, row-aligned with the entity vocabulary."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: Path = Field(description="A .safetensors, .npy or .pt file of shape (entities, dim).")
    mask: Path | None = Field(None, description="Optional availability mask, shape (entities,).")


class DatasetConfig(BaseModel):
    """Which graph to load and which modalities to attach."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(
        "synthetic",
        description="'synthetic', a known benchmark (see 'mocme datasets'), a directory, or pykeen:NAME.",
    )
    data_dir: Path | None = Field(
        None, description="Folder of the known benchmarks (default: $MOCME_DATA, else ./data)."
    )
    synthetic: SyntheticSpec = Field(default_factory=SyntheticSpec, description="Generator settings for 'synthetic'.")
    features: dict[str, FeatureFile] = Field(default_factory=dict, description="Extra modalities by name.")
    modalities: list[str] | None = Field(None, description="Modalities to keep (default: all); [] = structure only.")
    columns: Columns | None = Field(
        None,
        description=(
            "Column order of name triples in formats that do not fix it (thunlp KB2E, MoMoK, MyGO): "
            "'hrt', 'htr' or 'rht'; default: detected from which column holds relations."
        ),
    )
    held_out: Literal["deduplicate", "as_released"] = Field(
        "deduplicate",
        description=(
            "'deduplicate': drop validation and test lines that are training triples or repeat an earlier line "
            "of their split (DB15K's released valid split is 88% training triples), with a warning; "
            "'as_released': keep the splits as the files have them."
        ),
    )


def with_absolute_paths(config: DatasetConfig) -> DatasetConfig:
    """``config`` with its folder and files as absolute paths (a dataset folder named relatively, the
    data folder, feature files and masks), so that a run saved with it loads from any folder."""
    name = config.name
    if not _is_named_dataset(name) and Path(name).expanduser().is_dir():
        name = str(_absolute(Path(name)))
    features = {
        key: FeatureFile(path=_absolute(f.path), mask=_absolute(f.mask) if f.mask else None)
        for key, f in config.features.items()
    }
    data_dir = _absolute(config.data_dir) if config.data_dir is not None else None
    return config.model_copy(update={"name": name, "features": features, "data_dir": data_dir})


def _absolute(path: Path) -> Path:
    """``path`` from the root, symbolic links kept (a linked feature file keeps its own name and suffix)."""
    return Path(os.path.abspath(path.expanduser()))


def load_dataset(config: DatasetConfig | str | None = None) -> MultiModalKG:
    """Load the graph a :class:`DatasetConfig` (or just a name or directory) describes.

    Validation and test lines that are training triples or repeats are dropped (unless
    ``held_out="as_released"``) and counted in a :class:`~mocme.errors.DataWarning`. An empty
    training split is an error; test triples with an entity never seen in training are
    kept and reported as one :class:`~mocme.errors.DataWarning` with their count.
    """
    if config is None or isinstance(config, str):
        config = DatasetConfig(name=config or "synthetic")
    kg = _load_graph(config)
    if config.held_out == "deduplicate":
        kg, dropped = kg.without_redundant_held_out()
        _warn_dropped(kg, dropped)
    for name, feature in config.features.items():
        if config.modalities is not None and name not in config.modalities:
            continue  # a modality the run leaves out: its file is not read, nor required
        kg.add_modality(read_features(feature.path, kg.entities, name=name, mask_path=feature.mask))
    unseen = kg.statistics()["test_triples_with_unseen_entity"]
    if unseen:
        warnings.warn(
            f"{kg.name}: {unseen} of {len(kg.test)} test triples have an entity never seen in training (kept)",
            DataWarning,
            stacklevel=2,
        )
    return kg.with_modalities(config.modalities)


def _warn_dropped(kg: MultiModalKG, dropped: dict[str, int]) -> None:
    for split, count in dropped.items():
        if not count:
            continue
        kept = len(kg.split(split))
        warnings.warn(
            f"{kg.name}: dropped {count} of {count + kept} {split} lines that are training triples or repeats "
            "(dataset.held_out=as_released keeps them)",
            DataWarning,
            stacklevel=3,
        )


def _is_named_dataset(name: str) -> bool:
    """Whether ``name`` names a dataset (the synthetic graph, a PyKEEN or benchmark dataset), not a folder."""
    return name == "synthetic" or name.startswith("pykeen:") or name.lower() in (b.lower() for b in BENCHMARKS)


def _load_graph(config: DatasetConfig) -> MultiModalKG:
    if config.name == "synthetic":
        return generate(config.synthetic)
    if config.name.startswith("pykeen:"):
        from mocme.interop.pykeen import from_pykeen

        return from_pykeen(config.name)
    if _is_named_dataset(config.name):
        return load_benchmark(config.name, config.data_dir)
    folder = Path(config.name)
    if not folder.is_dir():
        known = ", ".join(["synthetic", *BENCHMARKS])
        raise MocmeError(f"dataset {config.name!r} is neither a known dataset ({known}) nor a directory")
    kg, fmt = load_folder(folder, config.columns)
    train_file = folder / next(f for f in fmt.files if "train" in f)
    if not len(kg.train):
        raise DataError(resolve(train_file), "no triples (the training split must not be empty)")
    return kg


__all__ = ["Benchmark", "DatasetConfig", "FeatureFile", "load_dataset"]
