"""Example contexts of an expert: stored tokens routed to it, with their neighbours."""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.schema import Document, Route, Run, Token, Vocab
from storage.scope import Resolved, Scope, resolve


@dataclasses.dataclass(frozen=True, slots=True)
class ExpertExample:
    """A token routed to an expert, in its context."""

    document_id: int
    domain: str
    position: int
    rank: int  # 1: the expert was the token's top-1 choice, 2: its top-2
    gate: float
    before: tuple[str, ...]  # pieces of the preceding tokens
    piece: str
    after: tuple[str, ...]


def _kept_assignments(
    session: Session, res: Resolved, *, layer: int, expert: int
) -> tuple[int, int]:
    """Kept top-1 and top-2 assignments of the expert at the layer in the scope (aggregates)."""
    table = res.table("expert")
    row = session.execute(
        select(
            func.coalesce(func.sum(table.c.kept1), 0), func.coalesce(func.sum(table.c.kept2), 0)
        ).where(*res.where(table), table.c.layer == layer, table.c.expert == expert)
    ).one()
    return int(row[0]), int(row[1])


def expert_examples(
    session: Session, scope: Scope, *, layer: int, expert: int, limit: int = 8, context: int = 8
) -> list[ExpertExample]:
    """Tokens whose kept assignment went to `expert` at `layer` (top-1 first, newest
    documents first), with `context` pieces on each side. LIMIT stops the scan early."""
    res = resolve(session, scope)
    conditions = [Route.layer == layer]
    if res.runs is not None:
        conditions.append(Document.run_id.in_(res.runs))
    else:
        conditions += [Run.model_id == res.model_id, Run.pooled.is_(True)]
    if res.domains is not None:
        conditions.append(Document.domain.in_(res.domains))
    base = (
        select(Route.document_id, Route.position, Route.e1, Route.g1, Route.g2, Document.domain)
        .join(Document, Document.id == Route.document_id)
        .join(Run, Run.id == Document.run_id)
        .where(*conditions)
        .order_by(Route.document_id.desc(), Route.position)
    )
    # The counts say first whether the expert kept anything at either rank in this scope:
    # for a dead expert (or rank) the search below would read every route of the layer.
    kept1, kept2 = _kept_assignments(session, res, layer=layer, expert=expert)
    hits = []
    if kept1:
        hits += session.execute(base.where((Route.e1 == expert) & Route.kept1).limit(limit)).all()
    if kept2 and len(hits) < limit:
        hits += session.execute(
            base.where((Route.e2 == expert) & Route.kept2).limit(limit - len(hits))
        ).all()
    examples = []
    for hit in hits:
        window = session.execute(
            select(Token.position, Vocab.piece)
            .outerjoin(Vocab, (Vocab.model_id == res.model_id) & (Vocab.token_id == Token.token_id))
            .where(
                Token.document_id == hit.document_id,
                Token.position.between(hit.position - context, hit.position + context),
            )
            .order_by(Token.position)
        ).all()
        pieces = {row.position: row.piece or "" for row in window}
        top1 = hit.e1 == expert
        examples.append(
            ExpertExample(
                document_id=hit.document_id,
                domain=hit.domain,
                position=hit.position,
                rank=1 if top1 else 2,
                gate=float(hit.g1 if top1 else hit.g2),
                before=tuple(pieces[p] for p in sorted(pieces) if p < hit.position),
                piece=pieces.get(hit.position, ""),
                after=tuple(pieces[p] for p in sorted(pieces) if p > hit.position),
            )
        )
    return examples
