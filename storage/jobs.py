"""Background corpus-analysis jobs: their status, progress and error, as stored rows.

The backend runs the work; these functions only record it. Like the rest of `storage`, they
take a `Session` and leave committing to the caller.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from storage.errors import NotFound
from storage.schema import Job, JobStatus


@dataclasses.dataclass(frozen=True, slots=True)
class JobInfo:
    id: int
    model_id: int | None
    run_id: int | None
    status: str
    done: int
    total: int
    error: str | None
    params: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


def _info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        model_id=job.model_id,
        run_id=job.run_id,
        status=job.status,
        done=job.done,
        total=job.total,
        error=job.error,
        params=dict(job.params),
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def create_job(
    session: Session,
    *,
    params: Mapping[str, Any],
    total: int,
    model_id: int | None = None,
    run_id: int | None = None,
) -> JobInfo:
    job = Job(
        params=dict(params),
        total=total,
        done=0,
        status="queued",
        model_id=model_id,
        run_id=run_id,
    )
    session.add(job)
    session.flush()
    session.refresh(job)
    return _info(job)


def update_job(
    session: Session,
    job_id: int,
    *,
    status: JobStatus | None = None,
    done: int | None = None,
    error: str | None = None,
    run_id: int | None = None,
) -> JobInfo:
    """Record progress; NotFound if there is no such job."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if status is not None:
        job.status = status
    if done is not None:
        job.done = done
    if error is not None:
        job.error = error
    if run_id is not None:
        job.run_id = run_id
    job.updated_at = func.now()
    session.flush()
    session.refresh(job)
    return _info(job)


def get_job(session: Session, job_id: int) -> JobInfo | None:
    job = session.get(Job, job_id)
    return None if job is None else _info(job)


def list_jobs(
    session: Session, *, status: JobStatus | None = None, limit: int = 100
) -> list[JobInfo]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    return [_info(j) for j in session.scalars(stmt)]


ACTIVE: tuple[JobStatus, ...] = ("queued", "running")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _free_for(runner: str, now: dt.datetime) -> Any:
    """A job `runner` may take: nobody holds it, it holds it already, or the claim ran out
    (its runner died without letting go)."""
    return or_(Job.claimed_by.is_(None), Job.claimed_by == runner, Job.claim_expires_at < now)


def claim_job(
    session: Session, *, runner: str, lease: dt.timedelta, now: dt.datetime | None = None
) -> int | None:
    """Claim the next job for `runner` until `now + lease`; its id, or None if no job is free.

    Running jobs come first (a crash left them half done), then queued ones, oldest first.
    The claim is a conditional UPDATE, so of two runners racing for one job exactly one wins;
    on PostgreSQL the candidate is read FOR UPDATE SKIP LOCKED, so a second runner passes over
    a job being claimed instead of waiting for it. Commit to make the claim visible.
    """
    now = now or _utc_now()
    for status in ("running", "queued"):
        candidates = (
            select(Job.id)
            .where(Job.status == status, _free_for(runner, now))
            .order_by(Job.id)
            .limit(8)
            .with_for_update(skip_locked=True)
        )
        for job_id in session.scalars(candidates).all():
            claimed = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_(ACTIVE), _free_for(runner, now))
                .values(claimed_by=runner, claim_expires_at=now + lease)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount == 1:
                return job_id
    return None


def renew_claim(
    session: Session,
    job_id: int,
    *,
    runner: str,
    lease: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """Extend `runner`'s claim on the job; False if it no longer holds it (the claim ran out,
    and another runner may have taken the job over), and then it must not write for the job:
    a run whose job's claim ran out may be deleted meanwhile."""
    now = now or _utc_now()
    renewed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.claimed_by == runner, Job.claim_expires_at >= now)
        .values(claim_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return renewed.rowcount == 1


def release_claim(session: Session, job_id: int, *, runner: str) -> None:
    """Let go of the job (finished, failed or stopped): another runner may take it at once."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.claimed_by == runner)
        .values(claimed_by=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def active_jobs_writing(
    session: Session, run_id: int, *, now: dt.datetime | None = None
) -> list[int]:
    """Ids of the jobs that write, or may still write, into run `run_id`: queued or running
    ones, and cancelled ones whose runner still holds its claim (a chunk's commit may be in
    flight; the runner lets go only once it has landed)."""
    now = now or _utc_now()
    claimed = Job.claimed_by.is_not(None) & (Job.claim_expires_at >= now)
    stmt = (
        select(Job.id)
        .where(Job.run_id == run_id, Job.status.in_(ACTIVE) | claimed)
        .order_by(Job.id)
    )
    return list(session.scalars(stmt))
