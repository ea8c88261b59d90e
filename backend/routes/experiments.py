"""Experiments: switch experts off, compare checkpoints — on texts or the built-in corpus."""

from __future__ import annotations

import asyncio
import collections
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from backend import analysis, experiments
from backend import jobs as job_logic
from backend.batching import RouteRequest
from backend.deps import AppState, StateDep, WriteAccess
from backend.routes.analyze import ERRORS
from glam import windows
from storage.errors import NotFound

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


class TextsOrCorpus(BaseModel):
    texts: list[str] | None = Field(default=None, description="texts to test on")
    domain: str = Field(default="user", min_length=1, max_length=64)
    per_domain: int = Field(
        default=4,
        ge=1,
        le=500,
        description="without texts: a stratified sample of the built-in validation corpus, "
        "the first this many documents of every domain (or of `corpus_domains`)",
    )
    corpus_domains: list[str] | None = Field(
        default=None, description="without texts: only these domains of the built-in corpus"
    )


class Sample(BaseModel):
    """What an experiment measured: documents per domain."""

    source: Literal["texts", "builtin"]
    documents: dict[str, int]


class AblationRequest(TextsOrCorpus):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ablate": {"1": [0, 5]}}]}
    )
    ablate: dict[int, list[int]] = Field(description="MoE layer -> experts to switch off")


class AblationResponse(BaseModel):
    ablate: dict[int, list[int]]
    sample: Sample
    domains: list[experiments.DomainEffect]
    rerouting: list[experiments.Rerouting]


class SaturationRequest(TextsOrCorpus):
    model_config = ConfigDict(extra="forbid")
    checkpoint_a: str = "early"
    checkpoint_b: str = "final"


class SaturationResponse(BaseModel):
    checkpoint_a: str
    checkpoint_b: str
    sample: Sample
    layers: list[experiments.LayerSaturation]


def _inputs(state: AppState, body: TextsOrCorpus) -> tuple[list[list[int]], list[str]]:
    """Token ids and domain of each document: the texts, or the built-in validation corpus
    (whose long documents are routed as windows, as corpus jobs route them)."""
    if body.texts:
        return analysis.tokenize(state, body.texts), [body.domain] * len(body.texts)
    try:
        records = job_logic.builtin_records(state, "validation")
    except NotFound as error:  # no built-in corpus
        raise HTTPException(422, f"{error}; pass texts instead") from None
    try:
        records = experiments.stratified(records, body.per_domain, body.corpus_domains)
    except ValueError as error:
        raise HTTPException(422, f"corpus_domains: {error}") from None
    tokenizer = state.registry.main.tokenizer
    documents, domains = [], []
    for record, ids in zip(records, tokenizer.encode_batch([r.text for r in records]), strict=True):
        if ids:
            documents.append(ids)
            domains.append(record.domain)
    return documents, domains


def _sample(body: TextsOrCorpus, domains: list[str]) -> Sample:
    return Sample(
        source="texts" if body.texts else "builtin",
        documents=dict(sorted(collections.Counter(domains).items())),
    )


async def _in_slices(state: AppState, documents: list[list[int]], options: RouteRequest):
    """(offset, trace) of the documents in slices of the batcher's size (never one huge
    batch); a document longer than the model's limit as windows, stitched (glam/windows)."""
    step = state.settings.max_batch_size
    for start in range(0, len(documents), step):
        plans, sequences = windows.plan_documents(documents[start : start + step], state.max_tokens)
        rows = []
        for first in range(0, len(sequences), step):
            trace = await analysis.run_model(state, sequences[first : first + step], options)
            rows += windows.rows_of(trace)
        yield start, windows.stack(windows.stitch_documents(rows, plans))


async def _zip(first, second):
    """Pairs of two async iterators, in step."""
    async for item in first:
        yield item, await anext(second)


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
    base_slices = _in_slices(state, sequences, base_options)
    ablated_slices = _in_slices(state, sequences, ablated_options)
    step = state.settings.max_batch_size
    async for (start, base), (_, ablated) in _zip(base_slices, ablated_slices):
        effect.add(base, ablated, domains[start : start + step])
    return AblationResponse(
        ablate=body.ablate,
        sample=_sample(body, domains),
        domains=effect.domains(),
        rerouting=effect.rerouting(),
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
    sequences, domains = await asyncio.to_thread(_inputs, state, body)
    config = state.registry.main.config
    result = experiments.Saturation(config.num_experts, config.top_k)
    slices = _zip(_in_slices(state, sequences, options_a), _in_slices(state, sequences, options_b))
    async for (_, trace_a), (_, trace_b) in slices:
        result.add(trace_a, trace_b)
    return SaturationResponse(
        checkpoint_a=body.checkpoint_a,
        checkpoint_b=body.checkpoint_b,
        sample=_sample(body, domains),
        layers=result.layers(),
    )
