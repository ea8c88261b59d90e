"""top-k routes: k choices per token and layer, wherever a rank was a column suffix

* `models.top_k`: k, the choices per token (2 for every model stored so far);
* `route_choices`: one row per choice of a route (rank, expert, gate, prob, kept), filled
  from the rank-suffixed columns of `routes`, which keeps only what is one number per route;
* `*_expert_counts`: keyed by rank, with `chosen` and `kept` (from top1/kept1, top2/kept2);
* `*_layer_counts`: the per-rank drops are the expert counts' `chosen - kept`, so dropped1
  and dropped2 go; `shared_top2` is `shared_topk`;
* `*_position_counts`: `dropped` (assignments, any rank) and `dropped_top1`.

Every stored row is kept. Downgrading keeps ranks 0 and 1 (the only ones an older schema
can hold).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLUSTERED = {"sqlite_with_rowid": False}
SCOPES = {"run": "run_id", "model": "model_id"}
EXPERT_KEYS = ("layer", "domain", "expert")


def _create_route_choices() -> None:
    op.create_table(
        "route_choices",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("expert", sa.SmallInteger(), nullable=False),
        sa.Column("gate", sa.REAL(), nullable=False),
        sa.Column("prob", sa.REAL(), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint(
            "document_id", "position", "layer", "rank", name=op.f("pk_route_choices")
        ),
        **CLUSTERED,
    )


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("top_k", sa.SmallInteger(), server_default="2", nullable=False))

    _create_route_choices()
    for rank, suffix in ((0, "1"), (1, "2")):
        op.execute(
            "INSERT INTO route_choices (document_id, position, layer, rank, expert, gate, prob, "
            f"kept) SELECT document_id, position, layer, {rank}, e{suffix}, g{suffix}, "
            f"p{suffix}, kept{suffix} FROM routes"
        )
    with op.batch_alter_table("routes", table_kwargs=CLUSTERED) as batch:
        for column in ("e1", "e2", "g1", "g2", "p1", "p2", "kept1", "kept2"):
            batch.drop_column(column)

    for scope, key in SCOPES.items():
        table = f"{scope}_expert_counts"
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.add_column(
                sa.Column("rank", sa.SmallInteger(), server_default="0", nullable=False)
            )
            batch.alter_column("top1", new_column_name="chosen")
            batch.alter_column("kept1", new_column_name="kept")
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [key, *EXPERT_KEYS, "rank"])
        columns = ", ".join((key, *EXPERT_KEYS))
        op.execute(
            f"INSERT INTO {table} ({columns}, rank, chosen, kept, top2, kept2) "
            f"SELECT {columns}, 1, top2, kept2, 0, 0 FROM {table} WHERE rank = 0 AND top2 > 0"
        )
        op.execute(f"DELETE FROM {table} WHERE chosen = 0")  # rows that count nothing
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.drop_column("top2")
            batch.drop_column("kept2")
            batch.alter_column("rank", server_default=None)

        table = f"{scope}_layer_counts"
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.drop_column("dropped1")
            batch.drop_column("dropped2")
            batch.alter_column("shared_top2", new_column_name="shared_topk")

        table = f"{scope}_position_counts"
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.add_column(
                sa.Column("dropped", sa.BigInteger(), server_default="0", nullable=False)
            )
            batch.alter_column("dropped1", new_column_name="dropped_top1")
        op.execute(f"UPDATE {table} SET dropped = dropped_top1 + dropped2")
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.drop_column("dropped2")
            batch.alter_column("dropped", server_default=None)


def downgrade() -> None:
    for scope, key in SCOPES.items():
        table = f"{scope}_position_counts"
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.add_column(
                sa.Column("dropped2", sa.BigInteger(), server_default="0", nullable=False)
            )
            batch.alter_column("dropped_top1", new_column_name="dropped1")
        op.execute(f"UPDATE {table} SET dropped2 = dropped - dropped1")
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.drop_column("dropped")
            batch.alter_column("dropped2", server_default=None)

        # The per-rank drops lived here; they are rebuilt from the expert counts below.
        table = f"{scope}_layer_counts"
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.add_column(
                sa.Column("dropped1", sa.BigInteger(), server_default="0", nullable=False)
            )
            batch.add_column(
                sa.Column("dropped2", sa.BigInteger(), server_default="0", nullable=False)
            )
            batch.alter_column("shared_topk", new_column_name="shared_top2")
        experts = f"{scope}_expert_counts"
        for rank, column in ((0, "dropped1"), (1, "dropped2")):
            op.execute(
                f"UPDATE {table} SET {column} = (SELECT COALESCE(SUM(e.chosen - e.kept), 0) "
                f"FROM {experts} e WHERE e.{key} = {table}.{key} AND e.layer = {table}.layer "
                f"AND e.domain = {table}.domain AND e.rank = {rank})"
            )

        table = experts
        columns = ", ".join((key, *EXPERT_KEYS))
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.add_column(sa.Column("top2", sa.BigInteger(), server_default="0", nullable=False))
            batch.add_column(
                sa.Column("kept2", sa.BigInteger(), server_default="0", nullable=False)
            )
        # Fold rank 1 into the rank-0 row of the same key (creating it where only rank 1
        # existed), then drop every other rank.
        op.execute(
            f"INSERT INTO {table} ({columns}, rank, chosen, kept, top2, kept2) "
            f"SELECT {columns}, 0, 0, 0, 0, 0 FROM {table} r1 WHERE r1.rank = 1 AND NOT EXISTS "
            f"(SELECT 1 FROM {table} r0 WHERE r0.rank = 0 AND "
            + " AND ".join(f"r0.{c} = r1.{c}" for c in (key, *EXPERT_KEYS))
            + ")"
        )
        match = " AND ".join(f"r1.{c} = {table}.{c}" for c in (key, *EXPERT_KEYS))
        for target, source in (("top2", "chosen"), ("kept2", "kept")):
            op.execute(
                f"UPDATE {table} SET {target} = COALESCE((SELECT r1.{source} FROM {table} r1 "
                f"WHERE r1.rank = 1 AND {match}), 0) WHERE rank = 0"
            )
        op.execute(f"DELETE FROM {table} WHERE rank <> 0")
        with op.batch_alter_table(table, table_kwargs=CLUSTERED) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [key, *EXPERT_KEYS])
            batch.drop_column("rank")
            batch.alter_column("chosen", new_column_name="top1")
            batch.alter_column("kept", new_column_name="kept1")

    with op.batch_alter_table("routes", table_kwargs=CLUSTERED) as batch:
        for column, kind in (
            ("e1", sa.SmallInteger()),
            ("e2", sa.SmallInteger()),
            ("g1", sa.REAL()),
            ("g2", sa.REAL()),
            ("p1", sa.REAL()),
            ("p2", sa.REAL()),
            ("kept1", sa.Boolean()),
            ("kept2", sa.Boolean()),
        ):
            batch.add_column(sa.Column(column, kind, nullable=True))
    for rank, suffix in ((0, "1"), (1, "2")):
        for column, source in (("e", "expert"), ("g", "gate"), ("p", "prob"), ("kept", "kept")):
            op.execute(
                f"UPDATE routes SET {column}{suffix} = (SELECT c.{source} FROM route_choices c "
                "WHERE c.document_id = routes.document_id AND c.position = routes.position "
                f"AND c.layer = routes.layer AND c.rank = {rank})"
            )
    op.drop_table("route_choices")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("top_k")
