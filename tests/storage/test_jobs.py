"""Jobs record status and progress."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from storage import jobs
from storage.errors import NotFound


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
