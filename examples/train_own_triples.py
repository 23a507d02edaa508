"""Train MoCME on your own graph: TSV triples plus a text file of entity descriptions.

Your graph is a directory of tab-separated name triples, head<TAB>relation<TAB>tail, one file per
split: train.tsv, valid.tsv (or dev.tsv) and test.tsv. The descriptions file has one
name<TAB>text line per entity; entities without a line have no text modality (masked, never
zero-filled). The bundled example is a small geography graph (cities, countries, languages):

    python examples/train_own_triples.py
    python examples/train_own_triples.py --triples my_graph/ --descriptions my_graph/about.tsv --out runs/mine

The descriptions are encoded once with the bundled all-MiniLM-L6-v2 sentence encoder (the 'text'
extra; offline, CPU) into OUT/features/text.safetensors; later runs reuse that file until the
texts or the encoder change. MOCME_EXAMPLE_EPOCHS sets the default of --epochs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import mocme
from mocme.features import extract_text_features

HERE = Path(__file__).resolve().parent / "data" / "geo"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train MoCME on TSV triples plus entity descriptions.")
    parser.add_argument("--triples", type=Path, default=HERE, help="directory of train/valid/test .tsv triples")
    parser.add_argument("--descriptions", type=Path, default=HERE / "descriptions.tsv", help="name<TAB>text lines")
    parser.add_argument("--out", type=Path, default=Path("runs/example-own-graph"), help="output directory")
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("MOCME_EXAMPLE_EPOCHS", 100)))
    args = parser.parse_args(argv)

    # 1. The graph alone: names become ids, each split is checked line by line.
    kg = mocme.load_dataset(str(args.triples))
    print(f"loaded {kg!r}")

    # 2. Text features from the descriptions, cached: recomputed only when the texts or encoder change.
    text = extract_text_features(kg, args.out / "features" / "text.safetensors", text_file=args.descriptions)
    info = text.info
    state = "reused" if text.cached else f"encoded in {info['seconds']} s"
    print(f"text features: {info['available']} of {info['entities']} entities, {info['dimension']}-d ({state})")

    # 3. The run config names the graph and attaches the feature file as the modality 'text', so the
    #    run directory records everything needed to reload it.
    config = {
        "dataset": {"name": str(args.triples), "features": {"text": {"path": str(text.path)}}},
        "model": {"dim": 32, "relation_dim": 16},
        "training": {"epochs": args.epochs, "eval_every": max(1, args.epochs // 10), "batch_size": 128},
    }
    result = mocme.train(config, args.out / "run", overwrite=True)
    test = result.metrics["test"]["both"]["realistic"]
    print(f"test MRR {test['inverse_harmonic_mean_rank']:.4f}, Hits@3 {test['hits_at_3']:.4f}")

    # 4. Predictions by name: where is the first test triple's head? (with what drove each answer)
    h, r, _ = result.kg.test[0].tolist()
    head, relation = result.kg.entities.name(h), result.kg.relations.name(r)
    prediction = mocme.predict(result.model, result.kg, head, relation, top=3, explain=True)
    answers = ", ".join(f"{a.entity} ({a.driver})" for a in prediction.candidates)
    print(f"({head}, {relation}, ?): {answers}")


if __name__ == "__main__":
    main()
