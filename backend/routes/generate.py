"""Generate text; the routing of prompt and generated tokens alike."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from backend import analysis
from backend.batching import RouteRequest
from backend.deps import StateDep, WriteAccess
from backend.routes.analyze import ERRORS
from backend.schemas import Document, GenerateRequest, GenerateResponse
from glam.generate import generate

router = APIRouter(prefix="/v1", tags=["generate"])

# Generation routes one token at a time with no capacity limit (see glam/generate.py): its
# routing is not the model's batch routing, so a stored generate run says so and stays out
# of the model-wide statistics.
_GENERATION = RouteRequest()
_GENERATION_PARAMETERS = {"routing": "incremental decoding, no capacity limit"}


@router.post(
    "/generate",
    dependencies=[WriteAccess],
    responses=ERRORS,
    summary="Generate a continuation and return the routing of every token",
)
async def generate_text(body: GenerateRequest, state: StateDep) -> GenerateResponse:
    main = state.registry.main
    prompt_ids = analysis.tokenize(state, [body.prompt])[0]
    if body.max_new_tokens > state.settings.max_new_tokens:
        raise analysis.bad_request(
            f"max_new_tokens is {body.max_new_tokens}; the limit is {state.settings.max_new_tokens}"
        )
    if len(prompt_ids) + body.max_new_tokens > main.config.max_len:
        raise analysis.bad_request(
            f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({body.max_new_tokens}) "
            f"exceeds the model's {main.config.max_len}"
        )
    # One model at a time: generation takes the same lock-free path as the batcher's
    # worker thread, but runs in its own thread so the event loop stays free.
    out = await asyncio.to_thread(
        generate,
        main.model,
        main.tokenizer,
        body.prompt,
        max_new_tokens=body.max_new_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
    )
    state.metrics.tokens_analysed.inc(out.trace.seq_len)
    # A sampled byte-fallback piece may decode to NUL, which PostgreSQL text cannot hold: the
    # stored text shows it as U+FFFD (the tokens keep the ids; the response, the real text).
    text = main.tokenizer.decode(out.trace.tokens[0].tolist()).replace("\x00", "\ufffd")
    run_id, document_ids = None, None
    if body.store:

        def write() -> tuple[int, list[int]]:
            with state.writer() as session:
                return analysis.store_run(
                    session, state, trace=out.trace, texts=[text], domains=body.domain,
                    options=_GENERATION, source="generate",
                    extra_parameters=_GENERATION_PARAMETERS, pooled=False,
                )  # fmt: skip

        run_id, document_ids = await asyncio.to_thread(write)
    document = analysis.documents_from_trace(
        out.trace, main.tokenizer, [body.domain], document_ids
    )[0]
    return GenerateResponse(
        text=out.text,
        prompt_tokens=out.prompt_tokens,
        stopped_at_eos=out.stopped_at_eos,
        run_id=run_id,
        document=Document.model_validate(document),
    )
