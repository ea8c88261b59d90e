"""run/model_vocab_expert_counts: an index on (scope, kind, token_id) for one token's experts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_run_vocab_expert_counts_token",
        "run_vocab_expert_counts",
        ["run_id", "kind", "token_id", "layer"],
    )
    op.create_index(
        "ix_model_vocab_expert_counts_token",
        "model_vocab_expert_counts",
        ["model_id", "kind", "token_id", "layer"],
    )


def downgrade() -> None:
    op.drop_index("ix_model_vocab_expert_counts_token", table_name="model_vocab_expert_counts")
    op.drop_index("ix_run_vocab_expert_counts_token", table_name="run_vocab_expert_counts")
