"""Every model agrees with itself, gradients are right, and missing modalities are never made up."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from mocme.config import load_config
from mocme.data import generate
from mocme.data.synthetic import SyntheticModality, SyntheticSpec
from mocme.errors import ConfigError, RenamedWarning
from mocme.models import INTERACTIONS, MODELS, MoCME, ModelConfig, build_model
from mocme.models import base as model_base
from mocme.models.mocme import STRUCTURE, SingleScorer
from tests.conftest import tiny_kg


def small_graph():
    spec = SyntheticSpec(
        num_entities=60,
        num_relations=3,
        modalities={
            "text": SyntheticModality(factors=4, dim=6, missing=0.3),
            "visual": SyntheticModality(factors=4, dim=5, missing=0.5),
        },
    )
    return generate(spec)


MOCME_VARIANTS = {
    "default": {},
    "attention": {"fusion": "attention"},
    "mean": {"fusion": "mean"},
    "no-intra": {"intra": False},
    "no-inter": {"inter": False},
    "mlp-experts": {"expert": "mlp", "experts": 2},
    "one-expert": {"experts": 1},
    "confidence": {"joint": "confidence"},
    "unified": {"joint": "unified"},
    "no-modality-heads": {"modality_scorers": False},
    "distmult-heads": {"interaction": "distmult"},
    "rotate-heads": {"interaction": "rotate"},
}


def model_cases():
    cases = [(name, {}) for name in MODELS if name != "mocme"]
    cases += [("mocme", overrides) for overrides in MOCME_VARIANTS.values()]
    return cases


CASE_IDS = [name for name in MODELS if name != "mocme"] + [f"mocme-{v}" for v in MOCME_VARIANTS]


def make(name: str, overrides: dict, kg=None):
    kg = kg or small_graph()
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, dim=8, relation_dim=4, dropout=0.0, **overrides), kg)
    return kg, model.eval()


def test_every_model_has_a_case():
    covered = {name for name, _ in model_cases()}
    assert covered == set(MODELS)
    assert set(INTERACTIONS) <= covered


@pytest.mark.parametrize(("name", "overrides"), model_cases(), ids=CASE_IDS)
def test_score_equals_score_all_and_explicit_candidates(name, overrides, monkeypatch):
    kg, model = make(name, overrides)
    triples = torch.cat([kg.train[:20], kg.train[:20, [2, 1, 0]] + torch.tensor([0, kg.num_relations, 0])])
    queries, tails = triples[:, :2], triples[:, 2]
    with torch.no_grad():
        full = model.score_all(queries)
        assert full.shape == (len(triples), kg.num_entities)
        rows = torch.arange(len(triples))
        torch.testing.assert_close(model.score(triples), full[rows, tails], rtol=1e-5, atol=1e-5)
        per_row = torch.randint(kg.num_entities, (len(triples), 7), generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(model.score_all(queries, per_row), full.gather(1, per_row), rtol=1e-5, atol=1e-5)
        monkeypatch.setattr(model_base, "GEMM_OVER_GATHER", 0)  # force the gathered (B, k, d) path
        torch.testing.assert_close(model.score_all(queries, per_row), full.gather(1, per_row), rtol=1e-5, atol=1e-5)
        shared = torch.tensor([3, 0, 5, 5, 17])
        torch.testing.assert_close(model.score_all(queries, shared), full[:, shared], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.score_all(queries, slice(10, 30)), full[:, 10:30], rtol=1e-5, atol=1e-5)
        with model.precomputed():
            torch.testing.assert_close(model.score_all(queries), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("interaction", list(INTERACTIONS))
def test_interaction_gradients_in_double_precision(interaction):
    torch.manual_seed(0)
    kg = tiny_kg(num_entities=5, with_modality=False)
    config = ModelConfig(name=interaction, dim=4, relation_dim=2, dropout=0.0)
    model = build_model(config, kg).double().eval()
    queries = torch.tensor([[0, 1], [2, 4], [3, 0]])
    candidates = torch.tensor([[1, 2], [0, 4], [3, 3]])
    names = [n for n, _ in model.named_parameters()]

    def all_scores(*values):
        replaced = dict(zip(names, values, strict=True))
        full = torch.func.functional_call(model, replaced, (queries,))
        pairs = torch.func.functional_call(model, replaced, (queries, candidates))
        return full, pairs

    values = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    assert torch.autograd.gradcheck(all_scores, values)


def test_mocme_gradients_in_double_precision():
    kg = small_graph()
    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=4, relation_dim=2, dropout=0.0, experts=2), kg).double().eval()
    for name in model.modalities[1:]:
        buffer = getattr(model, f"features_{name}")
        setattr(model, f"features_{name}", buffer.double())
    queries = torch.tensor([[0, 1], [5, 4]])
    names = [n for n, _ in model.named_parameters()]
    chosen = ["entity", "inter.query", "intra.text.gate.weight", "scorers.joint.core", "experts.visual.first.weight"]

    candidates = torch.tensor([[1, 2, 3], [7, 8, 9]])

    def scores(*values):
        return torch.func.functional_call(model, dict(zip(chosen, values, strict=True)), (queries, candidates))

    assert set(chosen) <= set(names)
    values = tuple(dict(model.named_parameters())[n].detach().clone().requires_grad_() for n in chosen)
    assert torch.autograd.gradcheck(scores, values, atol=1e-5)


def test_missing_modalities_get_exactly_zero_weight():
    kg, model = make("mocme", {})
    ids = torch.arange(kg.num_entities)
    with torch.no_grad():
        encoding = model.encode(ids, torch.full_like(ids, 1))
    for m, name in enumerate(model.modalities):
        if name == STRUCTURE:
            continue
        missing = ~kg.modalities[name].mask
        assert missing.any()
        assert torch.all(encoding.alpha[missing, m] == 0)
        assert torch.all(encoding.alpha[~missing, m] > 0)
    torch.testing.assert_close(encoding.alpha.sum(1), torch.ones(kg.num_entities))
    structure_only = ~torch.stack([kg.modalities[n].mask for n in model.modalities[1:]], 1).any(1)
    assert structure_only.any()
    assert torch.all(encoding.alpha[structure_only, 0] == 1)


def test_modality_heads_are_undefined_where_a_modality_is_missing():
    kg, model = make("mocme", {})
    text_mask = kg.modalities["text"].mask
    query_without_text = int((~text_mask).nonzero()[0])
    with torch.no_grad():
        heads = model.scorer_scores(torch.tensor([[query_without_text, 0]]))
    assert heads["text"].available is not None and not heads["text"].available.any()
    assert heads["structure"].available is None
    with torch.no_grad():
        joint = model.score_all(torch.tensor([[query_without_text, 0]]))
    assert torch.isfinite(joint).all()


def test_a_single_head_scores_like_that_head_and_is_minus_inf_where_undefined():
    kg, model = make("mocme", {})
    queries = kg.train[:12, :2]
    with torch.no_grad():
        heads = model.scorer_scores(queries)
        for name in model.scorer_names:
            alone = SingleScorer(model, name).score_all(queries)
            defined = heads[name].available
            if defined is None:
                torch.testing.assert_close(alone, heads[name].scores)
                continue
            defined = defined.expand_as(alone)
            torch.testing.assert_close(alone[defined], heads[name].scores[defined])
            assert torch.all(alone[~defined] == -torch.inf)
    with pytest.raises(ValueError, match="unknown scorer"):
        SingleScorer(model, "audio")


def test_the_unified_decision_ranks_by_the_unified_head_alone():
    kg, model = make("mocme", {"joint": "unified"})
    queries = kg.train[:12, :2]
    with torch.no_grad():
        expected = torch.nn.functional.logsigmoid(model.scorer_scores(queries)["joint"].scores)
        torch.testing.assert_close(model.score_all(queries), expected)


def test_features_of_unavailable_rows_never_reach_the_model():
    kg = small_graph()
    poisoned = small_graph()
    text = poisoned.modalities["text"]
    text.features[~text.mask] = 1e6  # Modality zeroes them; the model must not see them either way
    torch.manual_seed(0)
    a = build_model(ModelConfig(dim=8, relation_dim=4, dropout=0.0), kg).eval()
    torch.manual_seed(0)
    b = build_model(ModelConfig(dim=8, relation_dim=4, dropout=0.0), poisoned).eval()
    q = kg.train[:10, :2]
    with torch.no_grad():
        torch.testing.assert_close(a.score_all(q), b.score_all(q))


def test_mocme_uses_every_modality_of_the_dataset():
    kg, model = make("mocme", {})
    assert model.modalities == [STRUCTURE, *kg.modalities]
    assert isinstance(model, MoCME)
    assert set(model.scorers) == {STRUCTURE, *kg.modalities, "joint"}
    _, structure_only = make("mocme", {}, kg.with_modalities([]))
    assert structure_only.modalities == [STRUCTURE]


def test_diversity_penalty_only_when_asked():
    kg, model = make("mocme", {"diversity": 0.5})
    model.train()
    model.score_all(kg.train[:8, :2], kg.train[:8, 2:])
    penalty = model.regularization()
    assert penalty.requires_grad and float(penalty.detach()) > 0
    assert float(model.regularization()) == 0  # consumed
    _, plain = make("mocme", {})
    plain.train()
    plain.score_all(kg.train[:8, :2], kg.train[:8, 2:])
    assert not plain.regularization().requires_grad


def test_diversity_penalty_is_the_mean_over_a_steps_encodings_not_their_sum():
    from mocme.models.fusion import view_redundancy

    kg, model = make("mocme", {"diversity": 0.5})
    model.train()
    queries, candidates = torch.arange(8), torch.arange(kg.num_entities)

    def redundancy(ids):  # mean over modalities of the views' redundancy, over the entities that have each
        available = model._available(ids)
        views = model.entity_parts(ids, dropout=False).views
        return torch.stack([view_redundancy(v, available[:, m]) for m, v in enumerate(views)]).mean()

    with torch.no_grad():
        expected = 0.5 * (redundancy(queries) + redundancy(candidates)) / 2
        model.regularization()
        model.encode(queries, dropout=False)
        model.encode(candidates, dropout=False)
        torch.testing.assert_close(model.regularization(), expected)


def test_the_old_modality_heads_key_is_read_as_modality_scorers():
    with pytest.warns(RenamedWarning, match=r"model\.modality_heads is now model\.modality_scorers"):
        config = load_config(overrides=["model.modality_heads=false"])
    assert config.model.modality_scorers is False
    with pytest.raises(ConfigError, match="modality_scorers only"):
        load_config(overrides=["model.modality_heads=false", "model.modality_scorers=false"])


def test_checkpoints_from_before_the_rename_load():
    kg = tiny_kg()
    model = build_model(ModelConfig(dim=8, relation_dim=4, attention_dim=4, projection_dim=4), kg)
    old = {key.replace("scorers.", "heads.", 1): value for key, value in model.state_dict().items()}
    fresh = build_model(ModelConfig(dim=8, relation_dim=4, attention_dim=4, projection_dim=4), kg)
    fresh.load_state_dict(old)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def _with_unseen_entity():
    """``small_graph`` with one text-bearing entity removed from every training triple."""
    kg = small_graph()
    text = kg.modalities["text"].mask
    counts = torch.bincount(torch.cat([kg.train[:, 0], kg.train[:, 2]]), minlength=kg.num_entities)
    entity = int(((counts > 0) & text).nonzero()[0])
    keep = (kg.train[:, 0] != entity) & (kg.train[:, 2] != entity)
    return dataclasses.replace(kg, train=kg.train[keep]), entity


@pytest.mark.parametrize("unseen_structure", ["mask", "keep"])
def test_an_entity_unseen_in_training_is_represented_by_its_other_modalities(unseen_structure):
    kg, entity = _with_unseen_entity()
    _, model = make("mocme", {"unseen_structure": unseen_structure}, kg)
    ids = torch.arange(kg.num_entities)
    with torch.no_grad():
        encoding = model.encode(ids, torch.zeros_like(ids))
        scorers = model.scorer_scores(torch.tensor([[0, 0], [entity, 0]]))
    structure_only = ~(kg.modalities["text"].mask | kg.modalities["visual"].mask)
    assert structure_only.any()
    assert torch.all(encoding.alpha[structure_only, 0] == 1)  # nothing else to represent them
    if unseen_structure == "keep":
        assert encoding.alpha[entity, 0] > 0
        assert scorers[STRUCTURE].available is None
        return
    assert encoding.alpha[entity, 0] == 0
    torch.testing.assert_close(encoding.alpha[entity, 1:].sum(), torch.tensor(1.0))
    available = scorers[STRUCTURE].available
    assert not available[1].any() and not available[:, entity].any()  # undefined as query and as answer
    assert available[0, ids != entity].all()


def two_modality_graph():
    spec = SyntheticSpec(
        num_entities=40, num_relations=3, modalities={"text": SyntheticModality(factors=4, dim=6, missing=0.3)}
    )
    return generate(spec)


def test_inter_modal_complementarity_carries_information_with_two_modalities():
    kg = two_modality_graph()
    ids = torch.arange(kg.num_entities)
    alphas = {}
    for inter in (True, False):
        _, model = make("mocme", {"inter": inter}, kg)
        with torch.no_grad():
            alphas[inter] = model.encode(ids, torch.zeros_like(ids)).alpha
    both = kg.modalities["text"].mask
    assert not torch.allclose(alphas[True][both], alphas[False][both])  # the term does not cancel for M = 2
    torch.testing.assert_close(alphas[True][~both], alphas[False][~both])  # structure alone: α = (1, 0)
    _, model = make("mocme", {}, kg)
    model.train()
    model.encode(ids, torch.zeros_like(ids)).joint.pow(2).sum().backward()
    assert model.inter.projection.weight.grad.abs().sum() > 0  # P is trained


def test_inter_modal_complementarity_is_what_a_modality_adds_beyond_the_others():
    from mocme.models.fusion import orthogonal_complementarity

    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    projected = torch.stack([a, b, a + b])  # (M=3, n=1, p=2); the third lies in the span of the others
    available = torch.tensor([[True, True, False]])
    c = orthogonal_complementarity(projected, available)
    mean_norm = (3 + 2**0.5) / 2
    # |a ⊥ b| = |a| sin 45° and |b ⊥ a| = |b| sin 45°: different for a pair (1 - cos is not)
    torch.testing.assert_close(c, torch.tensor([[3 * 0.5**0.5 / mean_norm, 1.0 / mean_norm, 0.0]]))
    c = orthogonal_complementarity(projected, torch.ones(1, 3, dtype=torch.bool))
    assert c[0].max() < 1e-2  # in two dimensions nothing adds anything beyond the other two


def test_candidates_with_and_without_a_modality_are_scored_on_one_scale():
    kg = two_modality_graph()
    _, model = make("mocme", {"joint": "equal"}, kg)
    text = kg.modalities["text"].mask
    queries = torch.tensor([[int(text.nonzero()[0]), 0]])
    with torch.no_grad():
        scorers = model.scorer_scores(queries)
        decision = model.score_all(queries)
    terms = [F.logsigmoid(scorers[STRUCTURE].scores), F.logsigmoid(scorers["joint"].scores)]
    text_term = torch.where(text, F.logsigmoid(scorers["text"].scores), terms[1])
    expected = torch.logsumexp(torch.stack([*terms, text_term]), 0) - math.log(3)
    torch.testing.assert_close(decision, expected)


@pytest.mark.parametrize("kind, d_in", [("residual", 8), ("shared", 6)])
def test_factorised_views_equal_the_dense_views_in_value_and_gradient(kind, d_in):
    from mocme.models.fusion import DenseViews, ModalityExperts, view_complementarity

    torch.manual_seed(0)
    experts = ModalityExperts(d_in, 8, experts=3, kind=kind, rank=2).double()
    with torch.no_grad():
        experts.up.normal_()  # views that differ from their shared part
    x = torch.randn(5, d_in, dtype=torch.double, requires_grad=True)
    logits = torch.randn(5, 3, dtype=torch.double, requires_grad=True)

    def backpropagate(views):
        fused = views.weighted_sum(torch.softmax(logits, -1))  # fusion's weights come from a softmax
        (fused.sin().sum() + view_complementarity(views).pow(2).sum()).backward()

    gate = torch.nn.Linear(d_in, 3).double()
    factorised, gated = experts(x, gate)
    torch.testing.assert_close(gated, gate(x))
    shared = x if kind == "residual" else experts.first(x)  # v_k = shared + (x A_k) B_k
    by_hand = shared.unsqueeze(1) + torch.einsum("nkr,krd->nkd", (x @ experts.down).view(5, 3, 2), experts.up)
    torch.testing.assert_close(factorised.dense(), by_hand)
    dense = DenseViews(factorised.dense())
    torch.testing.assert_close(factorised.gram(), dense.gram())
    weights = torch.softmax(logits, -1)
    torch.testing.assert_close(factorised.weighted_sum(weights), dense.weighted_sum(weights))
    grads, leaves = [], [x, logits, *experts.parameters()]
    for views in (factorised, DenseViews(experts(x, gate)[0].dense())):
        backpropagate(views)
        grads.append([t.grad.clone() for t in leaves])
        for t in leaves:
            t.grad = None
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_residual_structure_experts_start_as_the_structural_embedding():
    kg = small_graph()
    _, model = make("mocme", {"structure_expert": "residual", "init_scale": 1e-3, "interaction": "complex"}, kg)
    ids = torch.arange(kg.num_entities)
    with torch.no_grad():
        views = model.entity_parts(ids, dropout=False).views[0].dense()
        encoding = model.encode(ids, torch.zeros_like(ids), dropout=False)
    torch.testing.assert_close(views, model.entity.detach().unsqueeze(1).expand_as(views))
    torch.testing.assert_close(encoding.modal[0], model.entity.detach())
    assert model.entity.detach().std() < 2e-3


def test_the_anchored_unified_embedding_keeps_structure_whole():
    kg = two_modality_graph()
    _, model = make("mocme", {"unified": "anchored"}, kg)
    ids = torch.arange(kg.num_entities)
    with torch.no_grad():
        e = model.encode(ids, torch.zeros_like(ids))
    expected = e.modal[0] + e.alpha[:, 1:2] * e.modal[1]
    torch.testing.assert_close(e.joint, expected)


def test_structure_dropout_hides_structure_only_while_training_and_only_where_another_modality_exists():
    kg = two_modality_graph()
    _, model = make("mocme", {"structure_dropout": 0.5}, kg)
    ids = torch.arange(kg.num_entities)
    model.train()
    torch.manual_seed(3)
    available = model.entity_parts(ids).available
    text = kg.modalities["text"].mask
    assert (~available[text, 0]).any() and available[~text, 0].all()
    model.eval()
    assert model.entity_parts(ids).available[:, 0].all()


def test_structure_dropout_masks_the_structure_scorer_on_a_graph_without_unseen_entities():
    kg = two_modality_graph()
    _, model = make("mocme", {"structure_dropout": 0.9}, kg)
    assert model.structure_mask.all()  # every entity has trained structure
    queries = kg.train[:16, :2]
    model.train()
    torch.manual_seed(3)
    available = model.scorer_scores(queries)[STRUCTURE].available
    assert available is not None and not available.all()  # the hidden entities leave its loss
    torch.manual_seed(3)
    tables = model.scorer_tables(queries)
    assert tables[STRUCTURE].table_available is not None
    model.eval()
    assert model.scorer_scores(queries)[STRUCTURE].available is None


def test_structural_experts_keep_the_structural_scale_under_init_scale():
    kg = two_modality_graph()
    _, model = make("mocme", {"structure_expert": "same", "init_scale": 1e-3}, kg)
    ids = torch.arange(kg.num_entities)
    with torch.no_grad():
        views = model.entity_parts(ids, dropout=False).views[0].dense()  # (n, K, d)
    ratio = float(views.norm(dim=-1).mean() / model.entity.detach().norm(dim=-1).mean())
    assert 0.3 < ratio < 3  # was about 1e-2: N(0, s²) weights on an N(0, s²) embedding


def test_a_new_entity_without_any_modality_is_refused():
    kg = two_modality_graph()
    _, model = make("mocme", {}, kg)
    dim = kg.modalities["text"].dim
    with pytest.raises(ValueError, match="new entity 1 has no modality"):
        model.with_new_entities(kg, {"text": torch.randn(2, dim)}, {"text": torch.tensor([True, False])})


def test_diversity_penalty_leaves_out_the_views_of_a_modality_the_entity_lacks():
    """An entity without text has bias-only text views: identical for all of them, so they would
    pull the penalty towards the bias's own redundancy."""
    from mocme.models.fusion import view_redundancy

    kg, model = make("mocme", {"diversity": 0.5})
    ids = torch.arange(kg.num_entities)
    m = model.modalities.index("text")
    available = model._available(ids)[:, m]
    assert bool(available.any()) and not bool(available.all())
    with torch.no_grad():
        views = model.entity_parts(ids, dropout=False).views[m]
        cos = views.cosines()
        assert torch.equal(cos[~available][0], cos[~available][-1])  # bias-only views: the same for all
        off_diagonal = ~torch.eye(views.experts, dtype=torch.bool)
        expected = cos[available][:, off_diagonal].pow(2).mean()
        torch.testing.assert_close(view_redundancy(views, available), expected)
        assert not torch.isclose(view_redundancy(views, torch.ones_like(available)), expected)


