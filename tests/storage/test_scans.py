"""Statistic queries read what they need, not whole tables (issue 18.11).

Scans are shown by the statements a query runs (a dead expert's examples need no route at
all) and by SQLite's query plan (one token's experts in a run go through an index).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from storage import queries
from storage.examples import expert_examples
from storage.ingest import ingest_run
from storage.scope import Scope
from tests.storage.conftest import MODEL, NUM_EXPERTS, register
from tests.storage.traces import random_trace

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def filled(make_store) -> tuple:
    engine = make_store()
    trace = random_trace(np.random.default_rng(3), batch=12, seq=20, num_experts=NUM_EXPERTS)
    with Session(engine) as session, session.begin():
        register(session)
        texts = [f"doc {i}" for i in range(trace.batch_size)]
        run = ingest_run(session, model_name=MODEL, trace=trace, texts=texts,
                         domains=["code"] * trace.batch_size)  # fmt: skip
        ingest_run(session, model_name=MODEL, trace=trace, texts=texts,
                   domains=["web", "code"] * (trace.batch_size // 2))  # fmt: skip
    return engine, run, trace


@pytest.fixture
def statements(filled) -> Iterator[list[tuple[str, object]]]:
    engine = filled[0]
    seen: list[tuple[str, object]] = []

    def note(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_a_dead_experts_examples_read_no_route(filled, statements) -> None:
    engine, run, trace = filled
    layer = int(trace.moe_layers[0])
    chosen = trace.expert[0][trace.mask]  # [tokens, k]
    dead = sorted(set(range(NUM_EXPERTS)) - set(chosen.ravel().tolist()))
    live = int(np.bincount(chosen[:, 0], minlength=NUM_EXPERTS).argmax())
    assert dead, "the trace has a dead expert at its first MoE layer"
    with Session(engine) as session:
        statements.clear()
        assert expert_examples(session, Scope(runs=[run]), layer=layer, expert=dead[0]) == []
        assert not [s for s, _ in statements if "FROM route" in s]
        examples = expert_examples(session, Scope(runs=[run]), layer=layer, expert=live)
    assert examples
    with engine.connect() as connection:
        for example in examples:  # each really went to the expert at that rank, and was kept
            expert, kept = connection.execute(
                text(
                    "SELECT expert, kept FROM route_choices WHERE document_id = :d AND "
                    "position = :p AND layer = :l AND rank = :r"
                ),
                {
                    "d": example.document_id,
                    "p": example.position,
                    "l": layer,
                    "r": example.rank - 1,
                },
            ).one()
            assert (expert, bool(kept)) == (live, True)


@pytest.mark.parametrize("scope", ["1 run", "2 runs, 1 domain", "model, 1 domain"])
def test_one_tokens_experts_go_through_an_index(filled, statements, scope) -> None:
    engine, run, trace = filled
    token = int(trace.tokens[trace.mask][0])
    scopes = {
        "1 run": Scope(runs=[run]),
        "2 runs, 1 domain": Scope(runs=[run, run + 1], domains=["code"]),
        "model, 1 domain": Scope(model=MODEL, domains=["code"]),
    }
    with Session(engine) as session:
        statements.clear()
        result = queries.token_experts(session, scopes[scope], token_id=token)
    assert result and result[0].count > 0
    by_token = [(s, p) for s, p in statements if "vocab_expert_counts" in s and "GROUP BY" in s]
    assert by_token
    with engine.connect() as connection:
        for query, parameters in by_token:
            plan = " ".join(
                str(row[-1])
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}", parameters)
            )
            assert "vocab_expert_counts_token" in plan, plan


def test_deleting_a_run_touches_the_model_rows_by_key(filled, statements) -> None:
    """The run's share leaves the model-wide counts by key lookups: no statement of the
    delete reads every model_* row of the model (SQLite's plan searches past model_id)."""
    from storage.ingest import delete_run

    engine, run, _ = filled
    with Session(engine) as session, session.begin():
        statements.clear()
        assert delete_run(session, run)
    on_model_tables = [(s, p) for s, p in statements if " model_" in s and "DELETE" in s]
    assert on_model_tables
    with engine.connect() as connection:
        for query, parameters in on_model_tables:
            plan = [str(r[-1]) for r in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {query}",
                                                                   parameters)]  # fmt: skip
            target = query.split("FROM", 1)[1].split()[0]
            (step,) = [step for step in plan if step.split()[1:2] == [target]]
            # By key: more than the model's prefix (which is every row of the model).
            assert step.startswith(f"SEARCH {target}") and "model_id=? AND" in step, (query, plan)
