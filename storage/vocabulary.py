"""Vocabulary specialisation (OLMoE eq. 8): N_{x,e}/N_x, the share of a token's occurrences
that have expert e in their top-k, by input token and by predicted token."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sqlalchemy import Double, and_, cast, func, select
from sqlalchemy.orm import Session

from storage.results import TokenExperts, TokenShare, VocabSpecialization
from storage.rows import int_matrix
from storage.schema import Vocab
from storage.schema_aggregates import TOKEN_KINDS
from storage.scope import Resolved, Scope, resolve, total

Ranking = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _rank_tokens_model_wide(
    session: Session, res: Resolved, kind: int, expert: int, min_count: int, limit: int
) -> Ranking:
    """Vocabulary ranking from the domain-free model-wide totals: one row per token on
    each side, joined, ranked per layer and cut to the `limit` best, in one statement."""
    ve, vc = res.table("vocab_expert_totals"), res.table("vocab_totals")
    share = cast(ve.c.n, Double) / cast(vc.c.n, Double)  # IEEE division, as numpy's
    rank = func.row_number().over(
        partition_by=ve.c.layer, order_by=(share.desc(), vc.c.n.desc(), ve.c.token_id)
    )
    # A hash join of ~E^-1 of one table with the other: planned so when the statistics are
    # fresh (storage.maintenance keeps them so on PostgreSQL).
    candidates = (
        select(
            ve.c.layer,
            ve.c.token_id,
            vc.c.n.label("count"),
            ve.c.n.label("with_expert"),
            rank.label("rank"),
        )
        .join(
            vc,
            and_(
                vc.c.model_id == ve.c.model_id,
                vc.c.kind == ve.c.kind,
                vc.c.token_id == ve.c.token_id,
            ),
        )
        .where(*res.where(ve), ve.c.kind == kind, ve.c.expert == expert)
        .where(vc.c.n >= max(min_count, 1))
        .subquery()
    )
    rows = session.execute(
        select(candidates.c.layer, candidates.c.token_id, candidates.c.count,
               candidates.c.with_expert)
        .where(candidates.c.rank <= limit)
        .order_by(candidates.c.layer, candidates.c.rank)
    ).all()  # fmt: skip
    table = int_matrix(rows, 4)
    ranked: Ranking = {}
    for layer in res.layers:
        token, count, with_expert = table[table[:, 0] == layer, 1:].T
        ranked[layer] = (token, count, with_expert, with_expert / np.maximum(count, 1))
    return ranked


def _rank_tokens(
    session: Session, res: Resolved, kind: int, expert: int, min_count: int, limit: int
) -> Ranking:
    """Vocabulary ranking over chosen runs or domains: sums over runs and domains on each
    side, joined and ranked in numpy. (As one SQL statement, the planner's row estimates
    for freshly written tables led PostgreSQL to nested loops that took seconds.)"""
    ve, vc = res.table("vocab_expert"), res.table("vocab")
    # fetchall, then plain tuples: row-by-row fetching and numpy reading Row objects one
    # item at a time each cost more than the queries on ~10^4 rows.
    counts = session.execute(
        select(vc.c.token_id, total(vc.c.n))
        .where(*res.where(vc), vc.c.kind == kind)
        .group_by(vc.c.token_id)
    ).all()
    counts_array = int_matrix(counts, 2)
    occurrences = np.zeros(res.vocab_size, dtype=np.int64)
    occurrences[counts_array[:, 0]] = counts_array[:, 1]
    chosen = session.execute(
        select(ve.c.layer, ve.c.token_id, total(ve.c.n))
        .where(*res.where(ve), ve.c.kind == kind, ve.c.expert == expert)
        .group_by(ve.c.layer, ve.c.token_id)
    ).all()
    rows = int_matrix(chosen, 3)
    ranked: Ranking = {}
    for layer in res.layers:
        token, with_expert = rows[rows[:, 0] == layer, 1], rows[rows[:, 0] == layer, 2]
        count = occurrences[token]
        keep = count >= max(min_count, 1)
        token, with_expert, count = token[keep], with_expert[keep], count[keep]
        share = with_expert / count
        best = np.lexsort((token, -count, -share))[:limit]
        ranked[layer] = (token[best], count[best], with_expert[best], share[best])
    return ranked


def vocab_specialization(
    session: Session,
    scope: Scope,
    *,
    expert: int,
    by: Literal["input", "predicted"] = "input",
    min_count: int = 1,
    limit: int = 50,
) -> list[VocabSpecialization]:
    """OLMoE eq. 8 for one expert, per MoE layer: tokens x with N_x >= min_count by
    N_{x,e}/N_x (then N_x, then id), best first, at most `limit`."""
    res = resolve(session, scope)
    if not 0 <= expert < res.num_experts:
        raise ValueError(f"expert must lie in [0, {res.num_experts})")
    kind = TOKEN_KINDS[by]
    if res.runs is None and res.domains is None:
        ranked = _rank_tokens_model_wide(session, res, kind, expert, min_count, limit)
    else:
        ranked = _rank_tokens(session, res, kind, expert, min_count, limit)
    wanted = sorted({int(t) for token, *_ in ranked.values() for t in token})
    pieces = dict(
        session.execute(
            select(Vocab.token_id, Vocab.piece).where(
                Vocab.model_id == res.model_id, Vocab.token_id.in_(wanted)
            )
        ).all()
    )
    return [
        VocabSpecialization(
            layer=layer,
            expert=expert,
            by=by,
            min_count=min_count,
            baseline=res.top_k / res.num_experts,
            tokens=tuple(
                TokenShare(
                    token_id=int(t),
                    piece=pieces.get(int(t)),
                    count=int(c),
                    with_expert=int(w),
                    share=float(f),
                )
                for t, c, w, f in zip(*ranked[layer], strict=True)
            ),
        )
        for layer in res.layers
    ]


def token_experts(
    session: Session,
    scope: Scope,
    *,
    token_id: int,
    by: Literal["input", "predicted"] = "input",
) -> list[TokenExperts]:
    """For one token, the share of its occurrences routed to each expert, per MoE layer."""
    res = resolve(session, scope)
    kind = TOKEN_KINDS[by]
    model_wide = res.runs is None and res.domains is None
    ve = res.table("vocab_expert_totals" if model_wide else "vocab_expert")
    vc = res.table("vocab_totals" if model_wide else "vocab")
    count = session.scalar(
        select(total(vc.c.n)).where(*res.where(vc), vc.c.kind == kind, vc.c.token_id == token_id)
    )
    counts = {layer: np.zeros(res.num_experts, dtype=np.int64) for layer in res.layers}
    # By token first (the index on scope, kind, token_id), one run at a time: with the
    # layers or several runs in the condition, SQLite takes the key's (scope, layer, kind)
    # prefix instead and reads every expert x domain x token row of each layer.
    whole_scope, *domains = res.where(ve, layer_columns=())
    scopes = [ve.c.run_id == run for run in res.runs] if res.runs is not None else [whole_scope]
    for one_scope in scopes:
        for layer, expert, n in session.execute(
            select(ve.c.layer, ve.c.expert, total(ve.c.n))
            .where(one_scope, *domains, ve.c.kind == kind, ve.c.token_id == token_id)
            .group_by(ve.c.layer, ve.c.expert)
        ).all():
            if layer in counts:
                counts[layer][expert] += n
    piece = session.scalar(
        select(Vocab.piece).where(Vocab.model_id == res.model_id, Vocab.token_id == token_id)
    )
    n_x = int(count or 0)
    return [
        TokenExperts(
            layer=layer,
            token_id=token_id,
            piece=piece,
            by=by,
            count=n_x,
            with_expert=tuple(int(c) for c in counts[layer]),
            shares=tuple(int(c) / n_x if n_x else None for c in counts[layer]),
            baseline=res.top_k / res.num_experts,
        )
        for layer in res.layers
    ]
