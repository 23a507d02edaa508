"""Data layer: files -> :class:`MultiModalKG`."""

from mocme.data.filtering import FilterIndex
from mocme.data.kg import SPLITS, Modality, MultiModalKG, ranking_queries
from mocme.data.layout import load_layout, save_layout
from mocme.data.loading import load_dataset
from mocme.data.registry import BENCHMARKS, load_benchmark
from mocme.data.synthetic import SyntheticSpec, generate
from mocme.data.vocab import Vocabulary

__all__ = [
    "BENCHMARKS",
    "SPLITS",
    "FilterIndex",
    "Modality",
    "MultiModalKG",
    "SyntheticSpec",
    "Vocabulary",
    "generate",
    "load_benchmark",
    "load_dataset",
    "load_layout",
    "ranking_queries",
    "save_layout",
]
