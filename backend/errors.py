"""Errors as clear 4xx / 503 responses: never a traceback, never a 500 for bad input.

Only the exceptions that mean "not found" (`storage.errors.NotFound`) and "database away"
are mapped; anything else is a bug and a logged 500, so that tests (the schemathesis fuzz
tests of tests/reliability among them) find it instead of reading a plausible 404 or 503.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from storage.errors import NotFound

log = logging.getLogger("glamlab")


def _database_down(error: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", error)
    return JSONResponse(
        {"detail": "database unavailable; the request changed nothing, retry shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "2"},
    )


def _internal_error(request: Request, error: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return JSONResponse(
        {"detail": "internal error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def database_down(request: Request, error: Exception) -> JSONResponse:
        return _database_down(error)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> JSONResponse:
        # A lost connection is "database away" whatever its class; an IntegrityError, a
        # ProgrammingError or a DataError is a bug in what the service sent.
        if error.connection_invalidated:
            return _database_down(error)
        return _internal_error(request, error)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound) -> JSONResponse:
        message = error.args[0] if error.args else "not found"
        return JSONResponse({"detail": str(message)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        return _internal_error(request, error)
