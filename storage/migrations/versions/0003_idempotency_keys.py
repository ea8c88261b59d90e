"""runs.request_key: the Idempotency-Key of the request that stored a run (unique)

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


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("request_key", sa.String(length=128), nullable=True))
        batch.create_unique_constraint(op.f("uq_runs_request_key"), ["request_key"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint(op.f("uq_runs_request_key"), type_="unique")
        batch.drop_column("request_key")
