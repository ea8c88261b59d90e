"""Aggregate tables: the counts and sums every routing statistic is computed from.

Each family of counts exists twice, with the same columns:

* `run_<family>`: keyed by run, exact for any choice of runs and domains, and removed with
  its run (a run's share is exactly its rows);
* `model_<family>`: keyed by model, the sum over the model's pooled runs (runs without an
  intervention), so a model-wide statistic reads a few rows however many runs exist.

The vocabulary counts also have model-wide totals over all domains (`model_vocab_*_totals`),
because they are the one family large enough for the domain key to slow the unfiltered
query down.

Ingest writes both in the transaction that writes the rows they summarise; deleting a run
subtracts its `run_*` rows from the `model_*` rows. Counts are over valid tokens; "chosen"
means in the token's top-k whether or not capacity dropped the assignment; `rank` is the
choice's place in the top-k (0 = top-1).
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.schema import CLUSTERED, Base

# Width, in positions, of the buckets of the drop-by-position statistic. Queries may merge
# buckets into any multiple of it.
POSITION_BUCKET = 32

# `kind` of the vocabulary tables: which token a count is about.
TOKEN_KINDS = {"input": 0, "predicted": 1}


def _key() -> Mapped[int]:
    return mapped_column(SmallInteger)


def _domain() -> Mapped[str]:
    return mapped_column(String(64))


def _count() -> Mapped[int]:
    return mapped_column(BigInteger)


def _sum() -> Mapped[float]:
    return mapped_column(Double)


class _Run:
    # runs.id, without a constraint: see BULK_ROWS_NOTE in storage.schema.
    run_id: Mapped[int] = mapped_column(Integer)


class _Model:
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))


class ExpertCounts:
    """Per layer x domain x expert x rank: tokens choosing the expert at that rank, and kept.
    A rank's drops are its `chosen - kept` summed over experts."""

    KEYS = ("layer", "domain", "expert", "rank")
    VALUES = ("chosen", "kept")
    PRESENCE = ("chosen",)

    layer: Mapped[int] = _key()
    domain: Mapped[str] = _domain()
    expert: Mapped[int] = _key()
    rank: Mapped[int] = _key()
    chosen: Mapped[int] = _count()
    kept: Mapped[int] = _count()


class LayerCounts:
    """Per layer x domain: tokens, entropy and loss sums, adjacent-token agreement."""

    KEYS = ("layer", "domain")
    VALUES = (
        "tokens",
        "entropy_sum",
        "aux_sum",  # sum over the domain's tokens of their own row's aux_loss
        "z_sum",
        "pairs",  # adjacent valid token pairs within a document
        "same_top1",
        "shared_topk",  # pairs whose top-k sets intersect
    )
    PRESENCE = ("tokens",)

    layer: Mapped[int] = _key()
    domain: Mapped[str] = _domain()
    tokens: Mapped[int] = _count()
    entropy_sum: Mapped[float] = _sum()
    aux_sum: Mapped[float] = _sum()
    z_sum: Mapped[float] = _sum()
    pairs: Mapped[int] = _count()
    same_top1: Mapped[int] = _count()
    shared_topk: Mapped[int] = _count()


class PositionCounts:
    """Per layer x domain x position bucket: tokens, dropped assignments (any rank) and
    dropped top-1 choices."""

    KEYS = ("layer", "domain", "bucket")
    VALUES = ("tokens", "dropped", "dropped_top1")
    PRESENCE = ("tokens",)

    layer: Mapped[int] = _key()
    domain: Mapped[str] = _domain()
    bucket: Mapped[int] = _key()  # position // POSITION_BUCKET
    tokens: Mapped[int] = _count()
    dropped: Mapped[int] = _count()
    dropped_top1: Mapped[int] = _count()


class CoactivationCounts:
    """Per layer x domain x expert pair (a < b): tokens with both experts in their top-k."""

    KEYS = ("layer", "domain", "expert_a", "expert_b")
    VALUES = ("n",)
    PRESENCE = ("n",)

    layer: Mapped[int] = _key()
    domain: Mapped[str] = _domain()
    expert_a: Mapped[int] = _key()
    expert_b: Mapped[int] = _key()
    n: Mapped[int] = _count()


