"""Experiments: switch experts off, compare checkpoints — on texts or the built-in corpus."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from backend import analysis, experiments
from backend import jobs as job_logic
from backend.batching import RouteRequest
from backend.deps import AppState, StateDep, WriteAccess
from backend.routes.analyze import ERRORS
from storage.errors import NotFound

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


class TextsOrCorpus(BaseModel):
    texts: list[str] | None = Field(default=None, description="texts to test on")
    domain: str = Field(default="user", min_length=1, max_length=64)
    corpus_limit: int = Field(
        default=64, ge=1, le=2000, description="without texts: this many built-in documents"
    )


class AblationRequest(TextsOrCorpus):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ablate": {"1": [0, 5]}}]}
    )
    ablate: dict[int, list[int]] = Field(description="MoE layer -> experts to switch off")


class AblationResponse(BaseModel):
    ablate: dict[int, list[int]]
    domains: list[experiments.DomainEffect]
    rerouting: list[experiments.Rerouting]


class SaturationRequest(TextsOrCorpus):
    model_config = ConfigDict(extra="forbid")
    checkpoint_a: str = "early"
    checkpoint_b: str = "final"


class SaturationResponse(BaseModel):
    checkpoint_a: str
    checkpoint_b: str
    layers: list[experiments.LayerSaturation]


def _inputs(state: AppState, body: TextsOrCorpus) -> tuple[list[list[int]], list[str]]:
    """Token windows and their domains, from the texts or the built-in validation corpus."""
    if body.texts:
        return analysis.tokenize(state, body.texts), [body.domain] * len(body.texts)
    try:
        records = job_logic.builtin_records(state, "validation")[: body.corpus_limit]
    except NotFound as error:  # no built-in corpus
        raise HTTPException(422, f"{error}; pass texts instead") from None
    tokenizer = state.registry.main.tokenizer
    sequences, domains = [], []
    for record, ids in zip(records, tokenizer.encode_batch([r.text for r in records]), strict=True):
        window = ids[: state.max_tokens]
        if window:
            sequences.append(window)
            domains.append(record.domain)
    return sequences, domains


async def _in_slices(state: AppState, sequences: list[list[int]], options: RouteRequest):
    """Traces of `sequences` in slices of the batcher's size (never one huge batch)."""
    step = state.settings.max_batch_size
    for start in range(0, len(sequences), step):
        yield start, await analysis.run_model(state, sequences[start : start + step], options)


@router.post(
    "/ablation",
    dependencies=[WriteAccess],
    responses=ERRORS,
    summary="Switch experts off: per-domain change in loss and where their tokens went",
)
async def ablation(body: AblationRequest, state: StateDep) -> AblationResponse:
    base_options = analysis.route_request(state)
    ablated_options = analysis.route_request(state, ablate=body.ablate)
    sequences, domains = await asyncio.to_thread(_inputs, state, body)
    effect = experiments.AblationEffect(state.registry.main.config.num_experts, body.ablate)
    step = state.settings.max_batch_size
    async for start, base in _in_slices(state, sequences, base_options):
        chunk = sequences[start : start + step]
        ablated = await analysis.run_model(state, chunk, ablated_options)
        effect.add(base, ablated, domains[start : start + step])
    return AblationResponse(
        ablate=body.ablate, domains=effect.domains(), rerouting=effect.rerouting()
    )


@router.post(
    "/saturation",
    dependencies=[WriteAccess],
    responses=ERRORS,
    summary="Router saturation between two registered checkpoints on the same texts",
)
async def saturation(body: SaturationRequest, state: StateDep) -> SaturationResponse:
    options_a = analysis.route_request(state, checkpoint=body.checkpoint_a)
    options_b = analysis.route_request(state, checkpoint=body.checkpoint_b)
    sequences, _ = await asyncio.to_thread(_inputs, state, body)
    result = experiments.Saturation(state.registry.main.config.num_experts)
    step = state.settings.max_batch_size
    async for start, trace_a in _in_slices(state, sequences, options_a):
        trace_b = await analysis.run_model(state, sequences[start : start + step], options_b)
        result.add(trace_a, trace_b)
    return SaturationResponse(
        checkpoint_a=body.checkpoint_a, checkpoint_b=body.checkpoint_b, layers=result.layers()
    )
