"""One check per statistic: the store's answer must equal the numpy oracle's.

Each check takes a scope spec (runs named as in the corpus fixture) so the same check runs
on several scopes and again after runs are deleted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from sqlalchemy.orm import Session

from storage import queries
from storage.scope import Scope
from tests.storage.reference import Reference

RTOL = 1e-9

Spec = dict  # {"model": ..., "runs": [names], "domains": [...], "layers": [...]}
Check = Callable[[Session, Reference, Spec, dict[str, int]], None]


def scoped(spec: Spec, ids: dict[str, int], reference: Reference):
    runs = None if spec.get("runs") is None else [ids[name] for name in spec["runs"]]
    scope = Scope(
        model=spec.get("model"), runs=runs, domains=spec.get("domains"), layers=spec.get("layers")
    )
    selection = reference.select(runs=runs, domains=spec.get("domains"), layers=spec.get("layers"))
    return scope, selection


def close(actual: float | None, expected: float) -> None:
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert actual is None
    else:
        assert actual == pytest.approx(expected, rel=RTOL, abs=1e-12)


def check_expert_load(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.load(sel)
    result = queries.expert_load(session, scope)
    assert [r.layer for r in result] == sel.layers
    for layer in result:
        load = np.array([e.load for e in layer.experts])
        np.testing.assert_array_equal(load, expected[layer.layer])
        assert layer.total == expected[layer.layer].sum()
        for e in layer.experts:
            close(e.share.value, expected[layer.layer][e.expert] / expected[layer.layer].sum())
            assert e.share.baseline == pytest.approx(1 / ref.E)
            assert len(e.chosen) == len(e.kept) == ref.k
            assert e.load == sum(e.kept) and all(map(int.__le__, e.kept, e.chosen))


def check_balance(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.balance(sel)
    result = queries.balance(session, scope)
    assert [r.layer for r in result] == sel.layers
    for r in result:
        for name, value in expected[r.layer].items():
            close(getattr(r, name).value, value)
        assert (r.cv.baseline, r.max_violation.baseline, r.dead_experts.baseline) == (0, 0, 0)
        assert r.load_entropy.baseline == 1.0


def check_routing(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.routing(sel)
    result = queries.routing_summary(session, scope)
    assert [r.layer for r in result] == sel.layers
    for r in result:
        e = expected[r.layer]
        assert r.tokens == e["tokens"]
        for name in ("drop_rate", "router_entropy", "aux_loss", "z_loss"):
            close(getattr(r, name).value, e[name])
        assert len(r.drop_rate_by_rank) == ref.k
        for measure, value in zip(r.drop_rate_by_rank, e["drop_rate_by_rank"], strict=True):
            close(measure.value, value)
        assert r.router_entropy.baseline == pytest.approx(math.log(ref.E))
        assert r.aux_loss.baseline == 1.0
        assert r.z_loss.baseline == pytest.approx(math.log(ref.E) ** 2)


def check_positions(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    for width in (32, 64):
        expected = ref.drops_by_position(sel, width)
        result = queries.drops_by_position(session, scope, bucket_width=width)
        assert {(r.layer, r.start) for r in result} == set(expected)
        for r in result:
            tokens, assignments, top1 = expected[(r.layer, r.start)]
            assert (r.tokens, r.stop - r.start) == (tokens, width)
            close(r.drop_rate.value, assignments)
            close(r.drop_rate_top1.value, top1)


def check_domains(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.domain_specialization(sel)
    result = queries.domain_specialization(session, scope)
    assert {(r.layer, r.domain) for r in result} == set(expected)
    for r in result:
        np.testing.assert_allclose(r.shares, expected[(r.layer, r.domain)], rtol=RTOL)
        assert r.tokens == np.sum(sel.domain == r.domain)
        assert r.baseline == pytest.approx(ref.k / ref.E)


def check_vocab(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    for expert, by, min_count, limit in ((0, "input", 3, 6), (2, "predicted", 1, 50)):
        expected = ref.vocab_specialization(sel, expert, by, min_count, limit)
        result = queries.vocab_specialization(
            session, scope, expert=expert, by=by, min_count=min_count, limit=limit
        )
        assert [r.layer for r in result] == sel.layers
        for r in result:
            got = [(t.token_id, t.count, t.with_expert) for t in r.tokens]
            assert got == expected[r.layer]
            assert all(t.piece == f"▁t{t.token_id}" for t in r.tokens)
            assert r.baseline == pytest.approx(ref.k / ref.E)


def check_token_experts(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    for token, by in ((3, "input"), (11, "predicted"), (29, "input")):
        expected = ref.token_experts(sel, token, by)
        result = queries.token_experts(session, scope, token_id=token, by=by)
        assert [r.layer for r in result] == sel.layers
        for r in result:
            count, with_expert = expected[r.layer]
            assert (r.count, list(r.with_expert)) == (count, with_expert)
            assert r.piece == f"▁t{token}"
            for share, n in zip(r.shares, with_expert, strict=True):
                close(share, n / count if count else None)


def check_coactivation(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.coactivation(sel)
    result = queries.coactivation(session, scope)
    assert [r.layer for r in result] == sel.layers
    for r in result:
        ratios = np.array([[np.nan if v is None else v for v in row] for row in r.ratios])
        np.testing.assert_allclose(ratios, expected[r.layer], rtol=RTOL)
        assert r.baseline == pytest.approx((ref.k - 1) / (ref.E - 1))


def check_consecutive(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.consecutive(sel)
    result = queries.consecutive_routing(session, scope)
    assert [r.layer for r in result] == sel.layers
    k = ref.k
    disjoint = math.comb(ref.E - k, k) / math.comb(ref.E, k) if 2 * k <= ref.E else 0.0
    for r in result:
        pairs, same, shared = expected[r.layer]
        assert r.pairs == pairs
        close(r.same_top1.value, same)
        close(r.shared_topk.value, shared)
        assert r.same_top1.baseline == pytest.approx(1 / ref.E)
        assert r.shared_topk.baseline == pytest.approx(1 - disjoint)


def check_transitions(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.transitions(sel)
    result = queries.transitions(session, scope)
    assert {(r.layer_from, r.layer_to) for r in result} == set(expected)
    for r in result:
        counts = expected[(r.layer_from, r.layer_to)]
        np.testing.assert_array_equal(np.array(r.counts), counts)
        rows = counts.sum(1)
        for i, row in enumerate(r.probabilities):
            for j, p in enumerate(row):
                close(p, counts[i, j] / rows[i] if rows[i] else None)


def check_loss(session: Session, ref: Reference, spec: Spec, ids: dict[str, int]) -> None:
    scope, sel = scoped(spec, ids, ref)
    expected = ref.domain_loss(sel)
    result = queries.domain_loss(session, scope)
    assert {r.domain for r in result} == set(expected)
    for r in result:
        documents, tokens, mean = expected[r.domain]
        assert (r.documents, r.tokens) == (documents, tokens)
        close(r.mean_nll.value, mean)
        assert r.mean_nll.baseline == pytest.approx(math.log(ref.V))


ALL_CHECKS: dict[str, Check] = {
    "load": check_expert_load,
    "balance": check_balance,
    "routing": check_routing,
    "positions": check_positions,
    "domains": check_domains,
    "vocab": check_vocab,
    "token_experts": check_token_experts,
    "coactivation": check_coactivation,
    "consecutive": check_consecutive,
    "transitions": check_transitions,
    "loss": check_loss,
}
