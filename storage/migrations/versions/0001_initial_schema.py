"""initial schema: catalogue, raw rows (tokens, routes) and the aggregate tables

Revision ID: 0001
Revises:
Create Date: 2026-11-28 00:54:19.714297
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("preset", sa.String(length=64), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("checkpoint_sha256", sa.String(length=64), nullable=True),
        sa.Column("num_experts", sa.SmallInteger(), nullable=False),
        sa.Column("vocab_size", sa.Integer(), nullable=False),
        sa.Column("moe_layers", sa.JSON(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("name", name=op.f("uq_models_name")),
    )
    op.create_table(
        "model_coactivation_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("expert_a", sa.SmallInteger(), nullable=False),
        sa.Column("expert_b", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_coactivation_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id",
            "layer",
            "domain",
            "expert_a",
            "expert_b",
            name=op.f("pk_model_coactivation_counts"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_domain_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("nll_sum", sa.Double(), nullable=False),
        sa.Column("nll_count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_domain_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "domain", name=op.f("pk_model_domain_counts")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_expert_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("expert", sa.SmallInteger(), nullable=False),
        sa.Column("top1", sa.BigInteger(), nullable=False),
        sa.Column("top2", sa.BigInteger(), nullable=False),
        sa.Column("kept1", sa.BigInteger(), nullable=False),
        sa.Column("kept2", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_expert_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id", "layer", "domain", "expert", name=op.f("pk_model_expert_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_layer_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("dropped1", sa.BigInteger(), nullable=False),
        sa.Column("dropped2", sa.BigInteger(), nullable=False),
        sa.Column("entropy_sum", sa.Double(), nullable=False),
        sa.Column("aux_sum", sa.Double(), nullable=False),
        sa.Column("z_sum", sa.Double(), nullable=False),
        sa.Column("pairs", sa.BigInteger(), nullable=False),
        sa.Column("same_top1", sa.BigInteger(), nullable=False),
        sa.Column("shared_top2", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_layer_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "layer", "domain", name=op.f("pk_model_layer_counts")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_position_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("dropped1", sa.BigInteger(), nullable=False),
        sa.Column("dropped2", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_position_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id", "layer", "domain", "bucket", name=op.f("pk_model_position_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_transition_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer_from", sa.SmallInteger(), nullable=False),
        sa.Column("layer_to", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("expert_from", sa.SmallInteger(), nullable=False),
        sa.Column("expert_to", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_transition_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id",
            "layer_from",
            "layer_to",
            "domain",
            "expert_from",
            "expert_to",
            name=op.f("pk_model_transition_counts"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_vocab_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_vocab_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id", "kind", "token_id", "domain", name=op.f("pk_model_vocab_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_vocab_expert_counts",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("expert", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_vocab_expert_counts_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id",
            "layer",
            "kind",
            "expert",
            "domain",
            "token_id",
            name=op.f("pk_model_vocab_expert_counts"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "model_vocab_expert_totals",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("expert", sa.SmallInteger(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_vocab_expert_totals_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id",
            "layer",
            "kind",
            "expert",
            "token_id",
            name=op.f("pk_model_vocab_expert_totals"),
        ),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("model_vocab_expert_totals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_model_vocab_expert_totals_token", ["model_id", "kind", "token_id"], unique=False
        )

    op.create_table(
        "model_vocab_totals",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_model_vocab_totals_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "kind", "token_id", name=op.f("pk_model_vocab_totals")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("pooled", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(length=256), nullable=True),
        sa.Column("n_documents", sa.Integer(), nullable=False),
        sa.Column("n_tokens", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("source IN ('request', 'job', 'generate')", name=op.f("ck_runs_source")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_runs_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_model_id_created_at", ["model_id", "created_at"], unique=False
        )

    op.create_table(
        "vocab",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("piece", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_vocab_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_id", "token_id", name=op.f("pk_vocab")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("mean_nll", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_documents_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("run_id", "ordinal", name=op.f("uq_documents_run_id")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index("ix_documents_run_id_domain", ["run_id", "domain"], unique=False)
        batch_op.create_index(
            "ix_documents_run_id_text_sha256", ["run_id", "text_sha256"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name=op.f("ck_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_jobs_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_jobs_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_status_created_at", ["status", "created_at"], unique=False)

    op.create_table(
        "run_coactivation_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("expert_a", sa.SmallInteger(), nullable=False),
        sa.Column("expert_b", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_coactivation_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id",
            "layer",
            "domain",
            "expert_a",
            "expert_b",
            name=op.f("pk_run_coactivation_counts"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_domain_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("nll_sum", sa.Double(), nullable=False),
        sa.Column("nll_count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_domain_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "domain", name=op.f("pk_run_domain_counts")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_expert_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("expert", sa.SmallInteger(), nullable=False),
        sa.Column("top1", sa.BigInteger(), nullable=False),
        sa.Column("top2", sa.BigInteger(), nullable=False),
        sa.Column("kept1", sa.BigInteger(), nullable=False),
        sa.Column("kept2", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_expert_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "layer", "domain", "expert", name=op.f("pk_run_expert_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_layer_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("dropped1", sa.BigInteger(), nullable=False),
        sa.Column("dropped2", sa.BigInteger(), nullable=False),
        sa.Column("entropy_sum", sa.Double(), nullable=False),
        sa.Column("aux_sum", sa.Double(), nullable=False),
        sa.Column("z_sum", sa.Double(), nullable=False),
        sa.Column("pairs", sa.BigInteger(), nullable=False),
        sa.Column("same_top1", sa.BigInteger(), nullable=False),
        sa.Column("shared_top2", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_layer_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "layer", "domain", name=op.f("pk_run_layer_counts")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_position_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("dropped1", sa.BigInteger(), nullable=False),
        sa.Column("dropped2", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_position_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "layer", "domain", "bucket", name=op.f("pk_run_position_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_transition_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer_from", sa.SmallInteger(), nullable=False),
        sa.Column("layer_to", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("expert_from", sa.SmallInteger(), nullable=False),
        sa.Column("expert_to", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_transition_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id",
            "layer_from",
            "layer_to",
            "domain",
            "expert_from",
            "expert_to",
            name=op.f("pk_run_transition_counts"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_vocab_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_vocab_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "kind", "token_id", "domain", name=op.f("pk_run_vocab_counts")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_vocab_expert_counts",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("expert", sa.SmallInteger(), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_vocab_expert_counts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id",
            "layer",
            "kind",
            "expert",
            "domain",
            "token_id",
            name=op.f("pk_run_vocab_expert_counts"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "routes",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("layer", sa.SmallInteger(), nullable=False),
        sa.Column("e1", sa.SmallInteger(), nullable=False),
        sa.Column("e2", sa.SmallInteger(), nullable=False),
        sa.Column("g1", sa.REAL(), nullable=False),
        sa.Column("g2", sa.REAL(), nullable=False),
        sa.Column("p1", sa.REAL(), nullable=False),
        sa.Column("p2", sa.REAL(), nullable=False),
        sa.Column("kept1", sa.Boolean(), nullable=False),
        sa.Column("kept2", sa.Boolean(), nullable=False),
        sa.Column("entropy", sa.REAL(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_routes_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "position", "layer", name=op.f("pk_routes")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tokens",
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("nll", sa.REAL(), nullable=True),
        sa.Column("predicted", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_tokens_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("document_id", "position", name=op.f("pk_tokens")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("routes")
    op.drop_table("run_vocab_expert_counts")
    op.drop_table("run_vocab_counts")
    op.drop_table("run_transition_counts")
    op.drop_table("run_position_counts")
    op.drop_table("run_layer_counts")
    op.drop_table("run_expert_counts")
    op.drop_table("run_domain_counts")
    op.drop_table("run_coactivation_counts")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_created_at")

    op.drop_table("jobs")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_run_id_text_sha256")
        batch_op.drop_index("ix_documents_run_id_domain")

    op.drop_table("documents")
    op.drop_table("vocab")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_model_id_created_at")

    op.drop_table("runs")
    op.drop_table("model_vocab_totals")
    with op.batch_alter_table("model_vocab_expert_totals", schema=None) as batch_op:
        batch_op.drop_index("ix_model_vocab_expert_totals_token")

    op.drop_table("model_vocab_expert_totals")
    op.drop_table("model_vocab_expert_counts")
    op.drop_table("model_vocab_counts")
    op.drop_table("model_transition_counts")
    op.drop_table("model_position_counts")
    op.drop_table("model_layer_counts")
    op.drop_table("model_expert_counts")
    op.drop_table("model_domain_counts")
    op.drop_table("model_coactivation_counts")
    op.drop_table("models")
