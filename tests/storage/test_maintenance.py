"""StatisticsKeeper: the first pass after `first_rows`, then one every `every_rows`; on
PostgreSQL a pass vacuums and analyses the tables ingest rewrites and analyses the others."""

from __future__ import annotations

import threading
import time

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from storage.ingest import ingest_run
from storage.maintenance import APPENDED, UPDATED_IN_PLACE, StatisticsKeeper, route_rows
from tests.storage.conftest import MODEL, _trace, register


def _maintenance_counts(engine) -> dict[str, tuple[int, int]]:
    """(vacuum_count, analyze_count) of this schema's tables, as VACUUM/ANALYZE report them."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, vacuum_count, analyze_count FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema()"
            )
        ).all()
    return {name: (int(vacuums), int(analyses)) for name, vacuums, analyses in rows}


def test_keeper_refreshes_on_schedule(make_store, backend):
    engine = make_store()
    rng = np.random.default_rng(7)
    with Session(engine) as session, session.begin():
        register(session)
    keeper = StatisticsKeeper(engine, every_rows=2_000, first_rows=500, background=False)
    written, due, expected = 0, 500, 0
    for _ in range(6):
        trace = _trace(rng, 8, 40)
        with Session(engine) as session, session.begin():
            ingest_run(session, model_name=MODEL, trace=trace, texts=["t"] * 8, domains="web")
        rows = route_rows(trace)
        assert rows == int(trace.mask.sum()) * len(trace.moe_layers)
        keeper.wrote(rows)
        written += rows
        if written >= due:  # the schedule the keeper promises
            expected, due = expected + 1, written + 2_000
        assert keeper.passes == (expected if backend == "postgresql" else 0)
    if backend == "sqlite":
        return  # SQLite needs no maintenance
    assert expected >= 2
    counts = _maintenance_counts(engine)
    for table in UPDATED_IN_PLACE:
        assert counts[table] == (expected, expected), table
    for table in APPENDED:
        assert counts[table] == (0, expected), table


def test_in_the_background_one_pass_runs_at_a_time(monkeypatch):
    # The service's mode: the pass runs on a thread, and rows reported while it runs do not
    # start another (they count towards the next one).
    from storage import maintenance

    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_refresh(engine) -> float:
        calls.append(threading.current_thread().name)
        entered.set()
        assert release.wait(10)
        return 0.0

    monkeypatch.setattr(maintenance, "refresh_statistics", slow_refresh)
    monkeypatch.setattr(StatisticsKeeper, "active", property(lambda self: True))
    keeper = StatisticsKeeper(object(), every_rows=100, first_rows=10, background=True)
    keeper.wrote(10)  # due: a pass starts on its own thread, and blocks
    assert entered.wait(10)
    keeper.wrote(500)  # past the next threshold, but a pass is running
    release.set()
    deadline = time.monotonic() + 10
    while keeper.passes < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["statistics-keeper"] and keeper.passes == 1
    keeper.wrote(1)  # the rows reported during the pass made the next one due
    deadline = time.monotonic() + 10
    while keeper.passes < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 2 and keeper.passes == 2
