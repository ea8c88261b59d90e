"""Example contexts of an expert: stored tokens routed to it, with their neighbours."""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.schema import Document, RouteChoice, Run, Token, Vocab
from storage.scope import Resolved, Scope, resolve


@dataclasses.dataclass(frozen=True, slots=True)
class ExpertExample:
    """A token routed to an expert, in its context."""

    document_id: int
    domain: str
    position: int
    rank: int  # the choice's place in the token's top-k: 1 = its top-1 choice, 2 = second, ...
    gate: float
    before: tuple[str, ...]  # pieces of the preceding tokens
    piece: str
    after: tuple[str, ...]


def _kept_by_rank(session: Session, res: Resolved, *, layer: int, expert: int) -> list[int]:
    """Ranks (0-based) at which the expert kept any assignment at the layer in the scope,
    from the aggregates."""
    table = res.table("expert")
    rows = session.execute(
        select(table.c.rank, func.sum(table.c.kept))
        .where(*res.where(table), table.c.layer == layer, table.c.expert == expert)
        .group_by(table.c.rank)
        .order_by(table.c.rank)
    ).all()
    return [int(rank) for rank, kept in rows if kept]


def expert_examples(
    session: Session, scope: Scope, *, layer: int, expert: int, limit: int = 8, context: int = 8
) -> list[ExpertExample]:
    """Tokens whose kept assignment went to `expert` at `layer` (top-1 first, newest
    documents first), with `context` pieces on each side. LIMIT stops the scan early."""
    res = resolve(session, scope)
    choice = RouteChoice
    conditions = [choice.layer == layer, choice.expert == expert, choice.kept.is_(True)]
    if res.runs is not None:
        conditions.append(Document.run_id.in_(res.runs))
    else:
        conditions += [Run.model_id == res.model_id, Run.pooled.is_(True)]
    if res.domains is not None:
        conditions.append(Document.domain.in_(res.domains))
    base = (
        select(choice.document_id, choice.position, choice.rank, choice.gate, Document.domain)
        .join(Document, Document.id == choice.document_id)
        .join(Run, Run.id == Document.run_id)
        .where(*conditions)
        .order_by(choice.document_id.desc(), choice.position)
    )
    # The counts say first at which ranks the expert kept anything in this scope: for a
    # dead expert (or rank) the search below would read every choice of the layer.
    hits = []
    for rank in _kept_by_rank(session, res, layer=layer, expert=expert):
        if len(hits) >= limit:
            break
        hits += session.execute(base.where(choice.rank == rank).limit(limit - len(hits))).all()
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
        examples.append(
            ExpertExample(
                document_id=hit.document_id,
                domain=hit.domain,
                position=hit.position,
                rank=int(hit.rank) + 1,
                gate=float(hit.gate),
                before=tuple(pieces[p] for p in sorted(pieces) if p < hit.position),
                piece=pieces.get(hit.position, ""),
                after=tuple(pieces[p] for p in sorted(pieces) if p > hit.position),
            )
        )
    return examples
