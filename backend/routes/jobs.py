"""Corpus analysis jobs: start (built-in corpus or an uploaded JSONL), watch, cancel."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile, status
from pydantic import BaseModel, Field

from backend import jobs as job_logic
from backend.analysis import is_utf8
from backend.deps import SessionDep, StateDep, WriteAccess, WriterSessionDep
from backend.params import Id
from backend.schemas import BAD_BODY, INVALID, Problem
from storage import jobs as job_store
from storage.errors import NotFound

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
JobId = Annotated[Id, Path(description="a job id")]


class JobOut(BaseModel):
    job_id: int
    status: str = Field(description="queued | running | done | failed | cancelled")
    done: int = Field(description="documents analysed and committed")
    total: int
    error: str | None
    run_id: int | None = Field(description="the run the job writes into")
    corpus: str


def _out(info: job_store.JobInfo) -> JobOut:
    return JobOut(
        job_id=info.id,
        status=info.status,
        done=info.done,
        total=info.total,
        error=info.error,
        run_id=info.run_id,
        corpus=info.params.get("corpus", ""),
    )


def _parse_upload(data: bytes, name: str) -> list[dict[str, str]]:
    """Validate an uploaded JSONL; 422 naming the first bad line."""
    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{name}, line {number}"
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(422, f"{where}: not valid UTF-8") from None
        if "\x00" in line:
            raise HTTPException(422, f"{where}: contains a NUL byte")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise HTTPException(422, f"{where}: malformed JSON ({error.msg})") from None
        except RecursionError:  # e.g. 100k levels of "[": the parser gives up, not the server
            raise HTTPException(422, f"{where}: JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise HTTPException(422, f"{where}: expected an object with text and domain")
        text, domain = obj.get("text"), obj.get("domain")
        if not isinstance(text, str) or not text:
            raise HTTPException(422, f"{where}: 'text' must be a non-empty string")
        if not is_utf8(text) or (isinstance(domain, str) and not is_utf8(domain)):
            raise HTTPException(422, f"{where}: not valid Unicode (a lone surrogate?)")
        # An escaped NUL ("\u0000") too: PostgreSQL text cannot hold one.
        if "\x00" in text or (isinstance(domain, str) and "\x00" in domain):
            raise HTTPException(422, f"{where}: contains a NUL character")
        if not isinstance(domain, str) or not domain or len(domain) > 64:
            raise HTTPException(422, f"{where}: 'domain' must be a string of 1-64 characters")
        # The rule of every other domain label (schemas.Domain): one a filter can name.
        if any(ord(c) < 0x20 for c in domain):
            raise HTTPException(422, f"{where}: 'domain' contains a control character")
        records.append({"text": text, "domain": domain})
    if not records:
        raise HTTPException(422, f"{name}: no records")
    return records


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[WriteAccess],
    responses={**BAD_BODY, **INVALID, 401: {"model": Problem}, 413: {"model": Problem}},
    summary="Analyse a corpus in the background: the built-in one, or an uploaded JSONL",
)
def start_job(
    state: StateDep,
    session: WriterSessionDep,
    corpus: Annotated[str, Form(description="builtin | upload", pattern="^(builtin|upload)$")] = (
        "builtin"
    ),
    split: Annotated[
        str | None, Form(description="built-in corpus split: train | validation")
    ] = "validation",
    limit: Annotated[int | None, Form(ge=1, description="analyse at most this many")] = None,
    file: Annotated[UploadFile | None, File(description='JSONL of {"text","domain"}')] = None,
) -> JobOut:
    params: dict[str, Any] = {"corpus": corpus, "limit": limit}
    if corpus == "upload":
        if file is None:
            raise HTTPException(422, "corpus=upload needs a file")
        params["records"] = _parse_upload(file.file.read(), file.filename or "upload")
    else:
        if split not in ("train", "validation", None):
            raise HTTPException(422, "split must be train or validation")
        params["split"] = split
    try:
        total = len(job_logic.job_records(state, params))
    except NotFound as error:  # no built-in corpus
        raise HTTPException(422, str(error)) from None
    with session.begin():
        info = job_store.create_job(session, params=params, total=total)
    if state.jobs is not None:
        state.jobs.notify()
    return _out(info)


@router.get("/{job_id}", responses={404: {"model": Problem}}, summary="A job's progress")
def get_job(job_id: JobId, session: SessionDep) -> JobOut:
    info = job_store.get_job(session, job_id)
    if info is None:
        raise HTTPException(404, f"no job {job_id}")
    return _out(info)


@router.get("", summary="Jobs, newest first")
def list_jobs(session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[JobOut]:
    return [_out(j) for j in job_store.list_jobs(session, limit=limit)]


@router.post(
    "/{job_id}/cancel",
    dependencies=[WriteAccess],
    responses={404: {"model": Problem}, 409: {"model": Problem}},
    summary="Stop a job: the chunk being committed lands, no further chunk is written",
)
def cancel_job(job_id: JobId, session: WriterSessionDep) -> JobOut:
    with session.begin():
        info = job_store.get_job(session, job_id)
        if info is None:
            raise HTTPException(404, f"no job {job_id}")
        if info.status in ("done", "failed", "cancelled"):
            raise HTTPException(409, f"job {job_id} is already {info.status}")
        info = job_store.update_job(session, job_id, status="cancelled")
    return _out(info)
