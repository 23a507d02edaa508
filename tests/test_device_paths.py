"""The code paths a CUDA run takes, exercised on the CPU: gathered (dense) per-row scoring, pinned
host memory, bf16 mixed precision and torch.compile; all off by default on the CPU."""

from __future__ import annotations

import functools

import pytest
import torch

from mocme import pipeline
from mocme.config import RunConfig
from mocme.errors import MocmeError
from mocme.models import MODELS, ModelConfig, build_model
from mocme.models import gathered as gathered_module
from mocme.models.dropout import Dropout
from mocme.training.config import TrainingConfig
from mocme.training.trainer import Trainer
from tests.conftest import small_run_config, synthetic_graph


def small_graph():
    return synthetic_graph(60)


def tiny_config(**training):
    return small_run_config(seed=2, num_entities=120, dim=8, epochs=2, batch_size=32, num_negatives=8, **training)


def test_everything_is_off_by_default_on_the_cpu():
    config = RunConfig()
    assert config.device == "cpu"
    assert config.training.precision == "fp32" and not config.training.compile
    kg = small_graph()
    trainer = Trainer(build_model(ModelConfig(dim=8, relation_dim=4), kg), kg, config.training)
    assert not trainer.pin_memory
    assert pipeline.resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(MocmeError, match="no CUDA GPU"):
            pipeline.resolve_device("cuda")


@pytest.mark.parametrize("name", MODELS)
def test_gathered_scoring_matches_the_sparse_cpu_kernels(name, monkeypatch):
    kg = small_graph()
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, dim=8, relation_dim=4, dropout=0.0), kg)
    queries = kg.train[:16, :2]
    candidates = torch.randint(kg.num_entities, (16, 9), generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr("mocme.models.base.GEMM_OVER_GATHER", 0)  # always score per row

    def scores_and_grads():
        model.zero_grad(set_to_none=True)
        scores = model.score_all(queries, candidates)
        scores.square().sum().backward()
        return scores.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    sparse_scores, sparse_grads = scores_and_grads()
    monkeypatch.setattr(gathered_module, "SPARSE_ON_CPU", False)  # the CUDA path
    dense_scores, dense_grads = scores_and_grads()
    torch.testing.assert_close(sparse_scores, dense_scores, rtol=1e-5, atol=1e-5)
    assert sparse_grads.keys() == dense_grads.keys()
    for key in sparse_grads:
        torch.testing.assert_close(sparse_grads[key], dense_grads[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize(
    "training",
    [{"negatives": "egns"}, {"negatives": "k_vs_all"}, {"negatives": "egns", "pool": "all"}],
    ids=["egns", "k_vs_all", "egns-all"],
)
def test_bf16_mixed_precision_trains_close_to_fp32(tmp_path, training):
    fp32 = pipeline.train(tiny_config(**training), tmp_path / "fp32")
    bf16 = pipeline.train(tiny_config(precision="bf16", **training), tmp_path / "bf16")
    for a, b in zip(fp32.directory.trace(), bf16.directory.trace(), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=0.05)
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # weights stay float32


def test_pinned_host_memory_path(monkeypatch):
    kg = small_graph()
    config = TrainingConfig(batch_size=16, num_negatives=4)
    trainer = Trainer(build_model(ModelConfig(dim=8, relation_dim=4), kg), kg, config)
    pinned = []

    def pin_memory(self):
        pinned.append(self.shape)
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)  # CPU-only builds cannot pin
    trainer.pin_memory = True
    record = trainer.train_epoch(0)
    assert pinned and record["loss"] > 0


@pytest.mark.parametrize("name", ["distmult", "mocme"])
def test_compile_switch_trains(tmp_path, monkeypatch, name):
    # The eager backend keeps the test fast: Dynamo traces the scoring functions without code generation.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    config = tiny_config(compile=True).model_copy(deep=True)
    config.model.name = name
    config.training.epochs = 1
    result = pipeline.train(config, tmp_path / "run")
    assert result.directory.trace()[0]["loss"] > 0


def test_cpu_dropout_keeps_one_minus_p_scales_and_follows_the_seed():
    layer = Dropout(0.3).train()
    torch.manual_seed(0)
    x = torch.ones(400_000, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert float(kept.float().mean()) == pytest.approx(0.7, abs=3e-3)
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient: the same mask and scale
    torch.manual_seed(0)
    assert torch.equal(layer(x.detach()), y.detach())
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_one_device_resolver_for_training_evaluation_and_features():
    from mocme.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("gpu", "cuda:x", "CPU", "cuda:"):
        with pytest.raises(MocmeError, match="unknown device"):
            resolve_device(name)
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0"):
            with pytest.raises(MocmeError, match="no CUDA GPU"):
                resolve_device(name)
    else:
        with pytest.raises(MocmeError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name", ["transe", "rotate"])
def test_distance_scores_under_bf16_autocast_equal_float32(name):
    """``|q|² + |t|² - 2 q·t`` nearly cancels for a good answer; in bfloat16 it lost the distance."""
    from mocme.models.interactions import INTERACTIONS

    torch.manual_seed(0)
    interaction = INTERACTIONS[name](200, 4)
    table = torch.randn(64, 200) * 3
    q = interaction.query(table[:32], torch.randint(4, (32,)))
    near = q.detach() + 0.02 * torch.randn(32, 200)  # each query's own good answer
    candidates = torch.cat([table, near])
    index = torch.arange(64, 96).unsqueeze(1)
    exact_all, exact_gathered = interaction.score_all(q, candidates), interaction.score_gathered(q, candidates, index)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        all_scores = interaction.score_all(q, candidates)
        gathered = interaction.score_gathered(q, candidates, index)
    torch.testing.assert_close(all_scores, exact_all, rtol=0, atol=1e-4)
    torch.testing.assert_close(gathered, exact_gathered, rtol=0, atol=1e-4)
