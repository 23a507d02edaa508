"""``mocme datasets``: the known benchmarks, their sizes, and whether they are found locally."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mocme.cli.app import DataDirOption, JsonOption, app


@app.command("datasets")
def datasets(
    data_dir_option: DataDirOption = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Load every benchmark found and count its entities, relations and triples.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the known benchmarks with their sizes and whether they are in the data directory.

    Sizes are entities / relations / train / valid / test triples: the published ones, or, with
    --verify, counted from the files (a mismatch with the published sizes is flagged). 'synthetic'
    (the built-in default) is generated on the fly and always available.
    """
    from mocme.data.registry import BENCHMARKS, data_dir, is_available, load_benchmark
    from mocme.tables import render

    folder = data_dir(data_dir_option)
    rows = []
    for spec in BENCHMARKS.values():
        found = is_available(spec, folder)
        sizes = spec.sizes
        if verify and found:
            kg = load_benchmark(spec.name, folder, text=False)
            sizes = (kg.num_entities, kg.num_relations, len(kg.train), len(kg.valid), len(kg.test))
        entities, relations, train, valid, test = sizes
        rows.append(
            {
                "name": spec.name,
                "entities": entities,
                "relations": relations,
                "train": train,
                "valid": valid,
                "test": test,
                "text": spec.text,
                "found": found,
                "matches_published": sizes == spec.sizes if verify and found else None,
                "description": spec.description,
            }
        )
    if as_json:
        typer.echo(json.dumps({"data_dir": str(folder), "datasets": rows}, indent=2))
        return
    headers = ["name", "entities", "relations", "train", "valid", "test", "entity text", "found"]
    table = [[r["name"], *(r[k] for k in headers[1:6]), r["text"], _found(r)] for r in rows]
    counted = "counted from the files" if verify else "published sizes"
    typer.echo(render(headers, table, title=f"Known benchmarks, {counted} (data directory: {folder})"))
    typer.echo("\nsynthetic: built-in generated multimodal graph (the default; see 'mocme train --help').")


def _found(row: dict) -> str:
    if not row["found"]:
        return "no"
    if row["matches_published"] is False:
        return "yes (sizes differ from published!)"
    return "yes, verified" if row["matches_published"] else "yes"
