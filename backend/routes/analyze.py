"""Analyse texts: every token's routing, optionally stored as a run."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from backend import analysis
from backend.deps import StateDep, WriteAccess
from backend.params import IdempotencyKey
from backend.schemas import (
    BAD_BODY,
    DATABASE_DOWN,
    INVALID,
    AnalyzeRequest,
    AnalyzeResponse,
    Problem,
)

router = APIRouter(prefix="/v1", tags=["analyze"])

ERRORS = {
    **BAD_BODY,
    401: {"model": Problem, "description": "API key required"},
    413: {"model": Problem, "description": "too many texts or tokens"},
    **INVALID,
    **DATABASE_DOWN,
}


@router.post(
    "/analyze",
    dependencies=[WriteAccess],
    responses=ERRORS,
    response_model=AnalyzeResponse,
    summary="Run texts through the model and return (and store) their routing",
)
async def analyze(
    body: AnalyzeRequest, state: StateDep, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    options = analysis.route_request(
        state,
        checkpoint=body.checkpoint,
        ablate=body.ablate,
        capacity_factor=body.capacity_factor,
        router_probs=body.router_probs,
    )
    sequences = analysis.tokenize(state, body.texts)
    trace = await analysis.run_model(state, sequences, options)
    run_id, document_ids = None, None
    if body.store:

        def write() -> tuple[int, list[int]]:
            with state.writer() as session:
                return analysis.store_run(
                    session, state, trace=trace, texts=body.texts, domains=body.domain,
                    options=options, request_key=idempotency_key,
                )  # fmt: skip

        run_id, document_ids = await asyncio.to_thread(write)
    cfg = state.registry.main.config
    # Already in AnalyzeResponse's shape (tested against it): skip re-validating every token.
    return JSONResponse(
        {
            "run_id": run_id,
            "model": cfg.name,
            "checkpoint": options.checkpoint,
            "moe_layers": list(cfg.moe_layers),
            "num_experts": cfg.num_experts,
            "top_k": cfg.top_k,
            "documents": analysis.documents_from_trace(
                trace, state.registry.main.tokenizer, [body.domain] * len(body.texts),
                document_ids,
            ),
        }
    )  # fmt: skip
