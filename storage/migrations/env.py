"""Alembic environment: migrates the database of `storage.db.alembic_config`.

The engine comes from `config.attributes["engine"]` when run from code (`storage.db.upgrade`),
else from `DATABASE_URL` (default: the SQLite file). SQLite gets batch mode, because its
ALTER TABLE cannot change or drop columns or constraints in place.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from storage.db import database_url, make_engine
from storage.schema import Base

config = context.config
target_metadata = Base.metadata


def _migrate(engine: Engine) -> None:
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode copies a table and drops the old one; with foreign keys on, that drop
            # deletes the rows that reference it (ON DELETE CASCADE). Off for the migration
            # (outside any transaction, where SQLite ignores the pragma), checked after.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=sqlite,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade --sql`)."""
    url = config.get_main_option("sqlalchemy.url") or database_url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    engine = config.attributes.get("engine")
    if engine is not None:
        _migrate(engine)
    else:
        owned = make_engine()
        try:
            _migrate(owned)
        finally:
            owned.dispose()
