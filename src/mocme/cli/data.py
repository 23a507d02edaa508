"""``mocme inspect`` and ``mocme convert``: validate any supported dataset, describe it, convert it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer

from mocme.cli.app import DataDirOption, JsonOption, app, fail
from mocme.data.columns import COLUMNS

if TYPE_CHECKING:
    from mocme.data.kg import MultiModalKG
    from mocme.data.loading import DatasetConfig

DatasetArgument = Annotated[
    str,
    typer.Argument(
        help=(
            "'synthetic', a known benchmark (see 'mocme datasets'), or a directory: the project's layout "
            "(entities.txt), OpenKE (entity2id.txt, *2id.txt) or kg-bert (train.tsv, dev.tsv, test.tsv)."
        ),
        show_default=False,
    ),
]
FeatureOption = Annotated[
    list[str] | None,
    typer.Option(
        "--feature",
        "-f",
        help=(
            "Attach a feature matrix as modality NAME: NAME=PATH to a .safetensors, .npy or .pt file of shape "
            "(entities, dim), row i = entity id i; replaces a modality of the same name (repeatable)."
        ),
        show_default=False,
    ),
]
MaskOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mask",
        help=(
            "Availability mask of feature NAME: NAME=PATH to a file of shape (entities,), boolean or 0/1 "
            "(repeatable). Without one, every entity has the feature (a .safetensors or .pt file may carry "
            "its own 'mask' entry instead)."
        ),
        show_default=False,
    ),
]
NAME = re.compile(r"[\w-]+")
ColumnsOption = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Column order of name triples where the format does not fix it: hrt, htr or rht (default: detected).",
        show_default=False,
    ),
]
HeldOutOption = Annotated[
    str,
    typer.Option(
        "--held-out",
        help="deduplicate: drop valid/test lines that are training triples or repeats (as training does); "
        "as_released: keep every line.",
    ),
]


@app.command("inspect")
def inspect_dataset(
    dataset: DatasetArgument,
    features: FeatureOption = None,
    masks: MaskOption = None,
    data_dir: DataDirOption = None,
    columns: ColumnsOption = None,
    held_out: HeldOutOption = "deduplicate",
    as_json: JsonOption = False,
) -> None:
    """Load and validate a dataset (plus feature files), then print its statistics.

    Every file is checked: a malformed one is a one-line error naming the file and line (exit
    status 2). Shown: entities, relations, split sizes, valid/test triples with an entity never seen
    in training (also reported as a one-line warning) or already in train, entity text, each
    modality's dimension and coverage, and the relation categories 1-1 / 1-N / N-1 / N-N (from train).
    """
    from mocme.data.loading import load_dataset

    kg = load_dataset(_dataset_config(dataset, features, masks, data_dir, columns, held_out))
    summary = describe(kg)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(_tables(summary))


@app.command("convert")
def convert(
    source: DatasetArgument,
    dest: Annotated[Path, typer.Argument(help="Directory to write in the project's layout.", show_default=False)],
    features: FeatureOption = None,
    masks: MaskOption = None,
    data_dir: DataDirOption = None,
    columns: ColumnsOption = None,
    held_out: HeldOutOption = "deduplicate",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace DEST if it exists.")] = False,
) -> None:
    """Convert a dataset (plus feature files) into the project's own layout.

    SOURCE is validated exactly as 'mocme inspect' does. DEST receives entities.txt, relations.txt,
    train/valid/test.tsv (names), entity_text.tsv when there is text, and features/NAME.safetensors
    (features plus mask) per modality, with features/NAME.json where the feature file has the record
    'mocme features' writes beside it (which encoder made it). DEST appears complete or not at all: on
    any error nothing is left behind, and an existing DEST is replaced only with --overwrite.
    """
    from mocme.data.layout import save_layout
    from mocme.data.loading import load_dataset
    from mocme.features.cache import feature_sidecars

    if dest.exists() and not overwrite:
        fail(f"{dest}: already exists (pass --overwrite to replace it)")
    kg = load_dataset(_dataset_config(source, features, masks, data_dir, columns, held_out))
    description = f"converted from {source} by 'mocme convert'"
    save_layout(kg, dest, overwrite=overwrite, description=description, sidecars=feature_sidecars(kg))
    typer.echo(f"wrote {dest}: {kg!r}")


@app.command("split")
def split(
    triples: Annotated[
        Path,
        typer.Argument(
            help="One file of triples: head, relation and tail names separated by tabs, one per line.",
            show_default=False,
        ),
    ],
    dest: Annotated[Path, typer.Argument(help="Directory to write train.tsv, valid.tsv and test.tsv.")],
    valid: Annotated[float, typer.Option("--valid", help="Fraction of the triples to hold out for validation.")] = 0.1,
    test: Annotated[float, typer.Option("--test", help="Fraction of the triples to hold out for testing.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Fixes which triples are held out.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace DEST's split files.")] = False,
) -> None:
    """Cut a single file of triples into train, valid and test splits that mocme can train on.

    Repeated triples are kept once. A triple is held out only while each of its entities and its
    relation keeps a training triple, so every entity and relation of valid and test was seen in
    training. The cut is seeded. Then: mocme train --set dataset.name=DEST.
    """
    from mocme.data.columns import reorder
    from mocme.data.foreign import first_line, header_columns
    from mocme.data.readers import read_name_triples
    from mocme.data.splitting import split_triples
    from mocme.io import write_text_atomic

    names = ("train.tsv", "valid.tsv", "test.tsv")
    if not overwrite and any((dest / name).exists() for name in names):
        fail(f"{dest}: already has split files (pass --overwrite to replace them)")
    if not triples.is_file():
        fail(f"{triples}: file not found")
    columns = header_columns(triples, first_line(triples))  # a 'head relation tail' line, in any order
    _, read = read_name_triples(triples, header=columns is not None)
    parts = split_triples(reorder(read, columns) if columns else read, valid, test, seed)
    dest.mkdir(parents=True, exist_ok=True)
    for name, part in zip(names, parts, strict=True):
        write_text_atomic(dest / name, "".join(f"{h}\t{r}\t{t}\n" for h, r, t in part))
    counts = ", ".join(f"{name.removesuffix('.tsv')} {len(part):,}" for name, part in zip(names, parts, strict=True))
    typer.echo(f"wrote {dest}: {counts} triples; train with --set dataset.name={dest}")


def describe(kg: MultiModalKG) -> dict[str, Any]:
    """The statistics ``mocme inspect`` prints, as plain JSON-ready values."""
    from mocme.evaluation.categories import CATEGORIES, relation_categories

    stats = kg.statistics()
    train = set(map(tuple, kg.train.tolist()))
    seen = {e for h, _, t in train for e in (h, t)}
    splits = {}
    for split in ("train", "valid", "test"):
        triples = kg.split(split).tolist()
        splits[split] = {
            "triples": len(triples),
            "unseen_entity": sum(h not in seen or t not in seen for h, _, t in triples),
            "also_in_train": 0 if split == "train" else sum(tuple(x) in train for x in triples),
        }
    categories = relation_categories(kg.train, kg.num_relations)
    with_train = kg.train[:, 1].unique()
    texts = sum(bool(t) for t in kg.entity_text) if kg.entity_text is not None else None
    return {
        "name": kg.name,
        "entities": stats["entities"],
        "relations": stats["relations"],
        "splits": splits,
        "entities_with_text": texts,
        "modalities": [
            {"name": m.name, "dim": m.dim, "entities": int(m.mask.sum()), "coverage": round(m.coverage, 4)}
            for m in kg.modalities.values()
        ],
        "relation_categories": {c: int((categories[with_train] == i).sum()) for i, c in enumerate(CATEGORIES)},
        "relations_without_train_triples": kg.num_relations - len(with_train),
    }


def _tables(summary: dict[str, Any]) -> str:
    from mocme.tables import render

    splits = summary["splits"]
    rows: list[list[Any]] = [["entities", summary["entities"]], ["relations", summary["relations"]]]
    rows += [[f"{split} triples", splits[split]["triples"]] for split in splits]
    for split in ("valid", "test"):
        rows.append([f"{split} triples with an entity unseen in train", splits[split]["unseen_entity"]])
        rows.append([f"{split} triples also in train", splits[split]["also_in_train"]])
    if summary["entities_with_text"] is not None:
        rows.append(["entities with text", summary["entities_with_text"]])
    parts = [render(["statistic", "value"], rows, title=f"Dataset {summary['name']}")]
    if summary["modalities"]:
        modalities = [[m["name"], m["dim"], m["entities"], m["coverage"]] for m in summary["modalities"]]
        parts.append(render(["modality", "dim", "entities with it", "coverage"], modalities, title="Modalities"))
    else:
        parts.append("Modalities: none (structure only)")
    categories = [[c, n] for c, n in summary["relation_categories"].items()]
    if summary["relations_without_train_triples"]:
        categories.append(["no train triples", summary["relations_without_train_triples"]])
    parts.append(render(["category", "relations"], categories, title="Relation categories (from train)"))
    return "\n\n".join(parts)


def _dataset_config(
    dataset: str,
    features: list[str] | None,
    masks: list[str] | None,
    data_dir: Path | None,
    columns: str | None = None,
    held_out: str = "deduplicate",
) -> DatasetConfig:
    from mocme.data.loading import DatasetConfig, FeatureFile

    paths = _named_paths("--feature", features)
    mask_paths = _named_paths("--mask", masks)
    for name in mask_paths:
        if name not in paths:
            fail(f"--mask {name}=...: no --feature named {name!r}")
    files = {name: FeatureFile(path=path, mask=mask_paths.get(name)) for name, path in paths.items()}
    if columns is not None and columns not in COLUMNS:
        fail(f"--columns {columns!r}: expected one of {', '.join(COLUMNS)}")
    choices = get_args(DatasetConfig.model_fields["held_out"].annotation)  # the config's own
    if held_out not in choices:
        fail(f"--held-out {held_out!r}: expected {' or '.join(choices)}")
    return DatasetConfig(name=dataset, data_dir=data_dir, features=files, columns=columns, held_out=held_out)


def _named_paths(option: str, values: list[str] | None) -> dict[str, Path]:
    """``["text=a.npy"]`` -> ``{"text": Path("a.npy")}``, with one-line errors for malformed values."""
    out: dict[str, Path] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        name = name.strip()
        if not sep or not path.strip():
            fail(f"{option} {value!r}: expected NAME=PATH (for example text=features/text.npy)")
        if not NAME.fullmatch(name):
            fail(f"{option} {value!r}: NAME must be letters, digits, '_' or '-'")
        if name in out:
            fail(f"{option} {name}: given twice")
        out[name] = Path(path.strip())
    return out
