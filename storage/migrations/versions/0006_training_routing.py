"""training_routing: a model's probe-set routing statistics over its training steps

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_routing",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("tokens_seen", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("saturation", sa.Double(), nullable=True),
        sa.Column("top1_agreement", sa.Double(), nullable=True),
        sa.Column("load_cv", sa.Double(), nullable=True),
        sa.Column("max_vio", sa.Double(), nullable=True),
        sa.Column("dead_experts", sa.SmallInteger(), nullable=False),
        sa.Column("drop_rate", sa.Double(), nullable=True),
        sa.Column("router_entropy", sa.Double(), nullable=True),
        sa.Column("loss", sa.Double(), nullable=True),
        sa.Column("traces_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_training_routing_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id", "step", "layer", "domain", name=op.f("pk_training_routing")
        ),
    )


def downgrade() -> None:
    op.drop_table("training_routing")
