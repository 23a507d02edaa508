"""``mocme hpo``: hyperparameter search with Optuna over a config's ``search`` section."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mocme.cli.app import DataDirOption, JsonOption, app, data_dir_override

if TYPE_CHECKING:
    from mocme.hpo import StudySummary, TrialRow

SetOption = Annotated[  # spelled as in 'mocme train'
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config value, e.g. --set training.epochs=20 (repeatable).",
        show_default=False,
    ),
]


@app.command("hpo")
def hpo(
    config: Annotated[
        Path,
        typer.Argument(
            metavar="CONFIG", help="YAML run config with a 'search' section (see below).", show_default=False
        ),
    ],
    trials: Annotated[
        int,
        typer.Option(
            "--trials", "-n", min=0, help="Trials to add (a continued study keeps its earlier ones; 0: show it)."
        ),
    ] = 20,
    sets: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Study directory (default: runs/NAME-hpo for a CONFIG named NAME.yaml).",
            show_default=False,
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna storage: an SQLAlchemy URL or an SQLite file (default: OUT/study.db).",
            show_default=False,
        ),
    ] = None,
    study_name: Annotated[
        str | None,
        typer.Option(
            "--study-name", help="Study name in the storage (default: CONFIG's file name).", show_default=False
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Start no new trial after this many seconds.", show_default=False),
    ] = None,
    startup_trials: Annotated[
        int,
        typer.Option("--startup-trials", min=0, help="Random trials before TPE, and trials before any pruning."),
    ] = 5,
    pruning: Annotated[
        bool,
        typer.Option("--pruning/--no-pruning", help="Stop a trial whose validation value is below the median."),
    ] = True,
    sampler_seed: Annotated[
        int | None,
        typer.Option(
            "--sampler-seed",
            min=0,
            max=2**32 - 1,
            help="Seed of the TPE sampler (default: the config's seed).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Search hyperparameters with Optuna (TPE sampling, median pruning on the validation metric).

    CONFIG is a normal run config plus a 'search' section that maps
    dotted config keys to dimensions, for example:

        search:
          training.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          model.dim: {type: categorical, choices: [32, 64, 128]}
          model.experts: {type: int, low: 1, high: 4}

    Each trial is a normal run directory OUT/trial-NNNN, selected on
    validation as 'mocme train' does; the test split plays no part.
    The study lives in OUT/study.db: the same command again adds
    --trials more trials to it. The best trial's config is written to
    OUT/best.yaml (a normal run config). Needs the 'hpo' extra.
    """
    from mocme.extras import require
    from mocme.hpo import run_study
    from mocme.io import to_json

    optuna = require("optuna", extra="hpo")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial comes from here instead
    logging.getLogger("optuna").addFilter(_not_interrupted)  # Ctrl-C is one 'interrupted' line, not a trace
    overrides = list(sets or [])
    if data_dir is not None:
        overrides.append(data_dir_override(data_dir))
    summary = run_study(
        config,
        out,
        trials=trials,
        storage=storage,
        study_name=study_name,
        overrides=overrides,
        timeout=timeout,
        startup_trials=startup_trials,
        pruning=pruning,
        seed=sampler_seed,
        progress=not (quiet or as_json),
        on_trial=None if as_json else _trial_line,
    )
    if as_json:
        typer.echo(to_json(summary.to_dict(), indent=2))
        return
    typer.echo("\n" + summary_table(summary))


def _trial_line(row: TrialRow) -> None:
    value = "" if row.value is None else f"  value {row.value:.4f}"
    epochs = "" if row.epochs is None else f"  ({row.epochs} epochs)"
    params = "  ".join(f"{key}={_short(param)}" for key, param in row.params.items())
    typer.echo(f"trial {row.number}: {row.state}{value}{epochs}  {params}")


def summary_table(summary: StudySummary) -> str:
    """Every trial of the study (best marked with '*'), then where the best config is."""
    from mocme.evaluation.metrics import short_name
    from mocme.tables import render

    keys = list(dict.fromkeys(key for row in summary.trials for key in row.params))
    metric = f"valid {short_name(summary.metric.rsplit('.', 1)[-1])}"
    rows = [
        [
            "*" if summary.best is not None and row.number == summary.best.number else "",
            row.number,
            row.state,
            row.value,
            row.epochs,
            None if row.seconds is None else round(row.seconds),
            *(_short(row.params[key]) if key in row.params else "" for key in keys),
        ]
        for row in summary.trials
    ]
    title = f"Study {summary.name!r}: {len(summary.trials)} trials ({summary.added} added), storage {summary.storage}"
    lines = [render(["", "trial", "state", metric, "epochs", "seconds", *keys], rows, title=title)]
    if summary.best_config is not None and summary.best is not None:
        lines.append(
            f"\nbest: trial {summary.best.number} ({summary.best.run_dir}); its config: {summary.best_config}\n"
            f"train it: mocme train {summary.best_config} --out runs/best (it keeps the trials' short budget: "
            "add --set training.epochs=N --set training.patience=P to train it to convergence)"
        )
    else:
        lines.append("\nno trial has completed yet")
    return "\n".join(lines)


def _short(value: object) -> object:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def _not_interrupted(record: logging.LogRecord) -> bool:
    """Drop optuna's report of a trial stopped by Ctrl-C (the command says 'interrupted' itself)."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))
