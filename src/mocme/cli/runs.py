"""``mocme train``, ``mocme evaluate``, ``mocme predict`` and ``mocme config``."""

from __future__ import annotations

import shlex
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from mocme.cli.app import DataDirOption, Interrupted, JsonOption, app, data_dir_override, fail
from mocme.errors import NumericalError, renamed

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config value, e.g. --set training.epochs=20 --set model.dim=128 (repeatable).",
        show_default=False,
    ),
]
ConfigArgument = Annotated[
    Path | None,
    typer.Argument(help="YAML run config (default: MoCME on the built-in synthetic graph).", show_default=False),
]
RunDirArgument = Annotated[Path, typer.Argument(help="A run directory written by 'mocme train'.")]
LoadDeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="cpu, cuda, cuda:N or auto (default: the device the run trained on; cpu reads a GPU-trained run).",
        show_default=False,
    ),
]


def _overrides(
    sets: list[str] | None, data_dir: Path | None, device: str | None, seed: int | None, epochs: int | None
) -> list[str]:
    overrides = list(sets or [])
    if data_dir is not None:
        overrides.append(data_dir_override(data_dir))
    if device is not None:
        overrides.append(f"device={device}")
    if seed is not None:
        overrides.append(f"seed={seed}")
    if epochs is not None:
        overrides.append(f"training.epochs={epochs}")
    return overrides


@app.command("train")
def train(
    config: ConfigArgument = None,
    sets: SetOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Run directory to create (default: runs/DATASET-MODEL-TIME).", show_default=False
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run directory.")] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Continue the run in this directory from its last checkpoint.", show_default=False
        ),
    ] = None,
    data_dir: DataDirOption = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda or auto.", show_default=False)] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed (same as --set seed=N).", show_default=False)
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Same as --set training.epochs=N.", show_default=False)
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Data-parallel training in each process that torchrun starts, e.g. "
            "'torchrun --nproc-per-node 2 -m mocme train CONFIG --distributed' (gloo on CPU, NCCL on CUDA; "
            "training.batch_size is per process; rank 0 writes the run directory).",
        ),
    ] = False,
) -> None:
    """Train a model, select it on the validation split, and score the test split once.

    With no CONFIG this trains MoCME on the built-in synthetic multimodal graph (a couple of minutes
    on 2 CPU cores). The run directory receives config.yaml, metadata.json, trace.jsonl,
    metrics.json and checkpoints/{last,best}.pt. A killed run continues with --resume RUN_DIR and
    ends exactly as an uninterrupted one would. Ctrl-C stops at once (exit status 130), keeping the
    checkpoint of the last completed epoch, and prints the command that continues the run.
    """
    from mocme import pipeline
    from mocme.config import load_config
    from mocme.rundir import RunDirectory
    from mocme.tables import metrics_table
    from mocme.training.distributed import main_process

    progress = not quiet
    if resume is not None:
        given = [
            flag
            for flag, value in (
                ("CONFIG", config),
                ("--set", sets),
                ("--out", out),
                ("--data-dir", data_dir),
                ("--device", device),
                ("--seed", seed),
                ("--epochs", epochs),
                ("--overwrite", overwrite or None),
            )
            if value
        ]
        if given:
            fail(f"--resume continues a run with its saved config; do not combine it with {', '.join(given)}")
        run_dir = resume
        metric = RunDirectory(run_dir).load_config().training.metric
    else:
        run_config = load_config(config, _overrides(sets, data_dir, device, seed, epochs))
        run_dir = out or pipeline.default_run_dir(run_config)
        metric = run_config.training.metric
    # bars need a terminal; without one, rank 0 alone prints a line per validated epoch
    callbacks = [_epoch_line(metric)] if progress and not sys.stderr.isatty() and main_process() else []
    try:
        if resume is not None:
            result = pipeline.resume(run_dir, progress=progress, distributed=distributed, callbacks=callbacks)
        else:
            result = pipeline.train(
                run_config,
                run_dir,
                overwrite=overwrite,
                progress=progress,
                distributed=distributed,
                callbacks=callbacks,
            )
    except KeyboardInterrupt:
        raise Interrupted(_interrupted(run_dir)) from None
    except NumericalError as err:
        raise NumericalError(f"{err}; {_last_checkpoint(run_dir)}") from None
    if not main_process():
        return
    metrics = result.metrics
    typer.echo(
        f"\n{metrics['model']} on {metrics['dataset']} ({' + '.join(metrics['modalities'])}): "
        f"selected epoch {metrics['selected_epoch']} of {metrics['epochs_trained']} on validation"
    )
    for split in ("valid", "test"):
        if split in metrics:
            typer.echo("\n" + metrics_table(metrics[split], title=_ranks_title(split, metrics[split])))
    typer.echo(f"\nrun directory: {result.directory.path}")


