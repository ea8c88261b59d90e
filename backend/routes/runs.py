"""Stored runs: list (cursor pagination), inspect, read tokens, export, delete."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from backend.deps import AppState, SessionDep, StateDep, WriteAccess, WriterSessionDep
from backend.params import MAX_ID, Id, Name
from backend.schemas import Problem
from storage import export, ingest
from storage import jobs as job_store
from storage import runs as run_store

router = APIRouter(prefix="/v1/runs", tags=["runs"])
RunId = Annotated[Id, Path(description="a run id")]
NOT_FOUND = {404: {"model": Problem, "description": "no such run"}}


class RunOut(BaseModel):
    id: int
    model: str
    source: str
    parameters: dict[str, Any]
    pooled: bool = Field(description="counts in the model-wide statistics (no intervention)")
    label: str | None
    n_documents: int
    n_tokens: int
    created_at: str
    domains: list[str]


class RunPage(BaseModel):
    runs: list[RunOut]
    next_cursor: int | None = Field(description="pass as `cursor` for the next page")


def _run_out(info: run_store.RunInfo) -> RunOut:
    data = dataclasses.asdict(info)
    data["created_at"] = info.created_at.isoformat()
    data["domains"] = list(info.domains)
    return RunOut(**data)


@router.get("", summary="Runs, newest first")
def list_runs(
    session: SessionDep,
    model: Annotated[Name | None, Query()] = None,
    source: Literal["request", "job", "generate"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Id | None, Query(description="runs older than this id")] = None,
) -> RunPage:
    runs = run_store.list_runs(session, model=model, source=source, limit=limit + 1, before=cursor)
    page = runs[:limit]
    return RunPage(
        runs=[_run_out(r) for r in page],
        next_cursor=page[-1].id if len(runs) > limit else None,
    )


def _get(session: SessionDep, run_id: int) -> run_store.RunInfo:
    info = run_store.get_run(session, run_id)
    if info is None:
        raise HTTPException(404, f"no run {run_id}")
    return info


@router.get("/{run_id}", responses=NOT_FOUND, summary="One run")
def get_run(run_id: RunId, session: SessionDep) -> RunOut:
    return _run_out(_get(session, run_id))


@router.get("/{run_id}/tokens", responses=NOT_FOUND, summary="A run's documents with routing")
def run_tokens(
    run_id: RunId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> list[dict[str, Any]]:
    _get(session, run_id)
    return [
        dataclasses.asdict(doc)
        for doc in run_store.run_tokens(session, run_id, limit=limit, offset=offset)
    ]


@router.delete(
    "/{run_id}",
    status_code=204,
    dependencies=[WriteAccess],
    responses={**NOT_FOUND, 409: {"model": Problem, "description": "a job writes the run"}},
    summary="Delete a run and its share of every statistic",
)
def delete_run(run_id: RunId, session: WriterSessionDep) -> Response:
    busy = job_store.active_jobs_writing(session, run_id)
    if busy:
        raise HTTPException(
            409,
            f"job {busy[0]} is writing run {run_id}; cancel it first (a cancelled job "
            "finishes the chunk it is committing: retry a moment later)",
        )
    session.rollback()  # end the read, so the delete runs in a transaction of its own
    with session.begin():
        if not ingest.delete_run(session, run_id):
            raise HTTPException(404, f"no run {run_id}")
    return Response(status_code=204)


def _streamed(state: AppState, run_id: int, encode) -> Iterator[bytes]:
    """The export's bytes, read in a session of its own: the response streams after the
    route has returned (and its session has closed)."""
    with state.sessions() as session:
        yield from encode(export.run_batches(session, run_id))


@router.get(
    "/{run_id}/export",
    responses={
        **NOT_FOUND,
        200: {"content": {"text/csv": {}, export.PARQUET_MEDIA_TYPE: {}}},
    },
    summary="Every token x MoE layer x choice of a run, as CSV or Parquet (streamed)",
)
def export_run(
    run_id: RunId,
    session: SessionDep,
    state: StateDep,
    format: Literal["csv", "parquet"] = "csv",
) -> StreamingResponse:
    """Long format, one row per choice (rank 0 = top-1): document_id, domain, position,
    token_id, piece, nll, predicted, layer, entropy, rank, expert, gate, prob, kept. Streamed
    a few documents at a time, so a run of any size costs the memory of one chunk."""
    _get(session, run_id)
    filename = f"run-{run_id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "parquet":
        body = _streamed(state, run_id, export.parquet_stream)
        return StreamingResponse(body, media_type=export.PARQUET_MEDIA_TYPE, headers=headers)
    body = _streamed(state, run_id, export.csv_stream)
    return StreamingResponse(body, media_type="text/csv", headers=headers)
