"""Dependencies shared by the routes: the app's state, a database session, the API key."""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from backend.batching import Batcher
from backend.metrics import Metrics
from backend.registry import ModelRegistry
from backend.settings import Settings
from storage.maintenance import StatisticsKeeper

log = logging.getLogger("glamlab")


@dataclasses.dataclass
class AppState:
    """What the lifespan builds once and every request shares."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # for reads
    writer: sessionmaker[Session]  # for transactions that write (SQLite: BEGIN IMMEDIATE)
    registry: ModelRegistry
    batcher: Batcher
    metrics: Metrics
    keeper: StatisticsKeeper  # vacuums and analyses PostgreSQL as runs are written
    jobs: object | None = None  # backend.jobs.JobRunner, set once it starts
    model_registered: bool = False  # the served model and its vocabulary are in the store

    @property
    def model_name(self) -> str:
        return self.registry.main.config.name

    @property
    def max_tokens(self) -> int:
        cfg = self.registry.main.config
        return min(self.settings.max_tokens_per_text or cfg.max_len, cfg.max_len)


def get_state(request: Request) -> AppState:
    return request.app.state.glamlab


StateDep = Annotated[AppState, Depends(get_state)]


def _open(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
    finally:
        # Closing rolls back what the request left open. When the database went away after
        # the answer was made, that rollback fails; nothing uncommitted survives its connection
        # anyway, so the failure is logged, not raised: raised here, after the endpoint, it
        # aborted the finished response (the client saw a connection reset, found by
        # tests/reliability/test_faults.py stopping PostgreSQL under load).
        try:
            session.close()
        except DBAPIError as error:
            if error.connection_invalidated:
                log.warning("closing a session whose connection is gone: %s", error)
            else:  # not a lost connection: worth a traceback, still not the client's problem
                log.exception("closing a session failed")


def get_session(state: StateDep) -> Iterator[Session]:
    yield from _open(state.sessions)


SessionDep = Annotated[Session, Depends(get_session)]


def get_writer_session(state: StateDep) -> Iterator[Session]:
    yield from _open(state.writer)


WriterSessionDep = Annotated[Session, Depends(get_writer_session)]

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
KeyHeader = Annotated[str | None, Security(_api_key_header)]


def require_api_key(state: StateDep, key: KeyHeader) -> None:
    """Writes and model compute need the key when one is configured."""
    _check_key(state, key)


def require_read_key(state: StateDep, key: KeyHeader) -> None:
    """Reads need the key too when one is configured, unless `protect_reads` is off."""
    if state.settings.protect_reads:
        _check_key(state, key)


def _check_key(state: AppState, key: str | None) -> None:
    expected = state.settings.api_key
    if expected is None:
        return
    # Constant-time comparison: the response time says nothing about how much matched.
    if key is None or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong X-API-Key header",
            headers={"WWW-Authenticate": "APIKey"},
        )


WriteAccess = Depends(require_api_key)
ReadAccess = Depends(require_read_key)  # on every /v1 router (backend/app.py)
