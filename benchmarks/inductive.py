"""The inductive case on the synthetic graph: entities held out of training entirely, ranked after it.

The built-in synthetic graph (planted modality signal, ``mocme train`` defaults) loses a share of
its entities before training: every triple with one of them leaves the training, validation and
test splits, and all of those triples are scored after training, beside the remaining test split.
Every variant trains with the same config, seed and budget, selects its epoch on the validation
split of the remaining graph, and is scored once:

- **MoCME, new entities added after training**: trained on the graph without the held-out
  entities, which are then placed from their feature vectors by ``mocme.add_entities`` (what
  ``mocme predict --new-entities/--feature`` does), structure unavailable;
- **MoCME, held-out entities in the vocabulary**: the held-out entities exist during training but
  are in no triple, so structure is masked for them (``model.unseen_structure: mask``) and they are
  only ever negatives;
- **TuckER, held-out entities in the vocabulary**: a structure-only model has nothing but the
  embedding it trained, so it cannot place an entity it never saw in a triple (``add_entities``
  refuses one outright);
- **chance**: the expected MRR and Hits@10 of a uniformly random ranking of the same filtered
  candidates.

Ranks are the filtered realistic ranks of the evaluator, the held-out triples ranked in one pass
with the remaining test split (in ``mocme evaluate --breakdown`` they are the ``unseen`` group).

    python benchmarks/inductive.py                               # writes benchmarks/results/inductive.{json,md}
    python benchmarks/inductive.py --epochs 10 --out /tmp/inductive
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from mocme.config import RunConfig, load_config  # noqa: E402
from mocme.data import MultiModalKG, generate  # noqa: E402
from mocme.evaluation import Evaluator  # noqa: E402


def split_off(full: MultiModalKG, share: float, seed: int) -> tuple[list[str], torch.Tensor]:
    """Names of the held-out entities (drawn among those with a feature modality) and their triples.

    Returns the names and every triple of the full graph (any split) with a held-out entity.
    """
    has_features = torch.stack([m.mask for m in full.modalities.values()]).any(0)
    candidates = has_features.nonzero().squeeze(1)
    count = max(1, round(share * full.num_entities))
    chosen = candidates[torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:count]]
    held = torch.zeros(full.num_entities, dtype=torch.bool)
    held[chosen] = True
    triples = torch.cat([full.train, full.valid, full.test])
    return [full.entities.name(int(i)) for i in chosen.sort().values], triples[
        held[triples[:, 0]] | held[triples[:, 2]]
    ]


def in_vocabulary(full: MultiModalKG, names: list[str]) -> MultiModalKG:
    """The full graph without any triple of the held-out entities, which stay in the vocabulary."""
    held = torch.zeros(full.num_entities, dtype=torch.bool)
    held[torch.tensor([full.entities.id(n) for n in names])] = True

    def kept(triples: torch.Tensor) -> torch.Tensor:
        return triples[~held[triples[:, 0]] & ~held[triples[:, 2]]]

    return MultiModalKG(
        full.name, full.entities, full.relations, kept(full.train), kept(full.valid), kept(full.test), full.modalities
    )


def with_test(kg: MultiModalKG, triples: torch.Tensor) -> MultiModalKG:
    """``kg`` with the held-out triples (in its ids) added to its test split, the rest unchanged."""
    return MultiModalKG(
        kg.name, kg.entities, kg.relations, kg.train, kg.valid, torch.cat([kg.test, triples]), kg.modalities
    )


def renamed(triples: torch.Tensor, source: MultiModalKG, target: MultiModalKG) -> torch.Tensor:
    """Triples of ``source`` in the entity ids of ``target`` (the same names)."""
    ids = torch.tensor([target.entities.id(name) for name in source.entities])
    return torch.stack([ids[triples[:, 0]], triples[:, 1], ids[triples[:, 2]]], 1)


def chance(kg: MultiModalKG, triples: torch.Tensor) -> dict[str, float]:
    """Expected MRR and Hits@10 of a uniformly random ranking of each query's filtered candidates."""
    from mocme.data.kg import ranking_queries

    queries, _, _ = ranking_queries(triples, kg.num_relations)
    candidates = (kg.num_entities - kg.filter_index.count(queries) + 1).double()  # the target and the unknown
    harmonic = torch.tensor([sum(1.0 / k for k in range(1, int(c) + 1)) for c in candidates.tolist()])
    return {
        "mrr": float((harmonic.double() / candidates).mean()),
        "hits_at_10": float((candidates.clamp(max=10) / candidates).mean()),
    }


def scores(model: Any, kg: MultiModalKG, held: int, names: list[str]) -> dict[str, Any]:
    """Metrics of the last ``held`` test triples of ``kg`` (the held-out ones) and of the others, with the
    held-out triples' MRR by the feature modalities their held-out entity has."""
    from mocme.evaluation import side_metrics

    ranks = Evaluator(kg).ranks(model, kg.test)
    count = len(kg.test)
    is_held = torch.arange(2 * count) % count >= count - held  # tail queries first, then head queries

    def metrics(selected: torch.Tensor) -> dict[str, Any]:
        both = side_metrics(ranks.optimistic[selected], ranks.pessimistic[selected], ranks.is_head[selected])["both"]
        realistic = both["realistic"]
        return {
            "mrr": realistic["inverse_harmonic_mean_rank"],
            "hits_at_1": realistic["hits_at_1"],
            "hits_at_10": realistic["hits_at_10"],
            "mean_rank": realistic["arithmetic_mean_rank"],
            "queries": both["count"],
        }

    ids = torch.tensor([kg.entities.id(n) for n in names])
    is_new = torch.zeros(kg.num_entities, dtype=torch.bool)
    is_new[ids] = True
    entity = torch.where(is_new[ranks.entities], ranks.entities, ranks.targets)  # the held-out one of each query
    labels = [" + ".join(n for n, m in kg.modalities.items() if bool(m.mask[e])) for e in entity.tolist()]
    groups = {}
    for label in ("text + visual", "text", "visual"):
        selected = is_held & torch.tensor([x == label for x in labels])
        if selected.any():
            groups[label] = {"mrr": metrics(selected)["mrr"], "queries": int(selected.sum())}
    return {"unseen": metrics(is_held), "seen": metrics(~is_held), "unseen_by_input": groups}


