"""``mocme report``: write a run's HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mocme.cli.app import DataDirOption, app
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
    data_dir: DataDirOption = None,
) -> None:
    """Write a self-contained HTML report of a run and print its path.

    The page holds the run's config and metadata, its validation and test metrics (realistic ranks,
    optimistic and pessimistic beside them, per side, per relation category and per modality
    availability) and figures: training and validation curves, gradient norms, schedules, Hits@k by
    relation category and, for MoCME, the distribution of the inter-modal weights alpha. One file,
    no scripts, nothing loaded from elsewhere. Needs matplotlib (the package's 'plot' extra).

    The weights come from the selected checkpoint, on the run's dataset loaded again (--data-dir
    when the benchmark has moved); when it cannot be loaded the report says so and leaves them out.
    """
    from mocme.report import write_report

    typer.echo(str(write_report(run_dir, out, data_dir)))
