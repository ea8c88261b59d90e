"""Jobs record status and progress."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.orm import Session

from storage import jobs
from storage.errors import NotFound
from storage.ingest import create_run
from tests.storage.conftest import register


def test_job_progress_is_recorded(make_store) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        job = jobs.create_job(session, params={"corpus": "builtin"}, total=10)
    with Session(engine) as session, session.begin():
        jobs.update_job(session, job.id, status="running", done=4)
    with Session(engine) as session:
        stored = jobs.get_job(session, job.id)
        assert stored is not None
        assert (stored.status, stored.done, stored.total) == ("running", 4, 10)
        assert stored.params == {"corpus": "builtin"}
        failed = jobs.update_job(session, job.id, status="failed", error="boom")
        assert (failed.status, failed.error) == ("failed", "boom")
        assert [j.id for j in jobs.list_jobs(session, status="failed")] == [job.id]
        assert jobs.list_jobs(session, status="done") == []
        with pytest.raises(NotFound):
            jobs.update_job(session, 999, done=1)


def _claim(engine, runner: str, *, at: dt.datetime, lease_s: float = 30) -> int | None:
    with Session(engine) as session, session.begin():
        lease = dt.timedelta(seconds=lease_s)
        return jobs.claim_job(session, runner=runner, lease=lease, now=at)


def test_a_job_is_claimed_by_one_runner_until_its_claim_runs_out(make_store) -> None:
    engine = make_store()
    t0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    with Session(engine) as session, session.begin():
        first, second, third = (
            jobs.create_job(session, params={"corpus": "builtin"}, total=5).id for _ in range(3)
        )
        jobs.update_job(session, third, status="running")  # a crash left it half done
    # Interrupted jobs first, then the oldest queued; a claimed job is nobody else's.
    assert _claim(engine, "a", at=t0) == third
    assert _claim(engine, "b", at=t0) == first
    assert _claim(engine, "c", at=t0) == second
    assert _claim(engine, "d", at=t0 + dt.timedelta(seconds=29)) is None
    # Its own claim a runner may take again (it retries after a database error).
    assert _claim(engine, "a", at=t0 + dt.timedelta(seconds=1)) == third
    # Runner b renews; a and c fall silent: their claims run out and d takes a's job over.
    with Session(engine) as session, session.begin():
        lease = dt.timedelta(seconds=30)
        assert jobs.renew_claim(session, first, runner="b", lease=lease, now=t0 + lease)
    later = t0 + dt.timedelta(seconds=32)
    assert _claim(engine, "d", at=later) == third
    with Session(engine) as session, session.begin():
        # a no longer holds it: its next commit must not happen.
        assert not jobs.renew_claim(session, third, runner="a", lease=lease, now=later)
        jobs.release_claim(session, third, runner="a")  # letting go of another's: no effect
    assert _claim(engine, "e", at=later) == second
    with Session(engine) as session, session.begin():
        jobs.release_claim(session, third, runner="d")
        jobs.update_job(session, first, status="done")
    assert _claim(engine, "e", at=later) == third  # released: free at once
    # A finished job is never claimed, whoever held it.
    assert _claim(engine, "f", at=later + dt.timedelta(hours=1)) in (second, third)
    with Session(engine) as session:
        rows = {j.id: j.status for j in jobs.list_jobs(session)}
    assert rows[first] == "done"


@pytest.mark.parametrize(
    "backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_runners_racing_for_one_job_have_exactly_one_winner(make_store) -> None:
    engine = make_store()
    with Session(engine) as session, session.begin():
        job_id = jobs.create_job(session, params={"corpus": "builtin"}, total=5).id
    now = dt.datetime.now(dt.UTC)
    runners = 8
    start = threading.Barrier(runners)
    won: list[int | None] = [None] * runners

    def race(index: int) -> None:
        start.wait()
        won[index] = _claim(engine, f"runner-{index}", at=now)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(won, key=str) == [job_id] + [None] * (runners - 1)


def test_a_run_is_busy_while_its_job_holds_a_live_claim(make_store) -> None:
    engine = make_store()
    t0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)
    lease = dt.timedelta(seconds=30)
    with Session(engine) as session, session.begin():
        job = jobs.create_job(session, params={"corpus": "builtin"}, total=5, run_id=None)
    assert _claim(engine, "a", at=t0) == job.id
    with Session(engine) as session, session.begin():
        register(session)
        run_id = create_run(session, model_name="glam-test", source="job")
        jobs.update_job(session, job.id, status="cancelled", run_id=run_id)
    with Session(engine) as session, session.begin():
        # Cancelled, but its runner has not let go: a commit may be in flight.
        assert jobs.active_jobs_writing(session, run_id, now=t0 + lease / 2) == [job.id]
        # A claim that ran out can neither write nor keep the run busy.
        assert jobs.active_jobs_writing(session, run_id, now=t0 + 2 * lease) == []
        assert not jobs.renew_claim(session, job.id, runner="a", lease=lease, now=t0 + 2 * lease)
        assert jobs.renew_claim(session, job.id, runner="a", lease=lease, now=t0 + lease / 2)
        jobs.release_claim(session, job.id, runner="a")
        assert jobs.active_jobs_writing(session, run_id, now=t0) == []
