"""Router saturation (OLMoE eq. 5): how two runs over the same texts (e.g. under two
checkpoints) route the same tokens. The one statistic that reads `routes`, by primary key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.results import Measure, Saturation
from storage.rows import int_matrix, ratio
from storage.schema import Document, Model, Route, Run

# Documents per statement: one bound value each, under SQLite's limit of 32766.
_PAIRS_PER_QUERY = 5000


def router_saturation(
    session: Session,
    run_a: int,
    run_b: int,
    *,
    domains: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
) -> list[Saturation]:
    """OLMoE eq. 5 between two runs over the same texts (e.g. two checkpoints), per layer.

    Documents are paired by the hash of their text (the first of duplicates), tokens by
    position; `domains` filters on run A's labels. Reads routes by primary key.
    """
    models = dict(
        session.execute(
            select(Run.id, Model.num_experts)
            .join(Model, Model.id == Run.model_id)
            .where(Run.id.in_([run_a, run_b]))
        ).all()
    )
    if run_a not in models or run_b not in models:
        raise LookupError(f"no run {run_b if run_a in models else run_a}")
    if models[run_a] != models[run_b]:
        raise ValueError("saturation compares runs of models with the same number of experts")
    n_exp = models[run_a]

    def first_documents(run_id: int, with_domains: bool) -> Any:
        stmt = select(Document.text_sha256, func.min(Document.id).label("id")).where(
            Document.run_id == run_id
        )
        if with_domains and domains is not None:
            stmt = stmt.where(Document.domain.in_(domains))
        return stmt.group_by(Document.text_sha256).subquery()

    docs_a, docs_b = first_documents(run_a, True), first_documents(run_b, False)
    pairs = session.execute(
        select(docs_a.c.id, docs_b.c.id).join(docs_b, docs_b.c.text_sha256 == docs_a.c.text_sha256)
    ).all()
    tokens: dict[int, int] = defaultdict(int)
    shared: dict[int, int] = defaultdict(int)
    for start in range(0, len(pairs), _PAIRS_PER_QUERY):
        chunk = pairs[start : start + _PAIRS_PER_QUERY]
        routes_a = _routes(session, [a for a, _ in chunk], layers)
        routes_b = _routes(session, [b for _, b in chunk], layers)
        # Key every route by (pair, position, layer); document ids become pair indices.
        pair_of_a = {a: i for i, (a, _) in enumerate(chunk)}
        pair_of_b = {b: i for i, (_, b) in enumerate(chunk)}
        key_a = _keys(routes_a, pair_of_a)
        key_b = _keys(routes_b, pair_of_b)
        _, ia, ib = np.intersect1d(key_a, key_b, assume_unique=True, return_indices=True)
        a1, a2 = routes_a[ia, 3], routes_a[ia, 4]
        b1, b2 = routes_b[ib, 3], routes_b[ib, 4]
        both = ((a1 == b1) | (a1 == b2)).astype(np.int64) + ((a2 == b1) | (a2 == b2))
        layer_of = routes_a[ia, 2]
        for layer in np.unique(layer_of).tolist():
            at = layer_of == layer
            tokens[layer] += int(at.sum())
            shared[layer] += int(both[at].sum())
    return [
        Saturation(
            layer=layer,
            tokens=tokens[layer],
            saturation=Measure(ratio(shared[layer], 2 * tokens[layer]), 2.0 / n_exp),
        )
        for layer in sorted(tokens)
    ]


def _routes(session: Session, document_ids: list[int], layers: Sequence[int] | None) -> np.ndarray:
    """[n, 5] (document, position, layer, e1, e2) of the documents, read by primary key.

    Fetched and matched here rather than joined in SQL: on tables written a moment ago,
    PostgreSQL's estimates led it to hash-join full scans of `routes` (seconds at 10M rows)
    where a primary-key range read per document is all that is needed.
    """
    stmt = select(Route.document_id, Route.position, Route.layer, Route.e1, Route.e2).where(
        Route.document_id.in_(document_ids)
    )
    if layers is not None:
        stmt = stmt.where(Route.layer.in_(list(layers)))
    rows = session.execute(stmt).all()
    return int_matrix(rows, 5)


def _keys(routes: np.ndarray, pair_of: dict[int, int]) -> np.ndarray:
    pair = np.array([pair_of[d] for d in routes[:, 0].tolist()], dtype=np.int64)
    return (pair << 40) | (routes[:, 1] << 16) | routes[:, 2]
