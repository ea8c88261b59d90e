"""Reading the catalogue: models, runs, documents, and a document's tokens with their routes
(the token explorer). Plain results from `storage.results`."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from storage.results import (
    DocumentInfo,
    DocumentTokens,
    ModelInfo,
    RouteInfo,
    RunInfo,
    StoredRequest,
    TokenInfo,
)
from storage.schema import Document, Model, Route, RouteChoice, Run, Token, Vocab


def _model_info(m: Model) -> ModelInfo:
    return ModelInfo(
        id=m.id,
        name=m.name,
        preset=m.preset,
        num_experts=m.num_experts,
        top_k=m.top_k,
        vocab_size=m.vocab_size,
        moe_layers=None if m.moe_layers is None else tuple(m.moe_layers),
        checkpoint_sha256=m.checkpoint_sha256,
        config=dict(m.config),
    )


def list_models(session: Session) -> list[ModelInfo]:
    return [_model_info(m) for m in session.scalars(select(Model).order_by(Model.id))]


def get_model(session: Session, name: str) -> ModelInfo | None:
    model = session.scalar(select(Model).where(Model.name == name))
    return None if model is None else _model_info(model)


def _run_infos(session: Session, rows: list[tuple[Run, str]]) -> list[RunInfo]:
    domains: dict[int, list[str]] = defaultdict(list)
    if rows:
        for run_id, domain in session.execute(
            select(Document.run_id, Document.domain)
            .where(Document.run_id.in_([run.id for run, _ in rows]))
            .distinct()
            .order_by(Document.run_id, Document.domain)
        ):
            domains[run_id].append(domain)
    return [
        RunInfo(
            id=run.id,
            model=model,
            source=run.source,
            parameters=dict(run.parameters),
            pooled=run.pooled,
            label=run.label,
            n_documents=run.n_documents,
            n_tokens=run.n_tokens,
            created_at=run.created_at,
            domains=tuple(domains[run.id]),
        )
        for run, model in rows
    ]


def list_runs(
    session: Session,
    *,
    model: str | None = None,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
    before: int | None = None,
) -> list[RunInfo]:
    """Runs, newest first; `before` (a run id) pages by cursor: only older runs."""
    stmt = select(Run, Model.name).join(Model, Model.id == Run.model_id)
    if before is not None:
        stmt = stmt.where(Run.id < before)
    if model is not None:
        stmt = stmt.where(Model.name == model)
    if source is not None:
        stmt = stmt.where(Run.source == source)
    stmt = stmt.order_by(Run.id.desc()).limit(limit).offset(offset)
    return _run_infos(session, [(run, name) for run, name in session.execute(stmt)])


def get_run(session: Session, run_id: int) -> RunInfo | None:
    row = session.execute(
        select(Run, Model.name).join(Model, Model.id == Run.model_id).where(Run.id == run_id)
    ).first()
    return None if row is None else _run_infos(session, [(row[0], row[1])])[0]


def _document_info(d: Document) -> DocumentInfo:
    return DocumentInfo(
        id=d.id,
        run_id=d.run_id,
        ordinal=d.ordinal,
        domain=d.domain,
        text=d.text,
        n_tokens=d.n_tokens,
        mean_nll=d.mean_nll,
    )


def list_documents(
    session: Session, run_id: int, *, limit: int = 100, offset: int = 0
) -> list[DocumentInfo]:
    stmt = (
        select(Document)
        .where(Document.run_id == run_id)
        .order_by(Document.ordinal)
        .limit(limit)
        .offset(offset)
    )
    return [_document_info(d) for d in session.scalars(stmt)]


def document_tokens(session: Session, document_id: int) -> DocumentTokens | None:
    """A document's tokens, their pieces and predictions, and their routing at every layer."""
    document = session.get(Document, document_id)
    if document is None:
        return None
    model_id = session.scalar(select(Run.model_id).where(Run.id == document.run_id))
    choices: dict[tuple[int, int], list[RouteChoice]] = defaultdict(list)
    for c in session.scalars(
        select(RouteChoice)
        .where(RouteChoice.document_id == document_id)
        .order_by(RouteChoice.position, RouteChoice.layer, RouteChoice.rank)
    ):
        choices[(c.position, c.layer)].append(c)
    routes: dict[int, list[RouteInfo]] = defaultdict(list)
    for r in session.scalars(
        select(Route).where(Route.document_id == document_id).order_by(Route.position, Route.layer)
    ):
        ranked = choices[(r.position, r.layer)]
        routes[r.position].append(
            RouteInfo(
                layer=r.layer,
                experts=tuple(c.expert for c in ranked),
                gates=tuple(c.gate for c in ranked),
                probs=tuple(c.prob for c in ranked),
                kept=tuple(bool(c.kept) for c in ranked),
                entropy=r.entropy,
            )
        )
    piece, predicted_piece = aliased(Vocab), aliased(Vocab)
    stmt = (
        select(Token, piece.piece, predicted_piece.piece)
        .outerjoin(piece, (piece.model_id == model_id) & (piece.token_id == Token.token_id))
        .outerjoin(
            predicted_piece,
            (predicted_piece.model_id == model_id) & (predicted_piece.token_id == Token.predicted),
        )
        .where(Token.document_id == document_id)
        .order_by(Token.position)
    )
    tokens = tuple(
        TokenInfo(
            position=t.position,
            token_id=t.token_id,
            piece=p,
            nll=t.nll,
            predicted=t.predicted,
            predicted_piece=pp,
            routes=tuple(routes[t.position]),
        )
        for t, p, pp in session.execute(stmt)
    )
    return DocumentTokens(document=_document_info(document), tokens=tokens)


def run_tokens(
    session: Session, run_id: int, *, limit: int = 20, offset: int = 0
) -> list[DocumentTokens]:
    """Tokens and routes of a run's documents (by ordinal), for the token explorer."""
    out = []
    for info in list_documents(session, run_id, limit=limit, offset=offset):
        tokens = document_tokens(session, info.id)
        if tokens is not None:
            out.append(tokens)
    return out


def stored_request(session: Session, request_key: str) -> StoredRequest | None:
    """The run stored by the request with this idempotency key, if there is one."""
    run = session.scalar(select(Run).where(Run.request_key == request_key))
    if run is None:
        return None
    documents = session.execute(
        select(Document.id, Document.text_sha256, Document.domain)
        .where(Document.run_id == run.id)
        .order_by(Document.ordinal)
    ).all()
    return StoredRequest(
        run_id=run.id,
        parameters=dict(run.parameters),
        document_ids=tuple(d.id for d in documents),
        text_sha256=tuple(d.text_sha256 for d in documents),
        domains=tuple(d.domain for d in documents),
    )
