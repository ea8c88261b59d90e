"""Errors as clear 4xx / 503 responses: never a traceback, never a 500 for bad input."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("glamlab")


def install(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_down(request: Request, error: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", error)
        return JSONResponse(
            {"detail": "database unavailable; the request changed nothing, retry shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> JSONResponse:
        if error.connection_invalidated:
            return await database_down(request, error)
        log.exception("database error")
        return JSONResponse(
            {"detail": "the database refused the request; nothing was written"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @app.exception_handler(LookupError)
    async def not_found(request: Request, error: LookupError) -> JSONResponse:
        message = error.args[0] if error.args else "not found"
        return JSONResponse({"detail": str(message)}, status_code=status.HTTP_404_NOT_FOUND)