class TransitionCounts:
    """Per MoE layer pair (from < to) x domain: tokens by (top-1 at from, top-1 at to)."""

    KEYS = ("layer_from", "layer_to", "domain", "expert_from", "expert_to")
    VALUES = ("n",)
    PRESENCE = ("n",)

    layer_from: Mapped[int] = _key()
    layer_to: Mapped[int] = _key()
    domain: Mapped[str] = _domain()
    expert_from: Mapped[int] = _key()
    expert_to: Mapped[int] = _key()
    n: Mapped[int] = _count()


class VocabExpertCounts:
    """Per layer x kind x expert x domain x token id: tokens choosing the expert (N_{x,e})."""

    KEYS = ("layer", "kind", "expert", "domain", "token_id")
    VALUES = ("n",)
    PRESENCE = ("n",)

    layer: Mapped[int] = _key()
    kind: Mapped[int] = _key()  # TOKEN_KINDS: the input token or the predicted token
    expert: Mapped[int] = _key()
    domain: Mapped[str] = _domain()
    token_id: Mapped[int] = mapped_column()
    n: Mapped[int] = _count()


class VocabCounts:
    """Per kind x token id x domain: occurrences of the token (N_x)."""

    KEYS = ("kind", "token_id", "domain")
    VALUES = ("n",)
    PRESENCE = ("n",)

    kind: Mapped[int] = _key()
    token_id: Mapped[int] = mapped_column()
    domain: Mapped[str] = _domain()
    n: Mapped[int] = _count()


class VocabExpertTotals:
    """`VocabExpertCounts` summed over domains, model-wide only: the unfiltered vocabulary
    statistic then reads one row per token instead of one per token and domain."""

    KEYS = ("layer", "kind", "expert", "token_id")
    VALUES = ("n",)
    PRESENCE = ("n",)

    layer: Mapped[int] = _key()
    kind: Mapped[int] = _key()
    expert: Mapped[int] = _key()
    token_id: Mapped[int] = mapped_column()
    n: Mapped[int] = _count()


class VocabTotals:
    """`VocabCounts` summed over domains, model-wide only."""

    KEYS = ("kind", "token_id")
    VALUES = ("n",)
    PRESENCE = ("n",)

    kind: Mapped[int] = _key()
    token_id: Mapped[int] = mapped_column()
    n: Mapped[int] = _count()


class DomainCounts:
    """Per domain: documents, tokens, and the sum and count of finite next-token losses."""

    KEYS = ("domain",)
    VALUES = ("documents", "tokens", "nll_sum", "nll_count")
    PRESENCE = ("documents",)

    domain: Mapped[str] = _domain()
    documents: Mapped[int] = _count()
    tokens: Mapped[int] = _count()
    nll_sum: Mapped[float] = _sum()
    nll_count: Mapped[int] = _count()


def _pk(scope: str, family: type) -> tuple[PrimaryKeyConstraint, dict[str, bool]]:
    return PrimaryKeyConstraint(scope, *family.KEYS), CLUSTERED


class RunExpertCounts(_Run, ExpertCounts, Base):
    __tablename__ = "run_expert_counts"
    __table_args__ = _pk("run_id", ExpertCounts)


class ModelExpertCounts(_Model, ExpertCounts, Base):
    __tablename__ = "model_expert_counts"
    __table_args__ = _pk("model_id", ExpertCounts)


class RunLayerCounts(_Run, LayerCounts, Base):
    __tablename__ = "run_layer_counts"
    __table_args__ = _pk("run_id", LayerCounts)


class ModelLayerCounts(_Model, LayerCounts, Base):
    __tablename__ = "model_layer_counts"
    __table_args__ = _pk("model_id", LayerCounts)


class RunPositionCounts(_Run, PositionCounts, Base):
    __tablename__ = "run_position_counts"
    __table_args__ = _pk("run_id", PositionCounts)


class ModelPositionCounts(_Model, PositionCounts, Base):
    __tablename__ = "model_position_counts"
    __table_args__ = _pk("model_id", PositionCounts)


class RunCoactivationCounts(_Run, CoactivationCounts, Base):
    __tablename__ = "run_coactivation_counts"
    __table_args__ = _pk("run_id", CoactivationCounts)


class ModelCoactivationCounts(_Model, CoactivationCounts, Base):
    __tablename__ = "model_coactivation_counts"
    __table_args__ = _pk("model_id", CoactivationCounts)


