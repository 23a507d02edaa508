"""``mocme report``: write a run's HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mocme.cli.app import app
from mocme.cli.runs import RunDirArgument


@app.command("report")
def report(
    run_dir: RunDirArgument,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where to write the report (default: RUN_DIR/report.html).", show_default=False
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report of a run and print its path.

    The page holds the run's config and metadata, its validation and test metrics (realistic ranks,
    optimistic and pessimistic beside them, per side, per relation category and per modality
    availability) and figures: training and validation curves, gradient norms, schedules, Hits@k by
    relation category and, for MoCME, the distribution of the inter-modal weights alpha. One file,
    no scripts, nothing loaded from elsewhere. Needs matplotlib: pip install 'mocme[plot]'.
    """
    from mocme.report import write_report

    typer.echo(str(write_report(run_dir, out)))
