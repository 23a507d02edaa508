"""Training: every negative/loss mode runs, resume is exact, numerical guards, modality weights move."""

from __future__ import annotations

import json

import pytest
import torch

from mocme import pipeline
from mocme.config import validate_config
from mocme.data import generate
from mocme.data.synthetic import SyntheticModality, SyntheticSpec
from mocme.errors import DataWarning, NumericalError
from mocme.models import ModelConfig, build_model
from mocme.models.mocme import MoCME
from mocme.training.config import TrainingConfig
from mocme.training.trainer import Trainer
from tests.conftest import small_run_config, synthetic_graph


def tiny_config(**training):
    return small_run_config(seed=3, num_entities=150, dim=12, epochs=4, batch_size=64, num_negatives=16, **training)


@pytest.mark.parametrize(
    "training",
    [
        {"negatives": "egns"},
        {"negatives": "egns", "pool": "all"},
        {"negatives": "egns", "egns": {"selection": "topk", "keep": 4}},
        {"negatives": "egns", "egns": {"selection": "sample", "keep": 4}},
        {"negatives": "uniform"},
        {"negatives": "bernoulli"},
        {"negatives": "self_adversarial"},
        {"negatives": "k_vs_all", "label_smoothing": 0.1},
        {"negatives": "k_vs_all", "k_vs_all_average": "queries"},
        {"negatives": "one_vs_all", "optimizer": "adagrad", "regularizer": "n3", "regularizer_weight": 0.01},
        {"negatives": "one_vs_all", "mask_known": True, "regularizer": "dura", "regularizer_weight": 0.01},
        {"negatives": "one_vs_all", "pool": "all", "warmup_epochs": 2, "schedule": "cosine"},
        {"optimizer": "adamw", "schedule": "cosine", "grad_clip": 1.0},
        {"schedule": "plateau"},
        {"schedule": "step", "step_size": 1},
    ],
    ids=lambda t: "-".join(f"{k}={v}" for k, v in t.items()),
)
def test_every_training_mode_runs_and_writes_a_result(tmp_path, training):
    result = pipeline.train(tiny_config(**training), tmp_path / "run")
    trace = result.directory.trace()
    assert len(trace) == 4
    assert all(r["loss"] > 0 for r in trace)
    assert {"structure", "text", "visual", "joint"} <= set(trace[0]["losses"])
    assert result.metrics["test"]["both"]["count"] == 2 * len(result.kg.test)


def _interrupt_after(monkeypatch, completed_epochs: int):
    original = Trainer.train_epoch

    def train_epoch(self, epoch):
        if epoch == completed_epochs:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)


@pytest.mark.parametrize("negatives", ["egns", "k_vs_all"])
def test_resume_after_a_kill_ends_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch, negatives):
    config = tiny_config(negatives=negatives, schedule="cosine", egns={"warmup_epochs": 1})
    whole = pipeline.train(config, tmp_path / "whole")

    with monkeypatch.context() as patch:
        _interrupt_after(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            pipeline.train(config, tmp_path / "killed")
    resumed = pipeline.resume(tmp_path / "killed")

    assert resumed.metrics["valid"] == whole.metrics["valid"]
    assert resumed.metrics["test"] == whole.metrics["test"]
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.directory.trace()]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.directory.trace()] == strip
    metadata = json.loads((tmp_path / "killed" / "metadata.json").read_text())
    assert [part["epoch"] for part in metadata["resumes"]] == [2]  # where the wall-clock's second part began
    assert metadata["resumes"][0]["hardware"]["cpu"] == metadata["hardware"]["cpu"]
    assert "resumes" not in json.loads((tmp_path / "whole" / "metadata.json").read_text())


def test_same_seed_is_bit_identical_and_other_seeds_differ(tmp_path):
    a = pipeline.train(tiny_config(), tmp_path / "a")
    b = pipeline.train(tiny_config(), tmp_path / "b")
    c = pipeline.train(tiny_config().model_copy(update={"seed": 4}), tmp_path / "c")
    assert json.dumps(a.metrics["test"]) == json.dumps(b.metrics["test"])
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    )
    assert not all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values(), strict=True)
    )


def test_non_finite_loss_stops_with_the_epoch_and_head(tmp_path, monkeypatch):
    config = tiny_config()
    original = MoCME.scorer_scores

    def poisoned(self, queries, candidates=None):
        heads = original(self, queries, candidates)
        heads["text"] = heads["text"]._replace(scores=heads["text"].scores * float("nan"))
        return heads

    monkeypatch.setattr(MoCME, "scorer_scores", poisoned)
    with pytest.raises(NumericalError, match=r"epoch 1: the loss of scorer 'text' is nan"):
        pipeline.train(config, tmp_path / "run")