def _ranks_title(split: str, metrics: dict[str, Any], detail: str = "") -> str:
    """``valid (filtered, realistic ranks)``, or ``raw`` where the run's evaluation is unfiltered."""
    kind = "filtered" if metrics.get("filtered", True) else "raw"
    return f"{split} ({kind}, realistic ranks{detail})"


def _interrupted(run_dir: Path) -> str:
    """The one line an interrupted training prints: how to continue it, once it has a run directory."""
    from mocme.rundir import RunDirectory

    if not RunDirectory(run_dir).config_path.exists():
        return "interrupted"
    return f"interrupted; continue with: mocme train --resume {shlex.quote(str(run_dir))}"


def _last_checkpoint(run_dir: Path) -> str:
    """Which epoch the run's ``last`` checkpoint holds (what survives a failed epoch)."""
    from mocme.rundir import RunDirectory

    directory = RunDirectory(run_dir)
    epoch = directory.checkpoint_epoch("last")
    if epoch is None:
        return "no epoch completed, so no checkpoint was written"
    return f"{directory.checkpoint_path('last')} keeps epoch {epoch}"


def _epoch_line(metric: str) -> Callable[[dict[str, Any]], None]:
    """An epoch callback that prints one line per validated epoch with the selection ``metric``.

    For logs, where progress bars would be noise.
    """

    from mocme.evaluation import short_name

    side, ties, name = metric.split(".", 2) if metric.count(".") == 2 else ("", "", metric)
    label = short_name(name) if (side, ties) == ("both", "realistic") else metric  # the headline's own name

    def line(record: dict[str, Any]) -> None:
        value = record.get("valid", {}).get(metric)
        if value is not None:
            typer.echo(
                f"epoch {record['epoch']}: loss {record['loss']:.4f}, valid {label} {value:.4f} "
                f"({record['seconds']:.1f} s)",
                err=True,
            )

    return line


@app.command("evaluate")
def evaluate(
    run_dir: RunDirArgument,
    split: Annotated[str, typer.Option("--split", help="valid or test.")] = "valid",
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    breakdown: Annotated[
        bool,
        typer.Option(
            "--breakdown",
            help="Also show metrics per relation category, per modality of the answer, by whether the query "
            "and answer entities were seen in training (the inductive case), and by the number of training "
            "triples of a test triple's less-known entity.",
        ),
    ] = False,
    scorers: Annotated[
        bool,
        typer.Option("--scorers", help="MoCME: rank with each scorer alone too (one per modality, and joint)."),
    ] = False,
    old_scorers: Annotated[bool, typer.Option("--heads", hidden=True, help="The old name of --scorers.")] = False,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    device: LoadDeviceOption = None,
) -> None:
    """Filtered ranking metrics of a run's checkpoint on a split (both directions, all ties resolved).

    Realistic ranks are the headline; optimistic and pessimistic are shown beside them. Metric names
    follow PyKEEN (inverse_harmonic_mean_rank = MRR, arithmetic_mean_rank = MR, hits_at_k).
    With --scorers, each MoCME scorer also ranks alone, which shows what every modality contributes.
    """
    from mocme.io import to_json
    from mocme.pipeline import evaluate_run, evaluate_scorers
    from mocme.tables import breakdown_table, metrics_table, scorers_table

    if old_scorers:
        warnings.warn(renamed("--heads", "--scorers"), stacklevel=1)
        scorers = True
    if split not in ("valid", "test"):
        fail(f"--split must be 'valid' or 'test', got {split!r}")
    if scorers:
        result = evaluate_scorers(run_dir, split, checkpoint, progress=not quiet, device=device)
        decision, table = result["decision"], scorers_table
    else:
        result = decision = evaluate_run(run_dir, split, checkpoint, progress=not quiet, device=device)
        table = metrics_table
    if as_json:
        typer.echo(to_json(result, indent=2))
        return
    typer.echo(table(result, title=_ranks_title(split, decision, f"; checkpoint {checkpoint}")))
    if breakdown:
        typer.echo("\n" + breakdown_table(decision))


