"""Router saturation (OLMoE eq. 5): how two runs over the same texts (e.g. under two
checkpoints) route the same tokens. The one statistic that reads `routes` and
`route_choices`, by primary key, paired and counted in SQL: only one row per layer leaves
the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from storage.errors import NotFound
from storage.results import Measure, Saturation
from storage.rows import ratio
from storage.schema import Document, Model, Route, RouteChoice, Run


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
    position; `domains` filters on run A's labels.
    """
    models = {
        run: (n_exp, k)
        for run, n_exp, k in session.execute(
            select(Run.id, Model.num_experts, Model.top_k)
            .join(Model, Model.id == Run.model_id)
            .where(Run.id.in_([run_a, run_b]))
        ).all()
    }
    if run_a not in models or run_b not in models:
        raise NotFound(f"no run {run_b if run_a in models else run_a}")
    if models[run_a] != models[run_b]:
        raise ValueError(
            "saturation compares runs of models with the same number of experts and choices"
        )
    n_exp, k = models[run_a]

    def first_documents(run_id: int, with_domains: bool) -> Any:
        stmt = select(Document.text_sha256, func.min(Document.id).label("id")).where(
            Document.run_id == run_id
        )
        if with_domains and domains is not None:
            stmt = stmt.where(Document.domain.in_(domains))
        return stmt.group_by(Document.text_sha256).subquery()

    docs_a, docs_b = first_documents(run_a, True), first_documents(run_b, False)
    pairs = (
        select(docs_a.c.id.label("a"), docs_b.c.id.label("b"))
        .join(docs_b, docs_b.c.text_sha256 == docs_a.c.text_sha256)
        .cte("pairs")
        # A handful of rows, known before `routes` is touched: the join below is then a
        # primary-key range read of each document of A and a probe of B per token.
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    ra, rb = aliased(Route, name="ra"), aliased(Route, name="rb")
    ca, cb = aliased(RouteChoice, name="ca"), aliased(RouteChoice, name="cb")
    matched = (
        select(ra.layer, func.count())
        .select_from(pairs)
        .join(ra, ra.document_id == pairs.c.a)
        .join(
            rb,
            and_(rb.document_id == pairs.c.b, rb.position == ra.position, rb.layer == ra.layer),
        )
        .group_by(ra.layer)
    )
    # A token's k choices are distinct experts: each choice of A found among B's choices of
    # the same token is one shared expert.
    shared_choices = (
        select(ca.layer, func.count())
        .select_from(pairs)
        .join(ca, ca.document_id == pairs.c.a)
        .join(
            cb,
            and_(
                cb.document_id == pairs.c.b,
                cb.position == ca.position,
                cb.layer == ca.layer,
                cb.expert == ca.expert,
            ),
        )
        .group_by(ca.layer)
    )
    if layers is not None:
        matched = matched.where(ra.layer.in_(list(layers)))
        shared_choices = shared_choices.where(ca.layer.in_(list(layers)))
    tokens = {int(layer): int(n) for layer, n in session.execute(matched).all()}
    shared = {int(layer): int(n) for layer, n in session.execute(shared_choices).all()}
    return [
        Saturation(
            layer=layer,
            tokens=tokens[layer],
            saturation=Measure(ratio(shared.get(layer, 0), k * tokens[layer]), k / n_exp),
        )
        for layer in sorted(tokens)
    ]
