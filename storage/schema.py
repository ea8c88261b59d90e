"""The SQL schema: typed SQLAlchemy 2 models on one `DeclarativeBase`.

Three kinds of tables:

* catalogue: `models`, `vocab`, `runs`, `documents`, `jobs`;
* raw rows: `tokens` (one per valid token), `routes` (one per valid token per MoE layer) and
  `route_choices` (one per choice: k per route), read only by the token explorer, expert
  examples, router saturation and exports;
* aggregates (`storage/schema_aggregates.py`): counts and sums that answer every statistic
  without scanning `routes`, written in the same transaction as the rows they summarise.

Alembic (`storage/migrations/`) is the only way this schema reaches a database; the naming
convention below gives every constraint a stable name so that migrations can refer to them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    JSON,
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RunSource = Literal["request", "job", "generate"]
JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]

# SQLite stores tables keyed by their primary key without a hidden rowid when asked: the raw
# rows are inserted in key order and read by key ranges, so the clustered layout saves a
# second B-tree per table. PostgreSQL ignores the option.
CLUSTERED = {"sqlite_with_rowid": False}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """The one declarative base; its metadata is Alembic's target."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[int]: JSON}


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Model(Base):
    """A model (one checkpoint of one configuration) whose routing is stored."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    preset: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    num_experts: Mapped[int] = mapped_column(SmallInteger)  # E: every baseline depends on it
    top_k: Mapped[int] = mapped_column(SmallInteger, server_default="2")  # k, as do they
    vocab_size: Mapped[int] = mapped_column(Integer)  # V: baseline of the loss, ln V
    moe_layers: Mapped[list[int] | None] = mapped_column()  # absolute layer indices
    created_at: Mapped[dt.datetime] = _now()


class Vocab(Base):
    """Tokenizer pieces of a model, so results can show text instead of ids."""

    __tablename__ = "vocab"
    __table_args__ = (PrimaryKeyConstraint("model_id", "token_id"), CLUSTERED)

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    token_id: Mapped[int] = mapped_column(Integer)
    piece: Mapped[str] = mapped_column(Text)


class Run(Base):
    """One analysis: a forward pass (or a corpus of them) over some documents."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_in("source", get_args(RunSource)), name="source"),
        Index("ix_runs_model_id_created_at", "model_id", "created_at"),
        Index("ix_runs_request_key", "request_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    # ablation, capacity_factor, checkpoint, ... exactly as the caller ran the model
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # True when the run changed nothing about the model (no ablation, no capacity override,
    # no other checkpoint): only such runs are pooled into the model-wide aggregates.
    pooled: Mapped[bool] = mapped_column(Boolean)
    label: Mapped[str | None] = mapped_column(String(256))
    n_documents: Mapped[int] = mapped_column(Integer, default=0)
    n_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # The client's Idempotency-Key of the request that stored the run: a retried request
    # (e.g. after a commit whose answer was lost) finds its run instead of storing it twice.
    request_key: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = _now()


class Document(Base):
    """One row of an analysed batch: a text, its domain label, and its mean loss."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("run_id", "ordinal"),
        Index("ix_documents_run_id_domain", "run_id", "domain"),
        # router saturation pairs the documents of two runs by their text
        Index("ix_documents_run_id_text_sha256", "run_id", "text_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)  # position of the document within its run
    domain: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    n_tokens: Mapped[int] = mapped_column(Integer)
    mean_nll: Mapped[float | None] = mapped_column(Double)


class Job(Base):
    """A background corpus analysis, with its progress."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", get_args(JobStatus)), name="status"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()
    # The runner working on the job and until when its claim holds (storage.jobs.claim_job):
    # two API processes on one database never run the same job.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class TrainingRouting(Base):
    """One point of a model's routing over training: the statistics of its probe set at one
    saved training step, one MoE layer and one domain ('' = the whole probe set).

    Written whole from the traces shipped with the model (glam/probes.py); `traces_sha256`
    names the file they came from, so a restart with the same file writes nothing.
    """

    __tablename__ = "training_routing"
    __table_args__ = (PrimaryKeyConstraint("model_id", "step", "layer", "domain"),)

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    layer: Mapped[int] = mapped_column(SmallInteger)
    domain: Mapped[str] = mapped_column(String(64))
    tokens_seen: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[int] = mapped_column(Integer)  # probe tokens in this point
    saturation: Mapped[float | None] = mapped_column(Double)  # vs the last step (OLMoE eq. 5)
    top1_agreement: Mapped[float | None] = mapped_column(Double)
    load_cv: Mapped[float | None] = mapped_column(Double)
    max_vio: Mapped[float | None] = mapped_column(Double)
    dead_experts: Mapped[int] = mapped_column(SmallInteger)
    drop_rate: Mapped[float | None] = mapped_column(Double)
    router_entropy: Mapped[float | None] = mapped_column(Double)
    loss: Mapped[float | None] = mapped_column(Double)
    traces_sha256: Mapped[str] = mapped_column(String(64))


# BULK_ROWS_NOTE: tokens, routes and the run_* aggregates carry their document or run id
# without a FOREIGN KEY constraint. They are written only by `storage.ingest`, in the
# transaction that creates their document or run, and deleted only by `delete_run`, which
# removes them explicitly; a constraint re-checked every row of every COPY: three quarters
# of the PostgreSQL COPY time of routes and tokens.


class Token(Base):
    """One valid (non-padding) token of a document."""

    __tablename__ = "tokens"
    __table_args__ = (PrimaryKeyConstraint("document_id", "position"), CLUSTERED)

    document_id: Mapped[int] = mapped_column(Integer)  # documents.id, see BULK_ROWS_NOTE
    position: Mapped[int] = mapped_column(Integer)
    token_id: Mapped[int] = mapped_column(Integer)
    nll: Mapped[float | None] = mapped_column(REAL)  # NULL where there is no next token
    predicted: Mapped[int] = mapped_column(Integer)


class Route(Base):
    """One valid token at one MoE layer: what is one number per route (its k choices are
    `RouteChoice` rows)."""

    __tablename__ = "routes"
    __table_args__ = (PrimaryKeyConstraint("document_id", "position", "layer"), CLUSTERED)

    document_id: Mapped[int] = mapped_column(Integer)  # documents.id, see BULK_ROWS_NOTE
    position: Mapped[int] = mapped_column(Integer)
    layer: Mapped[int] = mapped_column(SmallInteger)  # absolute layer index
    entropy: Mapped[float] = mapped_column(REAL)  # router entropy in nats


class RouteChoice(Base):
    """One of the k choices of a valid token at one MoE layer, in rank order (0 = top-1)."""

    __tablename__ = "route_choices"
    __table_args__ = (
        PrimaryKeyConstraint("document_id", "position", "layer", "rank"),
        CLUSTERED,
    )

    document_id: Mapped[int] = mapped_column(Integer)  # documents.id, see BULK_ROWS_NOTE
    position: Mapped[int] = mapped_column(Integer)
    layer: Mapped[int] = mapped_column(SmallInteger)
    rank: Mapped[int] = mapped_column(SmallInteger)
    expert: Mapped[int] = mapped_column(SmallInteger)
    gate: Mapped[float] = mapped_column(REAL)  # final combine weight (after drops, scaling)
    prob: Mapped[float] = mapped_column(REAL)  # the router's score of the choice
    kept: Mapped[bool] = mapped_column(Boolean)


# The aggregate tables live in their own module; importing it registers them on Base.metadata.
from storage import schema_aggregates as _aggregates  # noqa: E402, F401
