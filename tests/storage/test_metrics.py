"""Every statistic equals the same number computed in numpy from the raw traces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy.orm import Session

from storage import queries, runs
from storage.errors import NotFound
from storage.ingest import ingest_run, register_model
from storage.scope import Scope
from tests.storage import reference
from tests.storage.checks import ALL_CHECKS, close
from tests.storage.conftest import MODEL, VOCAB
from tests.storage.traces import random_trace

SCOPES = {
    # the model's pooled runs: "a" and "b", not the intervention runs, not the other model
    "model": {"model": MODEL},
    # explicit runs, one of them an intervention
    "runs": {"runs": ["a", "ablated"]},
    "model-domains-layers": {"model": MODEL, "domains": ["web", "code"], "layers": [1, 5]},
    "runs-domain-layer": {"runs": ["b", "checkpoint"], "domains": ["web"], "layers": [3]},
}


@pytest.mark.parametrize("scope", list(SCOPES))
@pytest.mark.parametrize("statistic", list(ALL_CHECKS))
def test_statistic_matches_numpy(session, store, statistic: str, scope: str) -> None:
    _, ids, oracle = store
    ALL_CHECKS[statistic](session, oracle, SCOPES[scope], ids)


@pytest.mark.parametrize(("domains", "layers"), [(None, None), (["web"], None), (None, [3, 5])])
def test_router_saturation_matches_numpy(session, store, corpus, domains, layers) -> None:
    _, ids, _ = store
    first, labels, _ = corpus["b"][0]
    second = corpus["checkpoint"][0][0]
    expected = reference.saturation(first, second, domains, labels)
    result = queries.router_saturation(
        session, ids["b"], ids["checkpoint"], domains=domains, layers=layers
    )
    assert [r.layer for r in result] == [i for i in (1, 3, 5) if layers is None or i in layers]
    for r in result:
        tokens, value = expected[r.layer]
        assert r.tokens == tokens
        close(r.saturation.value, value)
        num_experts, k = corpus["shape"]
        assert r.saturation.baseline == pytest.approx(k / num_experts)


def test_saturation_of_a_run_with_itself_is_one(session, store) -> None:
    _, ids, _ = store
    result = queries.router_saturation(session, ids["a"], ids["a"])
    assert result and all(r.saturation.value == 1.0 for r in result)


def test_ablation_effect_is_the_difference_of_domain_losses(session, store) -> None:
    _, ids, _ = store
    base, changed = Scope(runs=[ids["a"]]), Scope(runs=[ids["ablated"]])
    before = {d.domain: d.mean_nll.value for d in queries.domain_loss(session, base)}
    after = {d.domain: d.mean_nll.value for d in queries.domain_loss(session, changed)}
    for change in queries.ablation_effect(session, base, changed):
        b, a = before.get(change.domain), after.get(change.domain)
        assert (change.base, change.changed) == (b, a)
        if a is not None and b is not None:
            assert change.delta == pytest.approx(a - b)


def test_the_other_model_is_its_own_scope(session, store) -> None:
    _, ids, _ = store
    (layer0, layer2) = queries.expert_load(session, Scope(model="other"))
    assert (layer0.layer, layer2.layer) == (0, 2)
    assert len(layer0.experts) == 4
    assert layer0.total == queries.expert_load(session, Scope(runs=[ids["other"]]))[0].total


def test_scope_errors(session, store) -> None:
    _, ids, oracle = store
    with pytest.raises(ValueError, match="several"):
        queries.expert_load(session, Scope())
    with pytest.raises(ValueError, match="one model"):
        queries.expert_load(session, Scope(runs=[ids["a"], ids["other"]]))
    with pytest.raises(NotFound):
        queries.expert_load(session, Scope(runs=[10**6]))
    with pytest.raises(NotFound):
        queries.expert_load(session, Scope(model="nope"))
    with pytest.raises(ValueError):
        queries.drops_by_position(session, Scope(model=MODEL), bucket_width=40)
    with pytest.raises(ValueError):
        queries.vocab_specialization(session, Scope(model=MODEL), expert=oracle.E)


def test_empty_selection_gives_undefined_values(session, store) -> None:
    oracle = store[2]
    result = queries.routing_summary(session, Scope(model=MODEL, domains=["absent"]))
    assert [r.tokens for r in result] == [0, 0, 0]
    assert all(r.drop_rate.value is None for r in result)
    assert all(m.value is None for r in result for m in r.drop_rate_by_rank)
    assert all(math.isclose(r.router_entropy.baseline, math.log(oracle.E)) for r in result)
    balance = queries.balance(session, Scope(model=MODEL, domains=["absent"]))
    assert all(b.cv.value is None for b in balance)


def test_256_experts_top_8_is_stored_and_counted(make_store) -> None:
    # DeepSeek-V3's shape (E = 256, k = 8), too wide for the token-by-token oracle: the
    # counts must still add up to every choice of every valid token.
    engine = make_store()
    trace = random_trace(
        np.random.default_rng(8), batch=4, seq=40, num_experts=256, top_k=8, vocab=VOCAB
    )
    tokens = int(trace.mask.sum())
    with Session(engine) as session, session.begin():
        register_model(session, name="wide", num_experts=256, top_k=8, vocab_size=VOCAB)
        run = ingest_run(session, model_name="wide", trace=trace, texts=list("abcd"), domains="d")
    scope = Scope(model="wide")
    with Session(engine) as session:
        for index, layer in enumerate(queries.expert_load(session, scope)):
            kept = trace.kept[index][trace.mask]
            assert layer.total == int(kept.sum())
            assert sum(sum(e.chosen) for e in layer.experts) == tokens * 8
            assert all(len(e.chosen) == 8 for e in layer.experts)
        for layer in queries.routing_summary(session, scope):
            assert len(layer.drop_rate_by_rank) == 8
        for layer in queries.coactivation(session, scope):
            assert sum(layer.counts) == tokens * 8
            assert sum(map(sum, layer.pairs)) == tokens * 8 * 7  # ordered pairs of 8 choices
            assert layer.baseline == pytest.approx(7 / 255)
        for layer in queries.consecutive_routing(session, scope):
            disjoint = math.comb(248, 8) / math.comb(256, 8)
            assert layer.shared_topk.baseline == pytest.approx(1 - disjoint)
        for layer in queries.domain_specialization(session, scope):
            assert sum(layer.counts) == tokens * 8 and layer.baseline == 8 / 256
        (saturation,) = {r.saturation.value for r in queries.router_saturation(session, run, run)}
        assert saturation == 1.0
        document = runs.run_tokens(session, run, limit=1)[0]
        first = document.tokens[0].routes[0]
        assert len(first.experts) == 8 and len(set(first.experts)) == 8


def test_one_expert_gives_defined_values_or_a_clear_error(make_store) -> None:
    # E = 1 is a supported (dense) configuration: every token goes to expert 0 twice over.
    engine = make_store()
    trace = random_trace(np.random.default_rng(5), batch=3, seq=12, num_experts=1, vocab=VOCAB)
    with Session(engine) as session, session.begin():
        register_model(session, name="lone", num_experts=1, vocab_size=VOCAB)
        ingest_run(session, model_name="lone", trace=trace, texts=["a", "b", "c"], domains="web")
    scope = Scope(model="lone")
    with Session(engine) as session:
        for layer in queries.balance(session, scope):
            # One expert taking all the load is the uniform load over one expert.
            assert (layer.cv.value, layer.max_violation.value) == (0.0, 0.0)
            assert (layer.load_entropy.value, layer.load_entropy.baseline) == (1.0, 1.0)
        for layer in queries.consecutive_routing(session, scope):
            assert layer.pairs > 0
            assert (layer.same_top1.value, layer.same_top1.baseline) == (1.0, 1.0)
            # Two top-2 sets of a single expert always intersect.
            assert (layer.shared_topk.value, layer.shared_topk.baseline) == (1.0, 1.0)
        with pytest.raises(ValueError, match="at least two experts"):
            queries.coactivation(session, scope)
