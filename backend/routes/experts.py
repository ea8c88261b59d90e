"""One expert's profile: its load, domains, tokens, contexts and partners."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from backend.deps import SessionDep
from backend.params import MAX_ID, Id, Index, Label, Name
from backend.routes.stats import ERRORS
from storage import queries
from storage.examples import ExpertExample, expert_examples
from storage.results import TokenShare
from storage.scope import Scope

router = APIRouter(prefix="/v1/experts", tags=["statistics"])


class DomainShare(BaseModel):
    domain: str
    tokens: int
    share: float | None  # N_{e,D} / N_D
    baseline: float  # k/E


class Partner(BaseModel):
    expert: int
    ratio: float | None  # N_{e,j} / N_e
    baseline: float


class ExpertProfile(BaseModel):
    layer: int
    expert: int
    load: int
    share: float | None
    share_baseline: float | None
    domains: list[DomainShare]
    top_input_tokens: list[TokenShare]
    top_predicted_tokens: list[TokenShare]
    partners: list[Partner]
    examples: list[ExpertExample]


@router.get("/{layer}/{expert}", responses=ERRORS, summary="Profile of one expert")
def expert_profile(
    layer: Annotated[Index, Path()],
    expert: Annotated[Index, Path()],
    session: SessionDep,
    run_id: Annotated[list[Id] | None, Query(description="run(s); default pooled runs")] = None,
    domain: Annotated[list[Label] | None, Query(description="domain label(s)")] = None,
    model: Annotated[Name | None, Query(description="model name")] = None,
    min_count: Annotated[int, Query(ge=1, le=MAX_ID)] = 3,
    limit: Annotated[int, Query(ge=1, le=100)] = 15,
) -> ExpertProfile:
    scope = Scope(model=model, runs=run_id, domains=domain, layers=[layer])
    try:
        loads = queries.expert_load(session, scope)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    if not loads:
        raise HTTPException(404, f"layer {layer} is not an MoE layer of the model")
    experts = loads[0].experts
    if not 0 <= expert < len(experts):
        raise HTTPException(404, f"expert {expert} does not exist (experts 0..{len(experts) - 1})")
    this = experts[expert]
    domains = [
        DomainShare(domain=d.domain, tokens=d.tokens, share=d.shares[expert], baseline=d.baseline)
        for d in queries.domain_specialization(session, scope)
    ]
    vocab = {
        by: queries.vocab_specialization(
            session, scope, expert=expert, by=by, min_count=min_count, limit=limit
        )
        for by in ("input", "predicted")
    }
    partners = []
    # A lone expert has no partner (and co-activation is undefined for it).
    for co in queries.coactivation(session, scope) if len(experts) > 1 else []:
        partners = sorted(
            (
                Partner(expert=j, ratio=ratio, baseline=co.baseline)
                for j, ratio in enumerate(co.ratios[expert])
                if j != expert
            ),
            key=lambda p: -(p.ratio or 0.0),
        )
    return ExpertProfile(
        layer=layer,
        expert=expert,
        load=this.load,
        share=this.share.value,
        share_baseline=this.share.baseline,
        domains=domains,
        top_input_tokens=list(vocab["input"][0].tokens) if vocab["input"] else [],
        top_predicted_tokens=list(vocab["predicted"][0].tokens) if vocab["predicted"] else [],
        partners=partners,
        examples=expert_examples(session, scope, layer=layer, expert=expert, limit=8),
    )