def test_inter_modal_weights_move_away_from_a_noise_modality():
    spec = SyntheticSpec(
        num_entities=400,
        num_relations=4,
        triples_per_entity=8,
        modalities={
            "signal": SyntheticModality(factors=8, dim=16, noise=0.2, missing=0.0),
            "noise": SyntheticModality(factors=0, dim=16, missing=0.0),
        },
    )
    kg = generate(spec)
    config = validate_config(
        {
            "model": {"dim": 16, "relation_dim": 8, "dropout": 0.0},
            "training": {"epochs": 12, "batch_size": 128, "lr": 0.01, "eval_every": 100},
        }
    )
    _, model = pipeline.build(config, kg)
    ids = torch.arange(kg.num_entities)

    def mean_alpha() -> torch.Tensor:
        with torch.no_grad():
            return model.eval().encode(ids).alpha.mean(0)

    before = mean_alpha()
    Trainer(model, kg, config.training, seed=0).fit()
    after = mean_alpha()
    signal, noise = model.modalities.index("signal"), model.modalities.index("noise")
    assert after[noise] < before[noise]
    # A gap of 0.52 (0.63 against 0.10, from 0.33 against 0.32); with the inter-modal fusion's
    # parameters frozen the intra-modal side alone opens 0.29, so this needs the inter-modal weights.
    assert after[signal] - after[noise] > 0.4


def test_mocme_beats_structure_only_models_on_the_synthetic_graph(tmp_path):
    """Same graph, budget and seed: the planted text/visual signal must show in validation MRR."""

    def valid_mrr(name: str, **sections) -> float:
        config = validate_config(
            {
                "dataset": {"synthetic": {"num_entities": 400}, **sections.get("dataset", {})},
                "model": {"dim": 32, **sections.get("model", {})},
                "training": {"epochs": 20, "eval_every": 5},
            }
        )
        metrics = pipeline.train(config, tmp_path / name).metrics
        return metrics["valid"]["both"]["realistic"]["inverse_harmonic_mean_rank"]

    full = valid_mrr("full")
    without_features = valid_mrr("structure", dataset={"modalities": []})
    tucker = valid_mrr("tucker", model={"name": "tucker"})
    assert full > 1.4 * without_features and full - without_features > 0.03
    assert full > 1.4 * tucker and full - tucker > 0.03


def test_warm_up_scales_the_learning_rate_step_by_step_and_leaves_the_schedule_alone(tmp_path, monkeypatch):
    seen = []
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    config = small_run_config(
        seed=3, num_entities=150, dim=12, epochs=3, batch_size=256, num_negatives=16, lr=0.01, warmup_epochs=2
    )
    result = pipeline.train(config, tmp_path / "run")
    steps = len(seen) // 3
    assert seen[:steps] == pytest.approx([0.01 * (i + 1) / (2 * steps) for i in range(steps)])
    assert seen[2 * steps - 1] == pytest.approx(0.01) and seen[2 * steps :] == [0.01] * steps
    assert [r["lr"] for r in result.directory.trace()] == [0.01] * 3


def test_an_empty_test_split_trains_and_says_there_is_nothing_to_score(tmp_path):
    config = small_run_config(seed=0, num_entities=60, dim=8, epochs=1, batch_size=64, num_negatives=4).model_copy(
        deep=True
    )
    config.dataset.synthetic.test_fraction = 0.0
    with pytest.warns(DataWarning, match="the test split is empty; there is no test split to score"):
        result = pipeline.train(config, tmp_path / "run")
    assert len(result.kg.test) == 0
    assert "test" not in result.metrics and "valid" in result.metrics


STRONG_RECIPE = {
    "epochs": 12,
    "eval_every": 4,
    "batch_size": 128,
    "optimizer": "adagrad",
    "lr": 0.1,
    "negatives": "one_vs_all",
    "regularizer": "n3",
    "regularizer_weight": 0.01,
}
RECIPE_MOCME = {"structure_expert": "residual", "unified": "anchored", "modality_scorers": False, "joint": "unified"}


def strong_recipe_mrr(tmp_path, name: str, model: dict, dataset: dict | None = None, **training) -> tuple[float, dict]:
    config = validate_config(
        {
            "seed": 0,
            "dataset": {"synthetic": {"num_entities": 300}, **(dataset or {})},
            "model": {"dim": 32, "dropout": 0.0, "init_scale": 1e-3, **model},
            "training": {**STRONG_RECIPE, **training},
        }
    )
    result = pipeline.train(config, tmp_path / name)
    curve = [r["valid"]["both.realistic.inverse_harmonic_mean_rank"] for r in result.directory.trace() if "valid" in r]
    return result.metrics["valid"]["both"]["realistic"]["inverse_harmonic_mean_rank"], {"curve": curve}


