"""``mocme download``: fetch known benchmarks from their public sources (or a mirror), sha256-verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mocme.cli.app import JsonOption, app


@app.command("download")
def download(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Benchmarks to fetch, e.g. UMLS FB15K-237 (none: list them).", show_default=False),
    ] = None,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            "--data-dir",
            help="Data directory to fetch into, one folder per benchmark (default: $MOCME_DATA, else ./data).",
            show_default=False,
        ),
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror",
            help="Base URL serving a data directory's layout (URL/FOLDER/FILE, or FILE.gz) instead of the "
            "public sources (default: $MOCME_MIRROR).",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for a server to connect or to send data.")
    ] = 30.0,
    list_only: Annotated[
        bool, typer.Option("--list", help="List what can be downloaded, with sizes and licences.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Download benchmarks into the data directory, checking every file's sha256.

    Files come from the GitHub repositories the packaged manifest names, pinned to a commit, or
    from --mirror. A file is saved only once its checksum matches, so a failed download leaves no
    partial file, and a re-run fetches only what is missing. Each download prints the licence of
    its sources. Afterwards 'mocme datasets' shows the benchmark as found.
    """
    from mocme import download as fetch
    from mocme.data.registry import benchmark, data_dir

    if list_only or not names:
        _print_catalogue(fetch.catalogue(), as_json)
        return
    fetch.check_options(mirror, timeout)
    specs = [benchmark(name) for name in names]  # an unknown name fails before anything is fetched
    reports = []
    unlicensed = False
    for spec in specs:
        files = fetch.benchmark_files(spec.name)
        notes = fetch.licence_notes(files)
        unlicensed |= any(fetch.LICENCES.get(f.repo) == fetch.NO_LICENCE for f in files)
        if not as_json:
            for note in notes:
                typer.echo(f"{spec.name}: {note}")
        report = fetch.download(spec.name, to, mirror=mirror, timeout=timeout, progress=not (quiet or as_json))
        reports.append({**report.to_dict(), "sources": notes})
        if not as_json:
            typer.echo(
                f"{report.name}: {len(files)} files ({_megabytes(sum(f.size for f in files))}) verified in "
                f"{report.folder}: {len(report.downloaded)} downloaded, {len(report.present)} already present"
            )
    if as_json:
        typer.echo(json.dumps({"data_dir": str(data_dir(to)), "downloads": reports}, indent=2))
    elif unlicensed:
        typer.echo(fetch.ATTRIBUTION)


def _print_catalogue(rows: list[dict], as_json: bool) -> None:
    from mocme import download as fetch
    from mocme.tables import render

    if as_json:
        typer.echo(json.dumps({"benchmarks": rows, "licences": fetch.LICENCES, "note": fetch.ATTRIBUTION}, indent=2))
        return
    table = [[r["name"], r["files"], _megabytes(r["bytes"]), ", ".join(r["sources"])] for r in rows]
    typer.echo(
        render(["name", "files", "size", "sources"], table, title="Benchmarks that 'mocme download NAME' fetches")
    )
    licences = [[repo, f"https://github.com/{repo}", licence] for repo, licence in fetch.LICENCES.items()]
    typer.echo("\n" + render(["source", "url", "licence"], licences, title="Sources"))
    typer.echo(f"\n{fetch.ATTRIBUTION}")


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
