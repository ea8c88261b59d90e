"""Fixtures: every storage test runs on SQLite (a temporary file) and on PostgreSQL.

PostgreSQL is `TEST_DATABASE_URL` (default: postgres@127.0.0.1:5432/test, trust auth). Each
store is a fresh schema there, dropped at the end. With CI=true an unreachable server fails
the PostgreSQL tests; elsewhere it skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from storage import db
from storage.ingest import add_documents, create_run, ingest_run, register_model
from tests.storage.reference import Batch, Reference
from tests.storage.traces import random_trace

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"

MODEL = "glam-test"
NUM_EXPERTS = 6
# (E, k) of the corpus a statistic is checked on: GLaM's top-2 over few experts, and the
# top-k over many experts of imported models (Qwen3-MoE, DeepSeek-V3 route to 8 of 128-256).
SHAPES = {"E6-top2": (NUM_EXPERTS, 2), "E16-top4": (16, 4)}
VOCAB = 30
MOE_LAYERS = (1, 3, 5)
PIECES = [f"▁t{i}" for i in range(VOCAB)]


def _postgres_error() -> str | None:
    engine = db.make_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except Exception as error:  # any failure to reach the server means "unreachable"
        return f"{type(error).__name__}: {error}"
    finally:
        engine.dispose()


def require_postgres() -> None:
    """Fail (in CI) or skip (elsewhere) when the PostgreSQL server cannot be reached."""
    error = _postgres_error()
    if error is not None:
        message = f"PostgreSQL at {PG_URL} is unreachable: {error}"
        if IN_CI:
            pytest.fail(f"{message} (mandatory in CI)")
        pytest.skip(message)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return request.param


StoreFactory = Callable[[], Engine]


@pytest.fixture(scope="session")
def make_store(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreFactory]:
    """Makes empty, migrated databases of the session's backend; all removed at the end."""
    engines: list[Engine] = []
    schemas: list[str] = []

    def make() -> Engine:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("store") / "store.sqlite"
            engine = db.make_engine(f"sqlite:///{path}")
        else:
            schema = f"glam_test_{uuid.uuid4().hex[:12]}"
            with db.make_engine(PG_URL).begin() as connection:
                connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
            schemas.append(schema)
            engine = db.make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
        db.upgrade(engine)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
    if schemas:
        admin = db.make_engine(PG_URL)
        with admin.begin() as connection:
            for schema in schemas:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def register(session: Session, shape: tuple[int, int] = SHAPES["E6-top2"]) -> None:
    num_experts, top_k = shape
    register_model(
        session,
        name=MODEL,
        num_experts=num_experts,
        top_k=top_k,
        vocab_size=VOCAB,
        preset="test",
        moe_layers=MOE_LAYERS,
        pieces=PIECES,
    )
    register_model(session, name="other", num_experts=4, vocab_size=VOCAB)


def _trace(
    rng: np.random.Generator,
    batch: int,
    seq: int,
    shape: tuple[int, int] = SHAPES["E6-top2"],
    **kw: object,
):
    return random_trace(
        rng, batch=batch, seq=seq, moe_layers=MOE_LAYERS, num_experts=shape[0], top_k=shape[1],
        vocab=VOCAB, **kw,
    )  # fmt: skip


@pytest.fixture(scope="session", params=list(SHAPES))
def corpus(request: pytest.FixtureRequest) -> dict:
    """Raw traces of four runs of the test model and one of another model, for each of
    SHAPES (`corpus["shape"]`: the test model's E and k).

    runs: "a" (pooled, two forward passes), "b" (pooled), "ablated" (not pooled),
    "checkpoint" (the texts of "b" routed again, not pooled), "other" (another model).
    """
    rng = np.random.default_rng(1234)
    labels = ["web", "code", "wiki"]
    shape = SHAPES[request.param]

    def batch(n: int, seq: int) -> tuple:
        trace = _trace(rng, n, seq, shape)
        domains = [labels[i] for i in rng.integers(0, len(labels), size=n)]
        domains[0] = "web"
        texts = [f"text {rng.integers(1 << 40)}" for _ in range(n)]
        return trace, domains, texts

    a1, a2, b, ablated = batch(7, 70), batch(5, 40), batch(6, 50), batch(4, 30)
    b_trace = b[0]
    again = _trace(rng, 6, 50, shape, tokens=b_trace.tokens, mask=b_trace.mask)
    other = random_trace(rng, batch=3, seq=20, moe_layers=(0, 2), num_experts=4, vocab=VOCAB)
    return {
        "shape": shape,
        "a": [a1, a2],
        "b": [b],
        "ablated": [ablated],
        "checkpoint": [(again, b[1], b[2])],
        "other": [(other, ["web"] * 3, ["x", "y", "z"])],
    }


def fill(session: Session, corpus: dict) -> tuple[dict[str, int], Reference]:
    """Ingest the corpus; returns run ids by name and the numpy oracle over it."""
    register(session, corpus["shape"])
    ids: dict[str, int] = {}
    batches: list[Batch] = []
    params = {
        "a": {},
        "b": {"capacity_factor": None},
        "ablated": {"ablation": {"1": [0]}},
        "checkpoint": {"checkpoint": "step-2"},
    }
    # "a" arrives in two forward passes, like a corpus job; the others in one call each.
    ids["a"] = create_run(session, model_name=MODEL, source="job")
    for trace, domains, texts in corpus["a"]:
        add_documents(session, ids["a"], trace=trace, texts=texts, domains=domains)
        batches.append(Batch(ids["a"], trace, domains, texts))
    for name in ("b", "ablated", "checkpoint"):
        trace, domains, texts = corpus[name][0]
        ids[name] = ingest_run(
            session,
            model_name=MODEL,
            trace=trace,
            texts=texts,
            domains=domains,
            parameters=params[name],
        )
        batches.append(Batch(ids[name], trace, domains, texts))
    trace, domains, texts = corpus["other"][0]
    ids["other"] = ingest_run(
        session, model_name="other", trace=trace, texts=texts, domains=domains
    )
    pooled = {ids["a"]: True, ids["b"]: True, ids["ablated"]: False, ids["checkpoint"]: False}
    return ids, Reference(batches, pooled, corpus["shape"][0], VOCAB)


@pytest.fixture(scope="session")
def store(make_store: StoreFactory, corpus: dict) -> tuple[Engine, dict[str, int], Reference]:
    """A store holding the whole corpus (read-only for tests)."""
    engine = make_store()
    with Session(engine) as session, session.begin():
        ids, reference = fill(session, corpus)
    return engine, ids, reference


@pytest.fixture
def session(store: tuple) -> Iterator[Session]:
    with Session(store[0]) as s:
        yield s