def test_structure_only_mocme_tracks_its_structural_scorer_on_the_strong_recipe(tmp_path):
    """Residual structural experts start as the embedding: structure-only MoCME is ComplEx-N3 plus a low-rank term.

    On a graph whose structure the baseline clearly learns (well above a ranker that knows only how
    often each entity answers each relation), so that tracking it means learning as much.
    """
    from mocme.data import load_dataset
    from mocme.evaluation import RelationPopularity, evaluate

    learnable = {"num_entities": 200, "structure_factors": 8, "triples_per_entity": 30, "modalities": {}}
    dataset = {"modalities": [], "synthetic": learnable}
    baseline, base_curve = strong_recipe_mrr(tmp_path, "complex", {"name": "complex"}, dataset)
    mocme, mocme_curve = strong_recipe_mrr(tmp_path, "mocme", {"interaction": "complex", **RECIPE_MOCME}, dataset)
    kg = load_dataset(validate_config({"dataset": dataset}).dataset)
    popular = evaluate(RelationPopularity(kg), kg, "valid")["both"]["realistic"]
    assert baseline > popular["inverse_harmonic_mean_rank"] + 0.05, (baseline, popular)
    assert mocme >= baseline - 0.01, (mocme_curve, base_curve)
    for ours, theirs in zip(mocme_curve["curve"], base_curve["curve"], strict=True):
        assert ours >= theirs - 0.02, (mocme_curve, base_curve)  # epoch for epoch


def test_mocme_with_features_beats_its_structural_scorer_on_the_strong_recipe(tmp_path):
    baseline, _ = strong_recipe_mrr(tmp_path, "complex", {"name": "complex"}, {"modalities": []})
    mocme, _ = strong_recipe_mrr(
        tmp_path,
        "mocme",
        {"interaction": "complex", **RECIPE_MOCME},
        negatives="egns",
        pool="all",
        egns={"loss": "softmax", "warmup_epochs": 2, "temperature_start": 2.0, "temperature_end": 0.5},
    )
    assert mocme > baseline + 0.03, (mocme, baseline)


def test_module_lr_gives_the_non_embedding_parameters_their_own_learning_rate():
    from mocme.training.trainer import _optimizer, is_embedding

    kg = synthetic_graph(60)
    model = build_model(ModelConfig(name="mocme", dim=8, interaction="complex"), kg)
    optimizer = _optimizer(model, TrainingConfig(optimizer="adagrad", lr=0.1, module_lr=0.002))
    embeddings, modules = optimizer.param_groups
    assert (embeddings["lr"], modules["lr"]) == (0.1, 0.002)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in embeddings["params"]} == {"entity", "scorers.joint.relation"} | {
        f"scorers.{m}.relation" for m in model.scorer_names if m != "joint"
    }
    assert any(n.startswith("experts.") for n in (names[id(p)] for p in modules["params"]))
    assert not is_embedding("experts.text.first.weight") and is_embedding("interaction.relation")
    assert len(_optimizer(model, TrainingConfig(optimizer="adagrad")).param_groups) == 1
    rotate = build_model(ModelConfig(name="rotate", dim=8), kg)  # RotatE's relations are phases
    embeddings, _ = _optimizer(rotate, TrainingConfig(optimizer="adagrad", lr=0.1, module_lr=0.002)).param_groups
    assert {n for n, p in rotate.named_parameters() if any(p is q for q in embeddings["params"])} == {
        "entity",
        "interaction.phase",
    }


def test_each_torchrun_process_draws_its_own_dropout_and_rank_0_draws_a_single_processs(monkeypatch):
    """The global generator (dropout) is seeded per rank; rank 0's seed is a single process's.
    (The queries' order comes from a generator of the epoch's seed alone; the 2-process run in
    tests/test_distributed.py checks that both processes share it.)"""
    from mocme.training.distributed import Distributed

    kg = synthetic_graph(60)
    model = build_model(ModelConfig(dim=8, relation_dim=4), kg)
    config = TrainingConfig(epochs=1, batch_size=32)

    class Seeded(Exception):
        pass

    def first_global_seed(distributed):
        seeds = []

        def record(seed):
            seeds.append(seed)
            raise Seeded

        monkeypatch.setattr(torch, "manual_seed", record)
        with pytest.raises(Seeded):
            Trainer(model, kg, config, seed=3, distributed=distributed).train_epoch(2)
        monkeypatch.undo()
        return seeds[0]

    alone = first_global_seed(None)
    ranks = [first_global_seed(Distributed(rank, 2, rank)) for rank in (0, 1)]
    assert ranks[0] == alone and ranks[1] != alone
