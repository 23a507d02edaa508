"""Image features: a folder of entity images encoded with a Hugging Face ``transformers`` vision model.

Images are matched to entities by name (see :func:`match_images`). An entity with several images
gets the mean of their vectors; an entity with none is masked, never zero-filled. The vector of an
image is the model's image embedding (``get_image_features``) for CLIP-style models, the [CLS]
token of the last layer for a vision transformer, or the pooled output of a convolutional network.
Images are preprocessed by the model's own image processor with its PIL backend (no torchvision).
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from mocme.data.kg import MultiModalKG
from mocme.data.registry import readable_name
from mocme.data.vocab import Vocabulary
from mocme.device import resolve_device
from mocme.errors import DataError, MocmeError
from mocme.features.cache import FeatureFile, checksum, folder_digest, manifest, up_to_date, write_features
from mocme.features.runtime import quiet_downloads, require
from mocme.io import read_text

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
PathLike = str | os.PathLike[str]
_NUMBERED = re.compile(r"^(.+)[_-]\d+$")


@dataclass
class ImageMatch:
    """Which image files belong to which entity.

    Attributes:
        images: one sorted list of paths per entity id (empty = no image).
        unmatched: image files or folders in the image folder that matched no entity.
    """

    images: list[list[Path]]
    unmatched: list[str]

    @property
    def num_images(self) -> int:
        return sum(len(paths) for paths in self.images)


def _keys(name: str) -> list[str]:
    """File-name forms of an entity name, most specific first.

    ``<http://dbpedia.org/resource/Rock_music>`` -> the URI, ``Rock_music``, ``Rock music``, ...;
    ``/m/0abc`` -> ``m.0abc`` (the FB15K image folders), ``m_0abc``; plus a URL-quoted form.
    """
    bare = name.strip("<>")
    tail = bare.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    readable = readable_name(name)
    forms = [name, bare, urllib.parse.quote(bare, safe="")]
    if bare.startswith("/"):
        forms += [bare.lstrip("/").replace("/", "."), bare.lstrip("/").replace("/", "_")]
    forms += [tail, urllib.parse.unquote(tail), readable, readable.replace(" ", "_")]
    return [f for f in dict.fromkeys(forms) if f]


def _scan(folder: Path) -> dict[str, list[Path]]:
    """Image files by key: a top-level file ``KEY.jpg``, or every image inside a folder ``KEY/``."""
    if not folder.is_dir():
        raise MocmeError(f"{folder}: image folder not found")
    found: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if files:
                found.setdefault(entry.name, []).extend(files)
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(entry.stem, []).append(entry)
    return found


def read_index(path: PathLike, entities: Vocabulary) -> dict[int, list[str]]:
    """``name<TAB>key`` lines (mmkb's ``*_ImageIndex.txt``) as keys per entity id; unknown names are skipped."""
    path, text = read_text(path)
    keys: dict[int, list[str]] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        name, sep, key = line.partition("\t")
        if not sep or not key.strip():
            raise DataError(path, "expected 'entity<TAB>image key'", number)
        ident = entities.index.get(name.strip())
        if ident is not None:
            keys.setdefault(ident, []).append(key.strip())
    return keys


def match_images(entities: Vocabulary, folder: PathLike, index: PathLike | None = None) -> ImageMatch:
    """Assign the images in ``folder`` to entities.

    The folder holds ``KEY.ext`` files, numbered ``KEY_1.ext``/``KEY-2.ext`` files, or ``KEY/``
    sub-folders of images. Without ``index``, ``KEY`` is a file-name form of the entity name (the
    name itself, the last segment of a URI, ``m.0abc`` for ``/m/0abc``, the readable name with
    spaces or underscores, or the URL-quoted name); forms are tried in that order for all entities
    before the next, and each key is claimed once, so an exact name always wins over a looser form.
    With ``index`` (``name<TAB>key`` lines, as mmkb's ``*_ImageIndex.txt``), the listed keys are used.
    Numbered files ``KEY_N`` join the entity whose key ``KEY`` is (or would be) matched.
    """
    found = _scan(Path(folder))
    numbered: dict[str, list[str]] = {}
    for key in found:
        match = _NUMBERED.match(key)
        if match:
            numbered.setdefault(match.group(1), []).append(key)
    owner: dict[str, int] = {}
    if index is not None:
        listed = read_index(index, entities)
        bases = [listed.get(i, []) for i in range(len(entities))]
        for ident, keys in enumerate(bases):
            for key in keys:
                if key in found:
                    owner.setdefault(key, ident)
    else:
        forms = [_keys(name) for name in entities]
        exact: list[str | None] = [None] * len(entities)
        for level in range(max((len(f) for f in forms), default=0)):
            for ident, keys in enumerate(forms):
                if exact[ident] is None and level < len(keys) and keys[level] in found and keys[level] not in owner:
                    owner[keys[level]] = ident
                    exact[ident] = keys[level]
        bases = [[key] if key is not None else keys for key, keys in zip(exact, forms, strict=True)]
    for ident, keys in enumerate(bases):
        for key in keys:
            extra = [k for k in numbered.get(key, []) if k not in owner]
            owner.update((k, ident) for k in extra)
            if extra and index is None:
                break
    images: list[list[Path]] = [[] for _ in entities]
    for key, ident in owner.items():
        images[ident].extend(found[key])
    for paths in images:
        paths.sort()
    unmatched = sorted(k for k in found if k not in owner)
    return ImageMatch(images, unmatched)


def load_image_encoder(model: str, device: str = "cpu"):
    """``(image processor, model)`` from a ``transformers`` model name or folder, in eval mode.

    The class named in the model's config is used when it is an embedding model (``CLIPModel``,
    ``CLIPVisionModelWithProjection``, ``ViTModel``, ...); a task model (``...ForImageClassification``)
    is loaded as its base model instead, so that no task head shapes the vectors.
    """
    transformers = require("transformers", "image")
    require("PIL", "image")
    major = int(transformers.__version__.split(".")[0])
    backend = {"backend": "pil"} if major >= 5 else {"use_fast": False}
    try:
        processor = transformers.AutoImageProcessor.from_pretrained(str(model), **backend)
        config = transformers.AutoConfig.from_pretrained(str(model))
        named = (getattr(config, "architectures", None) or [""])[0]
        cls = getattr(transformers, named, None) if named and "For" not in named else None
        network = (cls or transformers.AutoModel).from_pretrained(str(model))
    except Exception as err:  # unknown names, missing files and offline hubs raise many types
        message = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise MocmeError(f"cannot load vision model {model!r} ({message})") from None
    return processor, network.to(resolve_device(device)).eval()


def image_vectors(network, pixel_values: Tensor) -> Tensor:
    """One vector per image: the projected image embedding of CLIP-style models, the [CLS] token of
    the last layer of a vision transformer, or the pooled output of a convolutional network.

    Returns:
        shape ``(batch, d)``.
    """
    if hasattr(network, "get_image_features"):
        output = network.get_image_features(pixel_values=pixel_values)
    else:
        output = network(pixel_values=pixel_values)
    if isinstance(output, Tensor):
        return output.flatten(1)
    embeds = getattr(output, "image_embeds", None)
    if embeds is not None:
        return embeds.flatten(1)
    if isinstance(output.get("pooler_output"), Tensor) and (
        hasattr(network, "get_image_features") or output.last_hidden_state.ndim != 3
    ):
        return output.pooler_output.flatten(1)
    return output.last_hidden_state[:, 0]


def _open_image(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception as err:  # PIL raises many types for truncated, unknown or huge files
        message = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise DataError(path, f"cannot read image ({message}); pass --skip-unreadable to leave it out") from None


def encode_images(
    processor,
    network,
    images: Sequence[list[Path]],
    batch_size: int = 32,
    skip_unreadable: bool = False,
    progress: bool = False,
) -> tuple[Tensor, Tensor, list[str]]:
    """Encode every image and average per entity.

    Returns:
        features ``(N, d)`` float32, mask ``(N,)`` bool (entities with at least one readable image),
        and the unreadable files that were skipped.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise MocmeError(f"batch size must be at least 1, got {batch_size}")
    device = next(network.parameters()).device
    jobs = [(ident, path) for ident, paths in enumerate(images) for path in paths]
    sums: Tensor | None = None
    counts = torch.zeros(len(images))
    skipped: list[str] = []
    bar = tqdm(total=len(jobs), unit="image", desc="images", disable=not progress)
    for start in range(0, len(jobs), batch_size):
        batch, owners = [], []
        for ident, path in jobs[start : start + batch_size]:
            try:
                batch.append(_open_image(path))
            except DataError:
                if not skip_unreadable:
                    raise
                skipped.append(str(path))
                continue
            owners.append(ident)
        if batch:
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(device)
            with torch.inference_mode():
                vectors = image_vectors(network, pixels).float().cpu()
            if sums is None:
                sums = torch.zeros(len(images), vectors.shape[1])
            index = torch.tensor(owners, dtype=torch.long)
            sums.index_add_(0, index, vectors)
            counts.index_add_(0, index, torch.ones(len(owners)))
        bar.update(len(jobs[start : start + batch_size]))
    bar.close()
    if sums is None:
        raise MocmeError("no readable image to encode")
    mask = counts > 0
    features = torch.zeros_like(sums)
    features[mask] = sums[mask] / counts[mask, None]
    return features, mask, skipped


def extract_image_features(
    kg: MultiModalKG,
    path: PathLike,
    images: PathLike,
    model: str,
    index: PathLike | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    skip_unreadable: bool = False,
    progress: bool = False,
    force: bool = False,
) -> FeatureFile:
    """Encode the entity images in ``images`` into ``path`` (``.safetensors`` plus ``.json`` sidecar).

    A repeated call with the same images (names, sizes, modification times), index and model
    returns the existing file without loading the model; ``force`` recomputes.
    """
    matched = match_images(kg.entities, images, index)
    if matched.num_images == 0:
        example = "Rock_music.jpg' or 'Rock_music/1.jpg"
        raise MocmeError(
            f"{images}: no image matched an entity of {kg.name} (expected files or folders named after "
            f"entities, e.g. '{example}'; pass --index FILE with 'name<TAB>key' lines to map names)"
        )
    root = Path(images)
    listing = [
        (ident, str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for ident, paths in enumerate(matched.images)
        for p in paths
    ]
    fingerprint = folder_digest(model) if Path(model).exists() else f"hub:{model}"
    request = checksum("image", fingerprint, kg.num_entities, listing, skip_unreadable)
    if not force and (existing := up_to_date(path, request)):
        return existing
    started = time.perf_counter()
    if not progress:
        quiet_downloads()
    processor, network = load_image_encoder(model, device)
    features, mask, skipped = encode_images(
        processor, network, matched.images, batch_size, skip_unreadable=skip_unreadable, progress=progress
    )
    info = manifest(
        path,
        "image",
        kg,
        features,
        mask,
        request,
        started,
        model=str(Path(model).resolve()) if Path(model).exists() else model,
        model_fingerprint=fingerprint,
        model_class=type(network).__name__,
        source=str(root.resolve()),
        index=str(Path(index).resolve()) if index is not None else None,
        images=matched.num_images - len(skipped),
        unreadable_skipped=skipped,
        unmatched_files=len(matched.unmatched),
        unmatched_examples=matched.unmatched[:10],
        device=str(resolve_device(device)),
        batch_size=batch_size,
    )
    return write_features(path, features, mask, info)


__all__ = [
    "IMAGE_SUFFIXES",
    "ImageMatch",
    "encode_images",
    "extract_image_features",
    "image_vectors",
    "load_image_encoder",
    "match_images",
    "read_index",
]
