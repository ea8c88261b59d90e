"""The background writer stores exactly what sequential ingest stores, or nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage import queries
from storage.pipeline import BackgroundIngest
from storage.schema import Run
from storage.scope import Scope
from tests.storage.checks import ALL_CHECKS
from tests.storage.conftest import MODEL, NUM_EXPERTS, VOCAB, register
from tests.storage.reference import Batch, Reference
from tests.storage.traces import random_trace


def _batches(n: int) -> list[tuple]:
    rng = np.random.default_rng(5)
    return [
        (
            random_trace(rng, batch=4, seq=36, num_experts=NUM_EXPERTS, vocab=VOCAB),
            ["web", "code", "web", "wiki"],
            [f"doc {i} {j}" for j in range(4)],
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("atomic", [True, False])
def test_background_ingest_stores_every_batch(make_store, atomic: bool) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        register(session)
    batches = _batches(3)
    with BackgroundIngest(engine, model_name=MODEL, atomic=atomic) as writer:
        for trace, domains, texts in batches:
            writer.submit(trace, texts, domains)
    run_id = writer.run_id
    oracle = Reference(
        [Batch(run_id, t, d, x) for t, d, x in batches], {run_id: True}, NUM_EXPERTS, VOCAB
    )
    with Session(engine) as session:
        for check in ALL_CHECKS.values():
            check(session, oracle, {"model": MODEL}, {})
            check(session, oracle, {"runs": ["run"], "domains": ["web"]}, {"run": run_id})


def test_an_aborted_or_failed_background_ingest_leaves_nothing(make_store) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        register(session)
    (trace, domains, texts), *_ = _batches(1)
    with pytest.raises(KeyError), BackgroundIngest(engine, model_name=MODEL) as writer:
        writer.submit(trace, texts, domains)
        raise KeyError("the producer failed")
    writer = BackgroundIngest(engine, model_name=MODEL)
    writer.submit(trace, texts[:1], domains)  # wrong number of texts: the writer fails
    with pytest.raises(RuntimeError, match="background ingest failed"):
        writer.close()
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert all(layer.total == 0 for layer in queries.expert_load(session, Scope(model=MODEL)))
