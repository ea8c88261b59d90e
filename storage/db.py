"""Database connections and migrations: engines, sessions, and Alembic run from code.

`DATABASE_URL` selects the database; without it, a SQLite file under `data/` beside the
package. Migrations are found next to this module, so `upgrade(url)` works from any working
directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_SQLITE_PATH = Path(__file__).resolve().parents[1] / "data" / "glam.sqlite"

# How long a SQLite writer waits for another writer's lock before failing, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 10_000


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else `DATABASE_URL`, else the default SQLite file.

    A bare `postgresql://` URL gets the psycopg 3 driver, the only one the project installs.
    """
    url = url or os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH}"
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # BEGIN precedes every statement of a transaction and SAVEPOINTs behave (SQLAlchemy
        # docs, "Serializable isolation / Savepoints / Transactional DDL").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers (the API) never block on the writer (a corpus job), and commits are
        # cheap; NORMAL sync is durable across application crashes in WAL mode.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Deferred by default, so readers never wait for a writer. Sessions made for writing
        # (session_factory(writes=True)) begin IMMEDIATE: they take the write lock first,
        # waiting up to busy_timeout, because a deferred transaction that reads and then
        # writes fails at once with "database is locked" when another writer committed
        # since its read (busy_timeout does not apply to that conflict).
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (see `database_url`), with the SQLite pragmas applied."""
    url = database_url(url)
    if is_sqlite(url):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def session_factory(engine: Engine, *, writes: bool = False) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (results outlive their session).

    `writes=True`: for transactions that write; on SQLite they begin IMMEDIATE (see
    `_configure_sqlite`), elsewhere nothing changes.
    """
    bind = engine
    if writes and engine.dialect.name == "sqlite":
        bind = engine.execution_options(sqlite_begin="IMMEDIATE")
    return sessionmaker(bind, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at this package's migrations, independent of the CWD.

    With `engine`, migrations run on a connection of that engine (env.py picks it up from
    `config.attributes`); without, env.py uses `database_url()`.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(url: str | Engine | None = None, revision: str = "head") -> None:
    """Apply migrations up to `revision` on the database at `url` (or of an engine)."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        command.upgrade(alembic_config(engine), revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def check(url: str | Engine | None = None) -> None:
    """Raise `alembic.util.AutogenerateDiffsDetected` if the database differs from the models."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        command.check(alembic_config(engine))
    finally:
        if not isinstance(url, Engine):
            engine.dispose()
