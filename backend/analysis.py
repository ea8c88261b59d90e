"""Analyse texts: validate, tokenize, route through the batcher, store, serialise.

The routes, the corpus jobs and the experiments all go through here, so a text is
validated, run and stored the same way whoever asks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from fastapi import HTTPException, status
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from backend.batching import BatcherStopped, RouteRequest, freeze_ablation
from backend.deps import AppState
from backend.registry import UnknownCheckpoint
from glam import probes
from glam.model import ablation_mask
from glam.tokenizer import Tokenizer
from glam.trace import RoutingTrace
from storage import ingest, training
from storage import runs as run_store
from storage.maintenance import route_rows

NO_DROPS = "no-drops"  # the API's name for unlimited capacity (capacity_factor)

COMMIT_IN_DOUBT = (
    "the database connection was lost while committing: the run may or may not have been "
    "stored; retry with the same Idempotency-Key header (it stores a run at most once), or "
    "look for the run (GET /v1/runs) before retrying without one"
)
KEY_REUSED = (
    "this Idempotency-Key was already used by a request with other texts, domains or "
    "parameters; use a new key for a new request"
)


def bad_request(message: str, code: int = status.HTTP_422_UNPROCESSABLE_CONTENT) -> HTTPException:
    return HTTPException(code, detail=message)


def is_utf8(text: str) -> bool:
    """JSON can carry lone surrogates ("\\ud800"), which no tokenizer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def route_request(
    state: AppState,
    *,
    checkpoint: str = "final",
    ablate: Mapping[int, Sequence[int]] | None = None,
    capacity_factor: float | str | None = None,
    router_probs: bool = False,
) -> RouteRequest:
    """Check the routing options against the model; 422 with the reason when wrong.

    `capacity_factor` "no-drops" is unlimited capacity (the model's forward takes inf).
    An imported model's router is dropless: it has no capacity to override, so a factor is
    a 422 (docs/FAMILIES.md), and "no-drops" is what it always does.
    """
    if capacity_factor == NO_DROPS:
        capacity_factor = math.inf
    if capacity_factor is not None and not math.isinf(capacity_factor) and state.registry.imported:
        cfg = state.registry.main.config
        raise bad_request(
            f"capacity_factor: {cfg.name} ({cfg.family}) is a dropless model: its router "
            'never drops a token, so it has no capacity to override; send null or "no-drops"'
        )
    if checkpoint not in state.registry.names:
        raise bad_request(
            f"unknown checkpoint {checkpoint!r}; registered: {', '.join(state.registry.names)}"
        )
    try:
        ablation_mask(state.registry.main.config, ablate)
    except ValueError as error:
        raise bad_request(f"ablate: {error}") from None
    return RouteRequest(
        checkpoint=checkpoint,
        ablate=freeze_ablation(dict(ablate) if ablate else None),
        # Any factor reuses the compiled programs (only the buffer's power of two is
        # static: docs/ROUTING.md), so it is honoured as sent.
        capacity_factor=capacity_factor,
        router_probs=router_probs,
    )