class RunTransitionCounts(_Run, TransitionCounts, Base):
    __tablename__ = "run_transition_counts"
    __table_args__ = _pk("run_id", TransitionCounts)


class ModelTransitionCounts(_Model, TransitionCounts, Base):
    __tablename__ = "model_transition_counts"
    __table_args__ = _pk("model_id", TransitionCounts)


class RunVocabExpertCounts(_Run, VocabExpertCounts, Base):
    __tablename__ = "run_vocab_expert_counts"
    __table_args__ = (
        PrimaryKeyConstraint("run_id", *VocabExpertCounts.KEYS),
        # where one token goes in a run or domain (`token_experts`): its rows, not E x D x V
        Index("ix_run_vocab_expert_counts_token", "run_id", "kind", "token_id", "layer"),
        CLUSTERED,
    )


class ModelVocabExpertCounts(_Model, VocabExpertCounts, Base):
    __tablename__ = "model_vocab_expert_counts"
    __table_args__ = (
        PrimaryKeyConstraint("model_id", *VocabExpertCounts.KEYS),
        Index("ix_model_vocab_expert_counts_token", "model_id", "kind", "token_id", "layer"),
        CLUSTERED,
    )


class RunVocabCounts(_Run, VocabCounts, Base):
    __tablename__ = "run_vocab_counts"
    __table_args__ = _pk("run_id", VocabCounts)


class ModelVocabCounts(_Model, VocabCounts, Base):
    __tablename__ = "model_vocab_counts"
    __table_args__ = _pk("model_id", VocabCounts)


class ModelVocabExpertTotals(_Model, VocabExpertTotals, Base):
    __tablename__ = "model_vocab_expert_totals"
    __table_args__ = (
        PrimaryKeyConstraint("model_id", *VocabExpertTotals.KEYS),
        # where one token goes (`token_experts`), without reading every expert's tokens
        Index("ix_model_vocab_expert_totals_token", "model_id", "kind", "token_id"),
        CLUSTERED,
    )


class ModelVocabTotals(_Model, VocabTotals, Base):
    __tablename__ = "model_vocab_totals"
    __table_args__ = _pk("model_id", VocabTotals)


class RunDomainCounts(_Run, DomainCounts, Base):
    __tablename__ = "run_domain_counts"
    __table_args__ = _pk("run_id", DomainCounts)


class ModelDomainCounts(_Model, DomainCounts, Base):
    __tablename__ = "model_domain_counts"
    __table_args__ = _pk("model_id", DomainCounts)


@dataclasses.dataclass(frozen=True)
class Family:
    """One family of aggregate counts and its per-run and per-model tables."""

    name: str
    run_table: type[Base] | None  # None: model-wide only, a run's share is in `source`
    model_table: type[Base]
    keys: tuple[str, ...]
    values: tuple[str, ...]
    presence: tuple[str, ...]  # columns whose sum is 0 exactly when a row counts nothing
    source: str | None = None  # the family whose run rows, summed over domains, are a share


def _family(
    name: str, columns: type, run: type[Base] | None, model: type[Base], source: str | None = None
) -> Family:
    return Family(name, run, model, columns.KEYS, columns.VALUES, columns.PRESENCE, source)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _family("expert", ExpertCounts, RunExpertCounts, ModelExpertCounts),
        _family("layer", LayerCounts, RunLayerCounts, ModelLayerCounts),
        _family("position", PositionCounts, RunPositionCounts, ModelPositionCounts),
        _family("coactivation", CoactivationCounts, RunCoactivationCounts, ModelCoactivationCounts),
        _family("transition", TransitionCounts, RunTransitionCounts, ModelTransitionCounts),
        _family("vocab_expert", VocabExpertCounts, RunVocabExpertCounts, ModelVocabExpertCounts),
        _family("vocab", VocabCounts, RunVocabCounts, ModelVocabCounts),
        _family("domain", DomainCounts, RunDomainCounts, ModelDomainCounts),
        _family(
            "vocab_expert_totals",
            VocabExpertTotals,
            None,
            ModelVocabExpertTotals,
            source="vocab_expert",
        ),
        _family("vocab_totals", VocabTotals, None, ModelVocabTotals, source="vocab"),
    )
}
