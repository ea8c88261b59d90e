"""Liveness, readiness and Prometheus metrics (outside /v1: operators, not users)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from backend.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The model is loaded, its batch worker runs and the database answers",
    responses={503: {"description": "not ready, with the reason"}},
)
def readyz(state: StateDep) -> JSONResponse:
    checks = {
        "model": state.registry.main is not None,
        # Without its worker, every analysis would wait forever.
        "batcher": state.batcher.alive,
        "database": False,
    }
    reason = None
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception as error:  # any driver error means "not ready"
        reason = f"database unreachable: {type(error).__name__}"
    ready = all(checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    if reason:
        body["detail"] = reason
    return JSONResponse(body, status_code=200 if ready else status.HTTP_503_SERVICE_UNAVAILABLE)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
