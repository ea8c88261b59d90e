"""Routing statistics from the aggregate tables, each with its uniform baseline.

Every route takes the same filters: `layer` (MoE layers; repeat for several), `run_id`
(runs; default: the model's pooled runs), `domain` (repeat for several), `model`.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from backend.deps import SessionDep
from backend.params import MAX_ID, Id, Index, Label, Name
from backend.schemas import DATABASE_DOWN, INVALID, Problem
from storage import queries, training
from storage.results import (
    Coactivation,
    ConsecutiveRouting,
    DomainLoss,
    DomainSpecialization,
    LayerBalance,
    LayerLoad,
    LayerRouting,
    PositionDrops,
    Saturation,
    TrainingHistory,
    Transitions,
    VocabSpecialization,
)
from storage.scope import Scope

router = APIRouter(prefix="/v1/stats", tags=["statistics"])
ERRORS = {404: {"model": Problem, "description": "unknown model or run"},
          **INVALID, **DATABASE_DOWN}  # fmt: skip


def scope(
    layer: Annotated[list[Index] | None, Query(description="MoE layer(s)")] = None,
    run_id: Annotated[list[Id] | None, Query(description="run(s); default pooled runs")] = None,
    domain: Annotated[list[Label] | None, Query(description="domain label(s)")] = None,
    model: Annotated[Name | None, Query(description="model name")] = None,
) -> Scope:
    return Scope(model=model, runs=run_id, domains=domain, layers=layer)


ScopeDep = Annotated[Scope, Depends(scope)]


def _checked(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as error:  # e.g. runs of two models in one statistic
        raise HTTPException(422, str(error)) from None


class LayerLoadStats(BaseModel):
    layer: int
    load: LayerLoad
    balance: LayerBalance
    routing: LayerRouting


@router.get("/load", responses=ERRORS, summary="Load and share per expert, balance, drop rates")
def load(session: SessionDep, filters: ScopeDep) -> list[LayerLoadStats]:
    loads = _checked(queries.expert_load, session, filters)
    balances = {b.layer: b for b in queries.balance(session, filters)}
    routing = {r.layer: r for r in queries.routing_summary(session, filters)}
    return [
        LayerLoadStats(layer=x.layer, load=x, balance=balances[x.layer], routing=routing[x.layer])
        for x in loads
    ]


class BalanceStats(BaseModel):
    balance: list[LayerBalance]
    routing: list[LayerRouting]


@router.get("/balance", responses=ERRORS, summary="Balance of every MoE layer")
def balance(session: SessionDep, filters: ScopeDep) -> BalanceStats:
    return BalanceStats(
        balance=_checked(queries.balance, session, filters),
        routing=queries.routing_summary(session, filters),
    )


@router.get("/domains", responses=ERRORS, summary="Domain specialisation (OLMoE eq. 7)")
def domains(session: SessionDep, filters: ScopeDep) -> list[DomainSpecialization]:
    return _checked(queries.domain_specialization, session, filters)


@router.get(
    "/training",
    responses=ERRORS,
    summary="Routing over training: saturation, balance, drops, entropy per step and layer",
    description=(
        "The probe set shipped with the model (the first 2,000 validation tokens of each "
        "domain), routed by each saved training checkpoint: per step, MoE layer and domain "
        "('' = the whole probe set), router saturation against the last step (OLMoE eq. 5, "
        "baseline 2/E), top-1 agreement with it, load CV and MaxVio of the kept "
        "assignments, dead experts, drop rate, router entropy and loss. `run_id` does not "
        "apply. 404 when the model has no training history. Definitions: docs/ROUTING.md."
    ),
)
def training_history(session: SessionDep, filters: ScopeDep) -> TrainingHistory:
    if filters.runs is not None:
        raise HTTPException(422, "run_id does not apply to the training history")
    return _checked(training.training_routing, session, filters)


@router.get("/loss", responses=ERRORS, summary="Mean next-token loss per domain")
def loss(session: SessionDep, filters: ScopeDep) -> list[DomainLoss]:
    return _checked(queries.domain_loss, session, filters)


@router.get("/vocab", responses=ERRORS, summary="Vocabulary specialisation (OLMoE eq. 8)")
def vocab(
    session: SessionDep,
    filters: ScopeDep,
    expert: Annotated[Index, Query()],
    by: Literal["input", "predicted"] = "input",
    min_count: Annotated[int, Query(ge=1, le=MAX_ID)] = 5,
    limit: Annotated[int, Query(ge=1, le=500)] = 30,
) -> list[VocabSpecialization]:
    return _checked(
        queries.vocab_specialization, session, filters, expert=expert, by=by,
        min_count=min_count, limit=limit,
    )  # fmt: skip


@router.get("/coactivation", responses=ERRORS, summary="Co-activation (OLMoE eq. 6)")
def coactivation(session: SessionDep, filters: ScopeDep) -> list[Coactivation]:
    return _checked(queries.coactivation, session, filters)


@router.get("/consecutive", responses=ERRORS, summary="Consecutive tokens routed alike")
def consecutive(session: SessionDep, filters: ScopeDep) -> list[ConsecutiveRouting]:
    return _checked(queries.consecutive_routing, session, filters)


@router.get("/transitions", responses=ERRORS, summary="Top-1 at layer src vs top-1 at dst")
def transitions(
    session: SessionDep,
    filters: ScopeDep,
    src: Annotated[Index | None, Query()] = None,
    dst: Annotated[Index | None, Query()] = None,
) -> list[Transitions]:
    rows = _checked(queries.transitions, session, dataclasses.replace(filters, layers=None))
    return [
        t
        for t in rows
        if (src is None or t.layer_from == src)
        and (dst is None or t.layer_to == dst)
        and (filters.layers is None or {t.layer_from, t.layer_to} <= set(filters.layers))
    ]


@router.get("/positions", responses=ERRORS, summary="Drop rate by position in the document")
def positions(
    session: SessionDep,
    filters: ScopeDep,
    bucket: Annotated[int, Query(ge=1, le=4096)] = queries.POSITION_BUCKET,
) -> list[PositionDrops]:
    return _checked(queries.drops_by_position, session, filters, bucket_width=bucket)


@router.get("/saturation", responses=ERRORS, summary="Router saturation between two runs")
def saturation(
    session: SessionDep,
    run_a: Annotated[Id, Query()],
    run_b: Annotated[Id, Query()],
    layer: Annotated[list[Index] | None, Query()] = None,
    domain: Annotated[list[Label] | None, Query()] = None,
) -> list[Saturation]:
    return _checked(queries.router_saturation, session, run_a, run_b, domains=domain, layers=layer)