def tokenize(state: AppState, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, within the limits; 413/422 naming the text otherwise."""
    if len(texts) > state.settings.max_texts_per_request:
        raise bad_request(
            f"{len(texts)} texts in one request; the limit is "
            f"{state.settings.max_texts_per_request}",
            status.HTTP_413_CONTENT_TOO_LARGE,
        )
    for index, text in enumerate(texts):
        if not is_utf8(text):
            raise bad_request(f"texts[{index}] is not valid Unicode (a lone surrogate?)")
        if "\x00" in text:  # PostgreSQL text cannot hold one: a 422 here, not a 503 at commit
            raise bad_request(f"texts[{index}] contains a NUL character")
    tokenizer = state.registry.main.tokenizer
    ids = tokenizer.encode_batch(list(texts))
    for index, seq in enumerate(ids):
        if not seq:
            raise bad_request(f"texts[{index}] encodes to no tokens")
        if len(seq) > state.max_tokens:
            raise bad_request(
                f"texts[{index}] is {len(seq)} tokens; the limit is {state.max_tokens} "
                "(split it, or analyse a corpus as a job)",
                status.HTTP_413_CONTENT_TOO_LARGE,
            )
    return ids


async def run_model(
    state: AppState, sequences: list[list[int]], options: RouteRequest
) -> RoutingTrace:
    try:
        trace = await state.batcher.submit(sequences, options)
    except UnknownCheckpoint as error:
        raise bad_request(str(error)) from None
    except BatcherStopped as error:  # readiness says so too; a retry may reach another replica
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from None
    state.metrics.tokens_analysed.inc(sum(len(s) for s in sequences))
    return trace


def run_parameters(options: RouteRequest, state: AppState) -> dict[str, Any]:
    """What a stored run records about how the model was run (None where default)."""
    return {
        "ablation": {str(layer): list(experts) for layer, experts in options.ablate} or None,
        # inf is not JSON: a run without drops records the API's name for it
        "capacity_factor": NO_DROPS
        if options.capacity_factor is not None and math.isinf(options.capacity_factor)
        else options.capacity_factor,
        "checkpoint": None if options.checkpoint == "final" else options.checkpoint,
        "checkpoint_sha256": state.registry.info(options.checkpoint).sha256,
    }


def register_model(session: Session, state: AppState) -> None:
    """Make sure the served model, its vocabulary and its routing over training (when
    traces ship with it) are in the store."""
    main = state.registry.main
    model_id = ingest.register_model(
        session,
        name=main.config.name,
        num_experts=main.config.num_experts,
        top_k=main.config.top_k,
        vocab_size=main.config.vocab_size,
        preset=main.config.name,
        config=main.config.to_dict(),
        checkpoint_sha256=state.registry.info("final").sha256,
        moe_layers=list(main.config.moe_layers),
        pieces=main.tokenizer.vocab(),
    )
    traces = probes.traces_beside(state.registry.info("final").path)
    if traces is not None:
        digest = hashlib.sha256(traces.read_bytes()).hexdigest()
        if training.stored_traces_sha256(session, model_id) != digest:
            points = probes.curves(probes.load_traces(traces))
            training.replace_training_routing(session, model_id, points, digest)


def store_run(
    session: Session,
    state: AppState,
    *,
    trace: RoutingTrace,
    texts: Sequence[str],
    domains: Sequence[str] | str,
    options: RouteRequest,
    source: str = "request",
    extra_parameters: dict[str, Any] | None = None,
    pooled: bool | None = None,
    request_key: str | None = None,
) -> tuple[int, list[int]]:
    """Write one run, whole or not at all; returns (run id, document ids).

    With a `request_key` (the client's Idempotency-Key) the run is stored at most once: a
    request that repeats a stored one gets the stored run's ids back and writes nothing.
    """
    parameters = {**run_parameters(options, state), **(extra_parameters or {})}
    labels = [domains] * len(texts) if isinstance(domains, str) else list(domains)
    if request_key is not None:
        stored = _stored_request(state, request_key, texts, labels, parameters)
        if stored is not None:
            return stored
    document_ids: list[int]
    committing = False
    try:
        with session.begin():
            if not state.model_registered:
                register_model(session, state)
            run_id = ingest.create_run(
                session,
                model_name=state.model_name,
                source=source,
                parameters=parameters,
                pooled=pooled,
                request_key=request_key,
            )
            document_ids = ingest.add_documents(
                session, run_id, trace=trace, texts=texts, domains=domains
            )
            committing = True  # what fails from here on is the COMMIT
    except IntegrityError:
        # A concurrent request with the same key stored its run first: answer with that one.
        stored = None
        if request_key is not None:
            stored = _stored_request(state, request_key, texts, labels, parameters)
        if stored is None:
            raise
        return stored
    except DBAPIError as error:
        # The connection broke after COMMIT was sent: the server may have committed (a
        # PostgreSQL stopped mid-commit does, tests/reliability/test_faults.py). The usual
        # 503 says "nothing changed, retry", and a retry would store the run twice.
        if committing and error.connection_invalidated:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, COMMIT_IN_DOUBT) from error
        raise
    state.model_registered = True
    state.keeper.wrote(route_rows(trace))
    return run_id, document_ids


def _stored_request(
    state: AppState,
    request_key: str,
    texts: Sequence[str],
    domains: Sequence[str],
    parameters: dict[str, Any],
) -> tuple[int, list[int]] | None:
    """(run id, document ids) of the run stored under `request_key`, if any; a 422 if that
    request differed from this one (a key names one request, not a slot to overwrite).

    Read on a reader session: on SQLite the writer's BEGIN IMMEDIATE would queue a look-up
    behind every write. The unique index settles a race between two first attempts.
    """
    with state.sessions() as session:
        stored = run_store.stored_request(session, request_key)
    if stored is None:
        return None
    hashes = tuple(hashlib.sha256(text.encode()).hexdigest() for text in texts)
    # The parameters as the database holds them (JSON: tuples become lists).
    same_parameters = stored.parameters == json.loads(json.dumps(parameters))
    if stored.text_sha256 != hashes or stored.domains != tuple(domains) or not same_parameters:
        raise bad_request(KEY_REUSED)
    return stored.run_id, list(stored.document_ids)


def documents_from_trace(
    trace: RoutingTrace,
    tokenizer: Tokenizer,
    domains: Sequence[str],
    document_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The API's per-token view of a trace (one document per batch row), as plain JSON-ready
    dicts in the shape of `schemas.Document`: built with numpy's `tolist`, not one pydantic
    object per token, because this runs for every token of every request."""
    vocab = tokenizer.vocab()
    layers = trace.moe_layers.tolist()
    documents = []
    for row in range(trace.batch_size):
        length = int(trace.mask[row].sum())
        ids = trace.tokens[row, :length].tolist()
        # Token-major [S, L, ...] lists, so each token's routes are one slice.
        expert = trace.expert[:, row, :length].swapaxes(0, 1).tolist()
        gate = trace.gate[:, row, :length].swapaxes(0, 1).round(6).tolist()
        prob = trace.prob[:, row, :length].swapaxes(0, 1).round(6).tolist()
        kept = trace.kept[:, row, :length].swapaxes(0, 1).tolist()
        entropy = trace.entropy[:, row, :length].T.round(6).tolist()
        probs = (
            None
            if trace.router_probs is None
            else trace.router_probs[:, row, :length].swapaxes(0, 1).round(6).tolist()
        )
        nll_row = trace.nll[row, :length]
        nll = [None if math.isnan(x) else x for x in nll_row.tolist()]
        predicted = trace.predicted[row, :length].tolist()
        tokens = [
            {
                "position": pos,
                "piece": vocab[token_id],
                "token_id": token_id,
                "nll": nll[pos],
                "predicted": predicted[pos],
                "predicted_piece": vocab[predicted[pos]],
                "routes": [
                    {
                        "layer": layer,
                        "experts": expert[pos][i],
                        "gates": gate[pos][i],
                        "probs": prob[pos][i],
                        "kept": kept[pos][i],
                        "entropy": entropy[pos][i],
                        "router_probs": None if probs is None else probs[pos][i],
                    }
                    for i, layer in enumerate(layers)
                ],
            }
            for pos, token_id in enumerate(ids)
        ]
        finite = nll_row[~np.isnan(nll_row)]
        alone = trace.select([row])
        documents.append(
            {
                "index": row,
                "document_id": None if document_ids is None else int(document_ids[row]),
                "domain": domains[row],
                "n_tokens": length,
                "mean_nll": float(finite.mean()) if finite.size else None,
                "aux_loss": alone.aux_loss.tolist(),
                "z_loss": alone.z_loss.tolist(),
                "tokens": tokens,
            }
        )
    return documents
