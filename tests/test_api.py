"""The top-level Python API: lazy exports, mocme.train's config forms, and the optional extras."""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

import mocme
from mocme.api import make_config
from mocme.errors import ConfigError
from mocme.evaluation import flatten
from mocme.extras import MissingExtraError, require

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "dataset": {"synthetic": {"num_entities": 100, "num_relations": 3}},
    "model": {"dim": 8, "relation_dim": 4},
    "training": {"epochs": 2, "eval_every": 1, "batch_size": 256},
}


def test_import_mocme_is_light_and_exports_resolve_on_use():
    code = "import sys, mocme; assert 'torch' not in sys.modules, 'torch imported'; print(mocme.__version__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert set(mocme.__all__) == {"__version__", *mocme._EXPORTS}
    for name in mocme.__all__:
        assert getattr(mocme, name) is not None
        assert name in dir(mocme)
    assert mocme.evaluate is __import__("mocme.evaluation", fromlist=["evaluate"]).evaluate
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mocme.nope


def test_every_exported_callable_is_documented_and_typed():
    for name in mocme.__all__:
        value = getattr(mocme, name)
        if name == "__version__":
            continue
        assert inspect.getdoc(value), name
        if inspect.isfunction(value):
            signature = inspect.signature(value)
            assert signature.return_annotation is not inspect.Signature.empty, name
            for parameter in signature.parameters.values():
                if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                    assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name})"


def test_make_config_accepts_every_form_and_merges_sections(tmp_path):
    assert make_config() == mocme.RunConfig()
    from_mapping = make_config({"model": {"dim": 16}}, training={"epochs": 3})
    default_lr = mocme.RunConfig().training.lr
    assert (from_mapping.model.dim, from_mapping.training.epochs, from_mapping.training.lr) == (16, 3, default_lr)
    assert make_config(from_mapping, seed=4).model.dim == 16
    assert make_config(from_mapping, **{"model.dim": 32}).model.dim == 32
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": {"dim": 24, "experts": 2}}))
    from_file = make_config(path, model={"experts": 4})
    assert (from_file.model.dim, from_file.model.experts) == (24, 4)
    read_only = {"training": types.MappingProxyType({"epochs": 3, "lr": 0.5})}  # any Mapping is a section
    for overrides in ({"training": {"epochs": 5}}, {"training.epochs": 5}):
        merged = make_config(read_only, **overrides)
        assert (merged.training.epochs, merged.training.lr) == (5, 0.5)


def test_make_config_errors_are_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'training\.epoch' \(did you mean 'epochs'\?\)"):
        make_config(training={"epoch": 3})
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  dim: 0\n")
    with pytest.raises(ConfigError, match=r"run\.yaml:2: model\.dim"):
        make_config(path)
    with pytest.raises(ConfigError, match=r"keyword arguments: model\.dim"):
        make_config(path, model={"dim": -1})
    with pytest.raises(ConfigError, match="config must be a RunConfig, a mapping or the path of a YAML file, got int"):
        make_config(5)


def test_train_evaluate_predict_and_reload(tmp_path):
    seen = []
    result = mocme.train(TINY, tmp_path / "run", callbacks=[seen.append], seed=1)
    assert [r["epoch"] for r in seen] == [1, 2]
    assert isinstance(result.kg, mocme.MultiModalKG) and isinstance(result.model, mocme.MoCME)
    assert result.directory.load_config().seed == 1
    metrics = mocme.evaluate(result.model, result.kg, "test")
    assert flatten(metrics["both"]) == pytest.approx(flatten(result.metrics["test"]["both"]))
    entity, relation = result.kg.entities.name(0), result.kg.relations.name(0)
    prediction = mocme.predict(result.model, result.kg, entity, relation, top=3, explain=True)
    assert len(prediction.candidates) == 3 and prediction.modality_weights is not None
    config, kg, model = mocme.load_run(tmp_path / "run")
    assert config == result.directory.load_config() and kg.entities == result.kg.entities
    assert flatten(mocme.evaluate(model, kg, "test")["both"]) == pytest.approx(flatten(metrics["both"]))
    resumed = mocme.resume(tmp_path / "run")  # nothing left to train: the same result
    assert flatten(resumed.metrics["test"]["both"]) == pytest.approx(flatten(metrics["both"]))


