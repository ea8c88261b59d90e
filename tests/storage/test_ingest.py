"""Ingest writes a run whole or not at all; deleting a run removes its rows and its share."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage import bulk, queries, runs
from storage.errors import NotFound
from storage.ingest import (
    add_documents,
    delete_run,
    ingest_run,
    is_intervention,
    register_model,
    upsert_vocab,
)
from storage.schema import Base, Document, Model, Route, RouteChoice, Run, Token
from storage.schema_aggregates import FAMILIES
from storage.scope import Scope
from tests.storage.checks import ALL_CHECKS
from tests.storage.conftest import MODEL, NUM_EXPERTS, fill, register
from tests.storage.reference import Reference
from tests.storage.traces import random_trace


def snapshot(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    with Session(engine) as session:
        out = {}
        for table in Base.metadata.sorted_tables:
            order = list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in session.execute(select(table).order_by(*order))]
        return out


def _new_trace(seed: int = 7, shape: tuple[int, int] = (NUM_EXPERTS, 2)):
    return random_trace(
        np.random.default_rng(seed), batch=5, seq=45, num_experts=shape[0], top_k=shape[1]
    )


def test_tokens_and_routes_round_trip_through_the_token_explorer(session, store, corpus) -> None:
    _, ids, _ = store
    trace, domains, texts = corpus["b"][0]
    documents = runs.run_tokens(session, ids["b"], limit=100)
    assert [d.document.text for d in documents] == texts
    assert [d.document.domain for d in documents] == domains
    for b, doc in enumerate(documents):
        positions = np.flatnonzero(trace.mask[b])
        assert [t.position for t in doc.tokens] == positions.tolist()
        assert doc.document.n_tokens == len(positions)
        for t in doc.tokens:
            assert t.token_id == trace.tokens[b, t.position]
            assert t.piece == f"▁t{t.token_id}"
            assert t.predicted == trace.predicted[b, t.position]
            nll = trace.nll[b, t.position]
            assert (t.nll is None) if np.isnan(nll) else t.nll == pytest.approx(float(nll))
            assert [r.layer for r in t.routes] == [1, 3, 5]
            for j, r in enumerate(t.routes):
                assert r.experts == tuple(trace.expert[j, b, t.position].tolist())
                assert r.kept == tuple(trace.kept[j, b, t.position].tolist())
                np.testing.assert_array_equal(
                    np.float32([*r.gates, *r.probs, r.entropy]),
                    np.concatenate(
                        [
                            trace.gate[j, b, t.position],
                            trace.prob[j, b, t.position],
                            [trace.entropy[j, b, t.position]],
                        ]
                    ),
                )
        finite = trace.nll[b][trace.mask[b]]
        finite = finite[np.isfinite(finite)]
        if len(finite):
            assert doc.document.mean_nll == pytest.approx(float(finite.mean()), rel=1e-6)


def test_runs_are_listed_with_their_model_and_domains(session, store, corpus) -> None:
    _, ids, _ = store
    listed = runs.list_runs(session, model=MODEL)
    assert [r.id for r in listed] == sorted(
        (ids[n] for n in ("a", "b", "ablated", "checkpoint")), reverse=True
    )
    a = runs.get_run(session, ids["a"])
    assert a is not None and a.pooled and a.source == "job"
    traces = corpus["a"]
    assert a.n_documents == sum(t.batch_size for t, _, _ in traces)
    assert a.n_tokens == sum(int(t.mask.sum()) for t, _, _ in traces)
    assert set(a.domains) == {d for _, ds, _ in traces for d in ds}
    ablated = runs.get_run(session, ids["ablated"])
    assert ablated is not None and not ablated.pooled
    assert ablated.parameters == {"ablation": {"1": [0]}}
    assert runs.get_run(session, 10**6) is None
    assert [r.id for r in runs.list_runs(session, source="job")] == [ids["a"]]
    assert runs.get_model(session, MODEL).moe_layers == (1, 3, 5)


@pytest.mark.parametrize("where", ["routes", "model_aggregates", "second_batch"])
def test_a_failure_mid_ingest_leaves_no_trace(make_store, corpus, monkeypatch, where) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        ids, _ = fill(session, corpus)
    before = snapshot(engine)
    real_insert, real_add = bulk.insert_frame, bulk.add_frame

    def insert_half_then_fail(session, table, frame):
        if table.name == "routes":
            half = {k: v[: len(v) // 2] for k, v in frame.items()}
            real_insert(session, table, half)
            raise RuntimeError("injected after half the routes")
        return real_insert(session, table, frame)

    calls = []

    def fail_on_third_model_table(session, table, keys, frame):
        real_add(session, table, keys, frame)
        if table.name.startswith("model_"):
            calls.append(table.name)
            if len(calls) == 3:
                raise RuntimeError("injected after some aggregates")

    if where == "model_aggregates":
        monkeypatch.setattr(bulk, "add_frame", fail_on_third_model_table)
    else:
        monkeypatch.setattr(bulk, "insert_frame", insert_half_then_fail)
    with Session(engine) as session:
        with pytest.raises(RuntimeError, match="injected"):
            if where == "second_batch":
                add_documents(
                    session,
                    ids["a"],
                    trace=_new_trace(shape=corpus["shape"]),
                    texts=list("vwxyz"),
                    domains="web",
                )
            else:
                ingest_run(
                    session,
                    model_name=MODEL,
                    trace=_new_trace(shape=corpus["shape"]),
                    texts=list("vwxyz"),
                    domains="web",
                )
        # The caller catches and commits what else it did: the failed write is not in it.
        session.commit()
    monkeypatch.undo()
    assert snapshot(engine) == before


def test_deleting_runs_removes_their_rows_and_their_share(make_store, corpus) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        ids, oracle = fill(session, corpus)
    doomed = [ids["b"], ids["ablated"]]
    with Session(engine) as session, session.begin():
        documents = session.scalars(select(Document.id).where(Document.run_id.in_(doomed))).all()
        assert documents
        assert all(delete_run(session, run_id) for run_id in doomed)
        assert not delete_run(session, ids["b"])
    remaining = Reference(
        [b for b in oracle.batches if b.run_id not in doomed],
        {r: p for r, p in oracle.pooled.items() if r not in doomed},
        oracle.E,
        oracle.V,
    )
    with Session(engine) as session:
        for run_id in doomed:
            assert session.get(Run, run_id) is None
            for family in FAMILIES.values():
                if family.run_table is not None:
                    t = family.run_table.__table__
                    assert session.scalar(select(func.count()).where(t.c.run_id == run_id)) == 0
        for table in (Route, RouteChoice, Token):
            stmt = select(func.count()).where(table.document_id.in_(documents))
            assert session.scalar(stmt) == 0
        assert session.scalar(select(func.count()).where(Document.id.in_(documents))) == 0
        for spec in ({"model": MODEL}, {"runs": ["a", "checkpoint"], "domains": ["web"]}):
            for check in ALL_CHECKS.values():
                check(session, remaining, spec, ids)
    # Deleting the last pooled run leaves nothing in the model-wide tables: the subtraction
    # is exact and emptied rows are removed.
    with Session(engine) as session, session.begin():
        delete_run(session, ids["a"])
        model_id = session.scalar(select(Model.id).where(Model.name == MODEL))
        for family in FAMILIES.values():
            t = family.model_table.__table__
            assert session.scalar(select(func.count()).where(t.c.model_id == model_id)) == 0


def test_ingest_rejects_inconsistent_input(make_store) -> None:
    engine = make_store()
    trace = _new_trace()
    with Session(engine) as session:
        register(session)
        with pytest.raises(NotFound):
            ingest_run(session, model_name="nope", trace=trace, texts=list("abcde"), domains="d")
        with pytest.raises(ValueError, match="one text"):
            ingest_run(session, model_name=MODEL, trace=trace, texts=["a"], domains="d")
        with pytest.raises(ValueError, match="at most"):
            ingest_run(
                session, model_name=MODEL, trace=trace, texts=list("abcde"), domains="d" * 65
            )
        with pytest.raises(ValueError, match="expert ids"):
            ingest_run(session, model_name="other", trace=trace, texts=list("abcde"), domains="d")
        wide = random_trace(np.random.default_rng(1), batch=2, seq=5, vocab=31)
        wide.tokens[0, 0], wide.mask[0, 0] = 30, True
        with pytest.raises(ValueError, match="token ids"):
            ingest_run(session, model_name=MODEL, trace=wide, texts=["a", "b"], domains="d")
        shifted = random_trace(np.random.default_rng(0), batch=2, seq=5, moe_layers=(0, 2, 4))
        with pytest.raises(ValueError, match="MoE layers"):
            ingest_run(session, model_name=MODEL, trace=shifted, texts=["a", "b"], domains="d")
        top4 = random_trace(np.random.default_rng(0), batch=2, seq=5, top_k=4)
        with pytest.raises(ValueError, match="4 choices per token; model 2"):
            ingest_run(session, model_name=MODEL, trace=top4, texts=["a", "b"], domains="d")
        with pytest.raises(ValueError, match="another shape"):
            register_model(session, name=MODEL, num_experts=8, vocab_size=30)
        with pytest.raises(ValueError, match="another shape"):
            register_model(session, name=MODEL, num_experts=NUM_EXPERTS, top_k=4, vocab_size=30)
        session.commit()
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_vocab_upsert_inserts_new_and_updates_changed_pieces(make_store) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        model_id = register_model(
            session, name="m", num_experts=4, vocab_size=5, pieces=["a", "b", "c"]
        )
        upsert_vocab(session, model_id, ["a", "B", "c", "d", "e"])
    with Session(engine) as session:
        trace = random_trace(
            np.random.default_rng(3), batch=2, seq=6, moe_layers=(1,), num_experts=4, vocab=5
        )
        run_id = ingest_run(session, model_name="m", trace=trace, texts=["x", "y"], domains="d")
        pieces = {t.token_id: t.piece for d in runs.run_tokens(session, run_id) for t in d.tokens}
        assert pieces and all(pieces[i] == "aBcde"[i] for i in pieces)


@pytest.mark.parametrize(
    ("parameters", "intervention"),
    [
        ({}, False),
        ({"capacity_factor": None, "ablation": {}}, False),
        ({"note": "anything else"}, False),
        ({"ablation": {"3": [1, 2]}}, True),
        ({"capacity_factor": 1.0}, True),
        ({"checkpoint": "step-100"}, True),
    ],
)
def test_interventions_are_kept_out_of_the_model_pool(parameters, intervention) -> None:
    assert is_intervention(parameters) is intervention


def test_unusual_domain_labels_and_texts_round_trip(make_store) -> None:
    engine = make_store()
    labels = ["", "日本語", "web", "a\tb"]
    texts = ["", "改行\nあり", "x" * 5000, "\\ back slash"]
    trace = random_trace(np.random.default_rng(2), batch=4, seq=12, num_experts=NUM_EXPERTS)
    with Session(engine) as session, session.begin():
        register(session)
        run_id = ingest_run(session, model_name=MODEL, trace=trace, texts=texts, domains=labels)
    with Session(engine) as session:
        documents = runs.list_documents(session, run_id)
        assert [(d.domain, d.text) for d in documents] == list(zip(labels, texts, strict=True))
        losses = queries.domain_loss(session, Scope(runs=[run_id]))
        assert sorted(d.domain for d in losses) == sorted(labels)
        assert all(d.documents == 1 for d in losses)
