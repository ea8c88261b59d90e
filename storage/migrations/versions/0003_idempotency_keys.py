"""runs.request_key: the Idempotency-Key of the request that stored a run (unique index)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A column and a unique index, both added in place on SQLite too: a unique *constraint* would
# make batch mode copy `runs`, and dropping the old copy deletes its rows' documents by cascade.


def upgrade() -> None:
    op.add_column("runs", sa.Column("request_key", sa.String(length=128), nullable=True))
    op.create_index(op.f("ix_runs_request_key"), "runs", ["request_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_request_key"), table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("request_key")