def test_the_model_can_be_built_directly():
    kg = mocme.load_dataset(None)
    model = mocme.MoCME(kg, mocme.ModelConfig(dim=8, relation_dim=4))
    assert model.score_all(kg.test[:2, :2]).shape == (2, kg.num_entities)


def test_require_names_the_extra_in_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingExtraError) as caught:
        require("optuna", extra="hpo")
    message = str(caught.value)
    assert "pip install 'mocme[hpo]'" in message and "\n" not in message
    assert require("json", extra="none").dumps([]) == "[]"


def test_every_extra_the_code_names_is_declared_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set()
    for path in (REPO / "src" / "mocme").rglob("*.py"):
        named |= set(re.findall(r"""require\(\s*["'][\w.]+["'],\s*(?:extra=)?["'](\w+)["']""", path.read_text()))
    assert named, "no require(...) calls found"
    assert named <= declared, f"extras named in code but not in pyproject.toml: {sorted(named - declared)}"


def test_tied_answers_share_the_mean_position_in_the_list_and_as_target():
    import torch

    from mocme.models import build_model
    from tests.conftest import tiny_kg

    kg = tiny_kg(num_entities=7, with_modality=False)
    torch.manual_seed(0)
    model = build_model(mocme.ModelConfig(name="distmult", dim=8), kg).eval()
    with torch.no_grad():
        model.entity[3] = model.entity[2]  # two answers with one score
    entity, relation = kg.entities.name(0), kg.relations.name(0)
    prediction = mocme.predict(model, kg, entity, relation, top=7)
    ranks = {c.entity: c.rank for c in prediction.candidates}
    e2, e3 = kg.entities.name(2), kg.entities.name(3)
    assert ranks[e2] == ranks[e3] and ranks[e2] % 1 == 0.5
    assert sum(ranks.values()) == 28  # 1 + ... + 7: ties share positions, none is lost
    target = mocme.predict(model, kg, entity, relation, top=1, target=e3).target
    assert target.rank == ranks[e3]


@pytest.mark.parametrize("unified", ["anchored", "convex"])
def test_an_explanation_splits_each_answer_score_over_its_modalities(unified):
    """With the unified decision, the contributions sum to the answer's logit and the driver is the
    largest; the views' weights in e* are what build it (anchored: structure whole)."""
    from mocme.data.synthetic import SyntheticSpec, generate
    from mocme.models import build_model
    from mocme.models.config import ModelConfig

    kg = generate(SyntheticSpec(num_entities=80, num_relations=3))
    config = ModelConfig(name="mocme", interaction="complex", dim=16, unified=unified, joint="unified")
    model = build_model(config, kg)
    entity, relation = kg.entities.name(int(kg.train[0, 0])), kg.relations.name(int(kg.train[0, 1]))
    prediction = mocme.predict(model, kg, entity, relation, top=20, explain=True)
    for c in prediction.candidates:
        parts = {m: v for m, v in c.contributions.items() if v is not None}
        assert math.log(torch.sigmoid(torch.tensor(sum(parts.values()))).item()) == pytest.approx(c.score, abs=1e-5)
        assert c.driver == (max(parts, key=parts.get) if len(parts) > 1 else None)
    weights, alpha = prediction.representation_weights, prediction.modality_weights
    if unified == "anchored" and weights["structure"] is not None:
        assert weights["structure"] == 1.0
        assert all(weights[m] == pytest.approx(alpha[m]) for m in weights if m != "structure" and alpha[m] is not None)
    else:
        assert weights == pytest.approx(alpha)


def test_predicting_for_an_entity_never_trained_warns():
    """An entity in no training triple and without features has an untrained representation."""
    from mocme.data import MultiModalKG, Vocabulary
    from mocme.errors import DataWarning
    from mocme.models import build_model
    from mocme.models.config import ModelConfig

    kg = MultiModalKG(
        "w", Vocabulary(["a", "b", "c", "z"]), Vocabulary(["r"]),
        torch.tensor([[0, 0, 1], [1, 0, 2]]), torch.tensor([[0, 0, 2]]), torch.tensor([[2, 0, 3]]),
    )  # fmt: skip
    model = build_model(ModelConfig(name="complex", dim=4), kg)
    with pytest.warns(DataWarning, match="z is in no training triple and has no features"):
        mocme.predict(model, kg, "z", "r", top=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        mocme.predict(model, kg, "a", "r", top=2)