def new_entity(full: MultiModalKG, name: str) -> Any:
    """A held-out entity as a new one: its raw feature vectors, for the modalities it has."""
    from mocme.inductive import NewEntity

    ident = full.entities.id(name)
    return NewEntity(name, features={m: v.features[ident] for m, v in full.modalities.items() if v.mask[ident]})


def train_run(config: RunConfig, kg: MultiModalKG) -> tuple[Any, dict[str, Any], float]:
    from mocme.pipeline import train

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, Path(tmp) / "run", kg=kg)
    return result.model, result.metrics, time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mocme.inductive import add_entities

    torch.set_num_threads(args.threads)
    base = [f"seed={args.seed}", f"training.epochs={args.epochs}", *args.set]
    config = load_config(None, base)
    full = generate(config.dataset.synthetic)
    names, held = split_off(full, args.share, args.seed)
    rows = []

    # MoCME trained without the held-out entities, which are then added from their features.
    without = full.without_entities(names)
    model, metrics, seconds = train_run(config, without)
    extended, graph = add_entities(model, without, [new_entity(full, name) for name in names])
    graph = with_test(graph, renamed(held, full, graph))
    rows.append(
        {
            "variant": "MoCME (structure + text + visual), new entities added after training",
            "seconds": round(seconds, 1),
            "selected_epoch": metrics["selected_epoch"],
            **scores(extended, graph, len(held), names),
        }
    )

    # The held-out entities in the vocabulary during training, in no triple.
    kept = in_vocabulary(full, names)
    for variant, overrides in (
        ("MoCME (structure + text + visual), held-out entities in the vocabulary", []),
        ("TuckER (structure), held-out entities in the vocabulary", ["model.name=tucker"]),
    ):
        model, metrics, seconds = train_run(load_config(None, [*base, *overrides]), kept)
        rows.append(
            {
                "variant": variant,
                "seconds": round(seconds, 1),
                "selected_epoch": metrics["selected_epoch"],
                **scores(model, with_test(kept, held), len(held), names),
            }
        )
    rows.append(
        {
            "variant": "chance (uniformly random ranking)",
            "seen": chance(graph, without.test),
            "unseen": chance(graph, renamed(held, full, graph)),
        }
    )
    return {
        "command": " ".join(["python benchmarks/inductive.py", *sys.argv[1:]]),
        "graph": repr(full),
        "held_out_entities": len(names),
        "held_out_triples": len(held),
        "held_out_with": {
            label: sum(
                1
                for name in names
                if label == " + ".join(m for m in full.modalities if full.modalities[m].mask[full.entities.id(name)])
            )
            for label in ("text + visual", "text", "visual")
        },
        "config": base,
        "threads": args.threads,
        "rows": rows,
    }


def markdown(result: dict[str, Any]) -> str:
    out = [
        "# Inductive link prediction on the synthetic graph",
        "",
        f"`{result['command']}` ({result['threads']} thread). {result['graph']}; "
        f"{result['held_out_entities']} entities held out of training entirely "
        f"({', '.join(f'{v} with {k}' for k, v in result['held_out_with'].items())}), "
        f"with their {result['held_out_triples']} triples. Same config, seed and budget for every row "
        f"({', '.join(result['config'])}); filtered realistic ranks, both directions.",
        "",
        "| variant | held-out triples: MRR | Hits@1 | Hits@10 | MR | queries | remaining test: MRR | Hits@10 "
        "| epoch | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        unseen, seen = row["unseen"], row["seen"]
        cells = [
            row["variant"],
            _number(unseen.get("mrr")),
            _number(unseen.get("hits_at_1")),
            _number(unseen.get("hits_at_10")),
            _number(unseen.get("mean_rank"), 1),
            str(unseen.get("queries", "")),
            _number(seen.get("mrr")),
            _number(seen.get("hits_at_10")),
            str(row.get("selected_epoch", "")),
            str(row.get("seconds", "")),
        ]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "MRR on the held-out triples by the feature modalities the held-out entity has:", ""]
    for row in result["rows"]:
        if row.get("unseen_by_input"):
            groups = row["unseen_by_input"].items()
            out.append(
                f"- {row['variant']}: " + "; ".join(f"{k} {v['mrr']:.4f} ({v['queries']} queries)" for k, v in groups)
            )
    return "\n".join(out) + "\n"


def _number(value: float | None, decimals: int = 4) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--share", type=float, default=0.05, help="Share of the entities held out of training.")
    parser.add_argument("--epochs", type=int, default=50, help="Epoch budget of every variant (the default config's).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the training runs and of the held-out draw.")
    parser.add_argument("--set", action="append", default=[], help="Config override for every run (repeatable).")
    parser.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "inductive")
    args = parser.parse_args()
    result = run(args)
    from mocme.io import to_json, write_text_atomic

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out.with_suffix(".json"), to_json(result, indent=2) + "\n")
    write_text_atomic(args.out.with_suffix(".md"), markdown(result))
    sys.stdout.write(markdown(result))


if __name__ == "__main__":
    main()
