"""bulk rows without foreign keys: tokens, routes and the run_* aggregates

Their ids are written only by ingest and removed only by delete_run (see BULK_ROWS_NOTE in
storage.schema); the constraints re-checked every copied row, most of their COPY time on
PostgreSQL. SQLite cannot drop a constraint in place: batch mode copies each table (WITHOUT ROWID
kept).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 03:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_TABLES = (
    "run_coactivation_counts",
    "run_domain_counts",
    "run_expert_counts",
    "run_layer_counts",
    "run_position_counts",
    "run_transition_counts",
    "run_vocab_counts",
    "run_vocab_expert_counts",
)
# table -> (column, referenced table)
CONSTRAINED = {
    "tokens": ("document_id", "documents"),
    "routes": ("document_id", "documents"),
    **{table: ("run_id", "runs") for table in RUN_TABLES},
}
CLUSTERED = {"sqlite_with_rowid": False}


def upgrade() -> None:
    for table, (column, parent) in CONSTRAINED.items():
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.drop_constraint(f"fk_{table}_{column}_{parent}", type_="foreignkey")


def downgrade() -> None:
    for table, (column, parent) in CONSTRAINED.items():
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.create_foreign_key(
                f"fk_{table}_{column}_{parent}", parent, [column], ["id"], ondelete="CASCADE"
            )
