"""jobs.claimed_by, jobs.claim_expires_at: which runner holds a job, until when

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("claimed_by", sa.String(length=128), nullable=True))
    op.add_column("jobs", sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claim_expires_at")
        batch.drop_column("claimed_by")