def test_the_degree_gate_starts_as_without_it_then_moves_weight_to_structure_by_degree():
    from mocme.evaluation.evaluator import training_degrees

    kg, plain = make("mocme", {})
    _, gated = make("mocme", {"degree_gate": True}, kg)
    ids = torch.arange(kg.num_entities)
    with torch.no_grad():
        torch.testing.assert_close(gated.encode(ids).alpha, plain.encode(ids).alpha)  # w starts at 0
        gated.inter.degree_weight.fill_(2.0)
        before, after = plain.encode(ids).alpha, gated.encode(ids).alpha
    degree = training_degrees(kg)
    both = before.gt(0).all(1)  # entities with every modality: structure's share can move
    assert bool((after[both & (degree > 0), 0] > before[both & (degree > 0), 0]).all())
    torch.testing.assert_close(after[degree == 0], before[degree == 0])
    gain = (after[both, 0] - before[both, 0]) / (1 - before[both, 0])
    high, low = degree[both] >= degree[both].median(), degree[both] < degree[both].median()
    assert float(gain[high].mean()) > float(gain[low].mean())  # the better structure knows it, the more
    assert "degree_weight" not in dict(plain.named_parameters()) and "inter.degree_weight" in dict(
        gated.named_parameters()
    )


def test_the_degree_gate_learns_and_new_entities_have_degree_zero():
    kg, model = make("mocme", {"degree_gate": True})
    model.train()
    loss = -model.score(kg.train[:32]).sum()
    loss.backward()
    assert model.inter.degree_weight.grad is not None and float(model.inter.degree_weight.grad.abs()) > 0
    names = model.modalities[1:]
    features = {n: torch.randn(2, kg.modalities[n].dim) for n in names}
    masks = {n: torch.ones(2, dtype=torch.bool) for n in names}
    extended = model.with_new_entities(kg, features, masks)
    assert extended.log_degree.shape == (kg.num_entities + 2,) and float(extended.log_degree[-2:].abs().sum()) == 0
    with pytest.raises(ConfigError, match="fusion 'mean' has none"):
        load_config(overrides=["model.degree_gate=true", "model.fusion=mean"])
