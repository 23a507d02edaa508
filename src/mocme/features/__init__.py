"""Feature extraction: entity text and images encoded into per-modality feature files, and
published feature files converted into the project's layout.

Every function writes ``<name>.safetensors`` (``features`` float32 ``(N, d)``, ``mask`` bool
``(N,)``, row i = entity id i) plus a ``<name>.json`` sidecar, and skips the work when the file
already matches the request. Attach the result to a run with ``dataset.features.<name>.path``.
Optional dependencies are imported on use: the ``text`` extra (sentence-transformers and the
bundled MiniLM), the ``image`` extra (transformers, pillow) and the ``hdf5`` extra (h5py).
"""

from mocme.features.cache import FeatureFile, feature_path, feature_sidecars
from mocme.features.image import extract_image_features, match_images
from mocme.features.importing import import_features, read_row_names
from mocme.features.text import DEFAULT_MODEL, encode_texts, entity_texts, extract_text_features, load_text_encoder

__all__ = [
    "DEFAULT_MODEL",
    "FeatureFile",
    "encode_texts",
    "entity_texts",
    "extract_image_features",
    "extract_text_features",
    "feature_path",
    "feature_sidecars",
    "import_features",
    "load_text_encoder",
    "match_images",
    "read_row_names",
]