@app.command("predict")
def predict(
    run_dir: RunDirArgument,
    relation: Annotated[str, typer.Option("--relation", "-r", help="Relation name.")],
    head: Annotated[
        str | None, typer.Option("--head", help="Head entity: predict its tails.", show_default=False)
    ] = None,
    tail: Annotated[
        str | None,
        typer.Option(
            "--tail", help="Tail entity: predict its heads (or, with --head, rank this tail).", show_default=False
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="How many answers to show.")] = 10,
    explain: Annotated[bool, typer.Option("--explain", help="Show which modality drove each answer.")] = False,
    exclude_known: Annotated[
        bool, typer.Option("--exclude-known", help="Hide answers already in the graph (train/valid/test).")
    ] = False,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    new_entities: Annotated[
        Path | None,
        typer.Option(
            "--new-entities",
            help="Entities that are not in the graph, as lines of a name, a tab and its text: MoCME places each "
            "from its text (encoded by the encoder that made the run's text features) and its --feature "
            "vectors, without retraining; a name is then usable as --head/--tail and is ranked among the "
            "answers.",
            show_default=False,
        ),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--feature",
            "-f",
            help="Feature vectors of new entities for the run's modality NAME: NAME=PATH to a .tsv of lines of a "
            "name, a tab and its values, a dict keyed by name (.pt, .npz, .safetensors), or a matrix (.npy, "
            ".pt) whose rows follow the order of --new-entities; raw values, as the run's feature file holds "
            "them (repeatable).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    device: LoadDeviceOption = None,
) -> None:
    """Ranked answers of (HEAD, RELATION, ?) or (?, RELATION, TAIL), by entity and relation names.

    With --explain, each answer shows the probability every scorer gives it (one scorer per
    modality plus the unified one), for MoCME the unified scorer's logit split over the answer's
    modalities (from m; they add up to it), and the modality that drove it; for MoCME also the query
    entity's modality weights (alpha), each view's weight in its unified embedding and the
    expert-view weights (beta) in this relation's context.
    With --new-entities and/or --feature, a MoCME run also places entities it never saw from
    their modalities (structure is unavailable for them), as query entities and as answers.
    """
    from mocme.cli.data import _named_paths
    from mocme.io import to_json
    from mocme.pipeline import load_run
    from mocme.prediction import predict as run_predict
    from mocme.tables import render

    if head is None and tail is None:
        fail("give --head (to predict tails) or --tail (to predict heads)")
    feature_paths = _named_paths("--feature", features)
    _, kg, model = load_run(run_dir, checkpoint, device=device)
    added: list[str] = []
    if new_entities is not None or feature_paths:
        from mocme.inductive import add_entities, read_new_entities

        entities = read_new_entities(new_entities, feature_paths, list(kg.modalities))
        model, kg = add_entities(model, kg, entities)
        added = [e.name for e in entities]
    if head is not None:
        result = run_predict(
            model,
            kg,
            head,
            relation,
            direction="tail",
            top=top,
            exclude_known=exclude_known,
            explain=explain,
            target=tail,
        )
    else:
        result = run_predict(
            model, kg, tail, relation, direction="head", top=top, exclude_known=exclude_known, explain=explain
        )
    if as_json:
        typer.echo(to_json({**result.to_dict(), "new_entities": added}, indent=2))
        return
    asked = f"({result.entity}, {relation}, ?)" if result.direction == "tail" else f"(?, {relation}, {result.entity})"
    scorers_shown = list(result.candidates[0].scorers) if explain and result.candidates else []
    parts_shown = list(result.candidates[0].contributions) if explain and result.candidates else []
    with_driver = any(c.driver for c in result.candidates)
    headers = ["rank", "entity", "score", "known", *(f"p[{h}]" for h in scorers_shown)]
    headers += [f"from {m}" for m in parts_shown] + (["driver"] if with_driver else [])
    rows = []
    tied = any(c.rank != int(c.rank) for c in result.candidates)  # a tie shares the mean position
    for c in result.candidates:
        known = c.known or ("new entity" if c.entity in added else "")
        rank = f"{c.rank:g}" if tied else int(c.rank)
        row = [rank, c.entity, c.score, known, *(c.scorers.get(h) for h in scorers_shown)]
        row += [c.contributions.get(m) for m in parts_shown] + ([c.driver or ""] if with_driver else [])
        rows.append(row)
    typer.echo(render(headers, rows, title=f"Top {len(rows)} answers of {asked}"))
    if parts_shown:
        typer.echo(
            "from m: the part of the unified scorer's logit that the answer's m view gives (they sum to it; "
            "blank where the answer lacks m)"
        )
    if result.target is not None:
        t = result.target
        kind = "filtered: known answers left out" if exclude_known else "raw: known answers included"
        known = f", known: {t.known}" if t.known else ""
        typer.echo(f"\nrank of {t.entity}: {t.rank:g} ({kind}; score {t.score:.4f}{known})")
    if added:
        modalities = {name: [m for m in kg.modalities if kg.modalities[m].mask[kg.entities.id(name)]] for name in added}
        placed = ", ".join(f"{name} ({' + '.join(modalities[name])})" for name in added)
        typer.echo(f"\nnew entities, placed from their modalities (structure unavailable): {placed}")
    if result.modality_weights is not None:
        context = relation if result.direction == "tail" else f"{relation}⁻¹"  # a head query reads r reversed
        typer.echo(f"\nWhat built the representation of {result.entity} in the context of {context}:")
        in_joint = result.representation_weights or {}
        rows = [
            [name, "missing", "", _missing(name, result.entity in added)]
            if weight is None
            else [
                name,
                f"{in_joint.get(name, weight):.4f}",
                f"{weight:.4f}",
                " ".join(f"{b:.2f}" for b in (result.view_weights or {}).get(name, [])),
            ]
            for name, weight in result.modality_weights.items()
        ]
        typer.echo(render(["modality", "weight in e*", "alpha", "view weights beta"], rows))
        if getattr(model, "config", None) is not None and model.config.unified == "anchored":
            typer.echo("(unified: anchored: the structural view enters e* whole, the others with weight alpha)")


def _missing(modality: str, new: bool) -> str:
    """Why an entity's representation has no part from ``modality``."""
    if modality != "structure":
        return "(the entity has no such features)"
    if new:
        return "(unavailable: a new entity has no trained structural embedding)"
    return "(unavailable: the entity is in no training triple)"


@app.command("config")
def show_config(
    config: ConfigArgument = None,
    sets: SetOption = None,
) -> None:
    """Print the fully resolved config (defaults, then CONFIG, then --set overrides) as YAML.

    Use it to start a config file: 'mocme config > my_run.yaml'.
    """
    from mocme.config import dump_config, load_config

    typer.echo(dump_config(load_config(config, sets or [])), nl=False)
