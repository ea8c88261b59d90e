"""A model's routing over training: the probe-set statistics per saved step, layer, domain.

The points come from the traces shipped with the model (glam/probes.py computes them);
they are replaced whole, in one transaction, when the traces file changes, and left alone
when it does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from storage.errors import NotFound
from storage.results import TrainingHistory, TrainingPoint
from storage.schema import TrainingRouting
from storage.scope import Scope, resolve

_STATISTICS = (
    "saturation",
    "top1_agreement",
    "load_cv",
    "max_vio",
    "drop_rate",
    "router_entropy",
    "loss",
)


def _finite(value: Any) -> float | None:
    value = None if value is None else float(value)
    return None if value is None or not math.isfinite(value) else value


def stored_traces_sha256(session: Session, model_id: int) -> str | None:
    """The digest of the traces the model's stored history came from (None: none stored)."""
    return session.scalar(
        select(TrainingRouting.traces_sha256).where(TrainingRouting.model_id == model_id).limit(1)
    )


def replace_training_routing(
    session: Session, model_id: int, points: Sequence[Mapping[str, Any]], traces_sha256: str
) -> None:
    """Make `points` the model's whole training history, in one transaction."""
    rows = [
        {
            "model_id": model_id,
            "step": int(p["step"]),
            "layer": int(p["layer"]),
            "domain": str(p["domain"]),
            "tokens_seen": int(p["tokens_seen"]),
            "tokens": int(p["tokens"]),
            "dead_experts": int(p["dead_experts"]),
            "traces_sha256": traces_sha256,
            **{name: _finite(p.get(name)) for name in _STATISTICS},
        }
        for p in points
    ]
    with session.begin_nested():
        session.execute(delete(TrainingRouting).where(TrainingRouting.model_id == model_id))
        if rows:
            session.execute(insert(TrainingRouting), rows)


def training_routing(session: Session, scope: Scope) -> TrainingHistory:
    """The stored points of the scope's model in (layer, domain, step) order, for the
    scope's layers and domains (all when None; '' is the whole probe set). NotFound when
    the model has no training history."""
    res = resolve(session, scope)
    query = select(TrainingRouting).where(
        TrainingRouting.model_id == res.model_id, TrainingRouting.layer.in_(res.layers)
    )
    if scope.domains is not None:
        query = query.where(TrainingRouting.domain.in_(scope.domains))
    query = query.order_by(TrainingRouting.layer, TrainingRouting.domain, TrainingRouting.step)
    points = [
        TrainingPoint(
            step=row.step,
            tokens_seen=row.tokens_seen,
            layer=row.layer,
            domain=row.domain,
            tokens=row.tokens,
            dead_experts=row.dead_experts,
            **{name: getattr(row, name) for name in _STATISTICS},
        )
        for row in session.scalars(query)
    ]
    if not points and stored_traces_sha256(session, res.model_id) is None:
        raise NotFound(f"model {res.model!r} has no routing history over training")
    experts = res.num_experts
    return TrainingHistory(
        model=res.model,
        num_experts=experts,
        saturation_baseline=min(res.top_k, experts) / max(experts, 1),
        last_step=max((p.step for p in points), default=None),
        points=tuple(points),
    )
