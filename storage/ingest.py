"""Writing routing data: model registration, vocabulary, runs from traces, run deletion.

Every function takes a `Session` and commits nothing: the caller owns the transaction
(`with Session(engine) as s, s.begin(): ingest_run(s, ...)`). Each write also runs inside a
SAVEPOINT, so a failure part-way leaves no row of it behind even when the caller catches the
exception and goes on with its transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.orm import Session

from glam.trace import RoutingTrace
from storage import bulk
from storage.aggregates import AggregateBuffer, summarize
from storage.errors import NotFound
from storage.schema import (
    Document,
    Job,
    Model,
    Route,
    RouteChoice,
    Run,
    RunSource,
    Token,
    Vocab,
)
from storage.schema_aggregates import FAMILIES

# Parameters that change what the model computes. A run that sets any of them is kept out of
# the model-wide aggregates, which describe the model as it is.
INTERVENTIONS = ("ablation", "capacity_factor", "checkpoint")
MAX_DOMAIN_LENGTH = 64


def register_model(
    session: Session,
    *,
    name: str,
    num_experts: int,
    vocab_size: int,
    top_k: int = 2,
    preset: str | None = None,
    config: Mapping[str, Any] | None = None,
    checkpoint_sha256: str | None = None,
    moe_layers: Sequence[int] | None = None,
    pieces: Sequence[str] | None = None,
) -> int:
    """Create the model `name` or update its description; returns its id.

    The shape of an existing model (experts, choices per token, vocabulary size, MoE layers)
    cannot change:
    its stored statistics would no longer mean the same thing.
    """
    with session.begin_nested():
        model = session.scalar(select(Model).where(Model.name == name))
        layers = None if moe_layers is None else [int(i) for i in moe_layers]
        if model is None:
            model = Model(
                name=name,
                num_experts=num_experts,
                top_k=top_k,
                vocab_size=vocab_size,
                preset=preset,
                config=dict(config or {}),
                checkpoint_sha256=checkpoint_sha256,
                moe_layers=layers,
            )
            session.add(model)
            session.flush()
        else:
            shape = (model.num_experts, model.top_k, model.vocab_size)
            if shape != (num_experts, top_k, vocab_size) or (
                layers is not None and model.moe_layers not in (None, layers)
            ):
                raise ValueError(f"model {name!r} is already stored with another shape")
            model.preset = preset if preset is not None else model.preset
            model.config = dict(config) if config is not None else model.config
            model.checkpoint_sha256 = checkpoint_sha256 or model.checkpoint_sha256
            model.moe_layers = layers if layers is not None else model.moe_layers
        if pieces is not None:
            upsert_vocab(session, model.id, pieces)
        return model.id


def upsert_vocab(session: Session, model_id: int, pieces: Sequence[str]) -> None:
    """Store `pieces[token_id]` for every token id: insert new ids, update changed pieces."""
    with session.begin_nested():
        stored = dict(
            session.execute(
                select(Vocab.token_id, Vocab.piece).where(Vocab.model_id == model_id)
            ).all()
        )
        new = [i for i in range(len(pieces)) if i not in stored]
        changed = [
            {"model_id": model_id, "token_id": i, "piece": pieces[i]}
            for i, piece in stored.items()
            if i < len(pieces) and pieces[i] != piece
        ]
        bulk.insert_frame(
            session,
            Vocab.__table__,
            {
                "model_id": np.full(len(new), model_id),
                "token_id": np.asarray(new, dtype=np.int64),
                "piece": np.asarray([pieces[i] for i in new], dtype=object),
            },
        )
        if changed:
            session.execute(update(Vocab), changed)


def is_intervention(parameters: Mapping[str, Any]) -> bool:
    """Whether run parameters change the model (see INTERVENTIONS)."""
    return any(parameters.get(key) not in (None, {}, [], ()) for key in INTERVENTIONS)


def create_run(
    session: Session,
    *,
    model_name: str,
    source: RunSource = "request",
    parameters: Mapping[str, Any] | None = None,
    label: str | None = None,
    pooled: bool | None = None,
    request_key: str | None = None,
) -> int:
    """An empty run of model `model_name`; returns its id.

    `parameters` records how the model was run: `ablation` (experts switched off),
    `capacity_factor` (an override of the model's own), `checkpoint` (another checkpoint
    than the model's). `pooled` (default: no intervention) says whether the run counts in
    the model-wide statistics. `request_key` (unique) is the idempotency key of the request
    that stores the run, if it had one.
    """
    model_id = session.scalar(select(Model.id).where(Model.name == model_name))
    if model_id is None:
        raise NotFound(f"no model named {model_name!r}; register it first")
    parameters = dict(parameters or {})
    run = Run(
        model_id=model_id,
        source=source,
        parameters=parameters,
        pooled=not is_intervention(parameters) if pooled is None else pooled,
        label=label,
        n_documents=0,
        n_tokens=0,
        request_key=request_key,
    )
    session.add(run)
    session.flush()
    return run.id


def _check_inputs(
    trace: RoutingTrace, texts: Sequence[str], domains: Sequence[str], model: Model
) -> None:
    if len(texts) != trace.batch_size or len(domains) != trace.batch_size:
        raise ValueError(
            f"need one text and one domain per batch row ({trace.batch_size}); "
            f"got {len(texts)} texts and {len(domains)} domains"
        )
    if any(len(d) > MAX_DOMAIN_LENGTH for d in domains):
        raise ValueError(f"domain labels are at most {MAX_DOMAIN_LENGTH} characters")
    layers = [int(i) for i in trace.moe_layers]
    if model.moe_layers is not None and model.moe_layers != layers:
        raise ValueError(f"trace MoE layers {layers} != model's {model.moe_layers}")
    if trace.top_k != model.top_k:
        raise ValueError(f"trace has {trace.top_k} choices per token; model {model.top_k}")
    chosen = trace.expert[:, trace.mask]
    if chosen.size and (chosen.min() < 0 or chosen.max() >= model.num_experts):
        raise ValueError(f"expert ids must lie in [0, {model.num_experts})")
    ids = np.concatenate([trace.tokens[trace.mask], trace.predicted[trace.mask]])
    if ids.size and (ids.min() < 0 or ids.max() >= model.vocab_size):
        raise ValueError(f"token ids must lie in [0, {model.vocab_size})")


def _document_rows(
    trace: RoutingTrace, texts: Sequence[str], domains: Sequence[str], run_id: int, first: int
) -> list[dict[str, Any]]:
    rows = []
    for b, (text, domain) in enumerate(zip(texts, domains, strict=True)):
        valid = trace.mask[b]
        nll = trace.nll[b][valid]
        nll = nll[np.isfinite(nll)]
        rows.append(
            {
                "run_id": run_id,
                "ordinal": first + b,
                "domain": domain,
                "text": text,
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "n_tokens": int(valid.sum()),
                "mean_nll": float(nll.mean(dtype=np.float64)) if len(nll) else None,
            }
        )
    return rows


def _write_rows(session: Session, trace: RoutingTrace, document_ids: np.ndarray) -> None:
    """The tokens and routes of `trace`, in primary-key order (appends to the B-trees)."""
    rows, cols = np.nonzero(trace.mask)
    doc = document_ids[rows]
    bulk.insert_frame(
        session,
        Token.__table__,
        {
            "document_id": doc,
            "position": cols,
            "token_id": trace.tokens[rows, cols],
            "nll": trace.nll[rows, cols],
            "predicted": trace.predicted[rows, cols],
        },
    )
    n_layers, k = trace.num_layers, trace.top_k
    layer_ids = np.asarray(trace.moe_layers)
    per_token = lambda a: a[:, rows, cols].swapaxes(0, 1).ravel()  # token-major, then layer, rank
    bulk.insert_frame(
        session,
        Route.__table__,
        {
            "document_id": np.repeat(doc, n_layers),
            "position": np.repeat(cols, n_layers),
            "layer": np.tile(layer_ids, len(rows)),
            "entropy": per_token(trace.entropy),
        },
    )
    bulk.insert_frame(
        session,
        RouteChoice.__table__,
        {
            "document_id": np.repeat(doc, n_layers * k),
            "position": np.repeat(cols, n_layers * k),
            "layer": np.tile(np.repeat(layer_ids, k), len(rows)),
            "rank": np.tile(np.arange(k), len(rows) * n_layers),
            "expert": per_token(trace.expert),
            "gate": per_token(trace.gate),
            "prob": per_token(trace.prob),
            "kept": per_token(trace.kept),
        },
    )


def write_aggregates(
    session: Session, run_id: int, frames: Mapping[str, Mapping[str, np.ndarray]]
) -> None:
    """Add aggregate frames (from `storage.aggregates`) to a run and, if pooled, its model."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    # A run's first rows cannot collide with anything: plain inserts, cheaper than upserts.
    # Every batch has a document, so run_domain_counts tells whether any were written.
    counts = FAMILIES["domain"].run_table.__table__
    fresh = (
        session.scalar(select(counts.c.run_id).where(counts.c.run_id == run_id).limit(1)) is None
    )
    for name, frame in frames.items():
        family = FAMILIES[name]
        size = len(next(iter(frame.values())))
        if family.run_table is not None:
            table = family.run_table.__table__
            run_frame = {"run_id": np.full(size, run.id), **frame}
            if fresh:
                bulk.insert_frame(session, table, run_frame)
            else:
                bulk.add_frame(session, table, ("run_id", *family.keys), run_frame)
        if run.pooled:
            model_frame = {"model_id": np.full(size, run.model_id), **frame}
            bulk.add_frame(
                session, family.model_table.__table__, ("model_id", *family.keys), model_frame
            )


def add_documents(
    session: Session,
    run_id: int,
    *,
    trace: RoutingTrace,
    texts: Sequence[str],
    domains: Sequence[str] | str,
    buffer: AggregateBuffer | None = None,
) -> list[int]:
    """Add the documents of one forward pass to a run; returns their ids.

    Row b of the batch is one document with text `texts[b]` and domain label `domains[b]`
    (one string: the same domain for all). Writes documents, tokens, routes and the
    aggregate increments, all or nothing. With `buffer`, the aggregate increments go there
    instead, and the caller writes them with `write_aggregates(session, run_id,
    buffer.frames())` before committing (see `storage.pipeline`).
    """
    if isinstance(domains, str):
        domains = [domains] * trace.batch_size
    with session.begin_nested():
        run = session.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run {run_id}")
        model = session.get(Model, run.model_id)
        assert model is not None  # foreign key
        _check_inputs(trace, texts, domains, model)
        if model.moe_layers is None:
            model.moe_layers = [int(i) for i in trace.moe_layers]
        document_ids = session.scalars(
            insert(Document).returning(Document.id, sort_by_parameter_order=True),
            _document_rows(trace, texts, domains, run.id, run.n_documents),
        ).all()
        _write_rows(session, trace, np.asarray(document_ids, dtype=np.int64))
        names, domain_of_row = np.unique(
            np.asarray(list(domains), dtype=object), return_inverse=True
        )
        frames = summarize(trace, domain_of_row.ravel(), list(names), model.num_experts)
        if buffer is None:
            write_aggregates(session, run.id, frames)
        else:
            buffer.add(frames)
        run.n_documents += trace.batch_size
        run.n_tokens += int(trace.mask.sum())
        session.flush()
        return list(document_ids)


def ingest_run(
    session: Session,
    *,
    model_name: str,
    trace: RoutingTrace,
    texts: Sequence[str],
    domains: Sequence[str] | str,
    source: RunSource = "request",
    parameters: Mapping[str, Any] | None = None,
    label: str | None = None,
    pooled: bool | None = None,
    pieces: Sequence[str] | None = None,
) -> int:
    """Write a whole run from one forward pass; returns the run id. All or nothing.

    `pieces` (the tokenizer's piece of every token id) fills the model's vocabulary if it
    is not stored yet. See `create_run` for `parameters` and `pooled`, `add_documents` for
    `texts` and `domains`.
    """
    with session.begin_nested():
        run_id = create_run(
            session,
            model_name=model_name,
            source=source,
            parameters=parameters,
            label=label,
            pooled=pooled,
        )
        if pieces is not None:
            model_id = session.scalar(select(Run.model_id).where(Run.id == run_id))
            stored = session.scalar(select(func.count()).where(Vocab.model_id == model_id))
            if stored != len(pieces):
                upsert_vocab(session, model_id, pieces)
        add_documents(session, run_id, trace=trace, texts=texts, domains=domains)
        return run_id


def _subtract_from_model(session: Session, run: Run) -> None:
    """Remove a pooled run's share from the model-wide aggregates."""
    for family in FAMILIES.values():
        model_t = family.model_table.__table__
        source = FAMILIES[family.source or family.name].run_table.__table__
        share = (
            select(
                *(source.c[k] for k in family.keys),
                *(func.sum(source.c[v]).label(v) for v in family.values),
            )
            .where(source.c.run_id == run.id)
            .group_by(*(source.c[k] for k in family.keys))
            .subquery()
        )
        session.execute(
            update(model_t)
            .where(model_t.c.model_id == run.model_id)
            .where(*(model_t.c[k] == share.c[k] for k in family.keys))
            .values({v: model_t.c[v] - share.c[v] for v in family.values})
        )
        # Only the rows this run touched can have emptied: looked up by key, not a scan of
        # every model row of the family.
        touched = select(*(source.c[k] for k in family.keys)).where(source.c.run_id == run.id)
        empty = sum((model_t.c[c] for c in family.presence[1:]), model_t.c[family.presence[0]])
        session.execute(
            delete(model_t).where(
                model_t.c.model_id == run.model_id,
                tuple_(*(model_t.c[k] for k in family.keys)).in_(touched),
                empty <= 0,
            )
        )


def delete_run(session: Session, run_id: int) -> bool:
    """Delete a run, its rows and its share of every aggregate; False if there is none."""
    with session.begin_nested():
        run = session.get(Run, run_id)
        if run is None:
            return False
        if run.pooled:
            _subtract_from_model(session, run)
        documents = select(Document.id).where(Document.run_id == run_id)
        # Core statements on the tables (the ORM would first fetch what it deletes), and
        # explicit rather than ON DELETE CASCADE: one statement per table, not per document.
        for rows in (RouteChoice.__table__, Route.__table__, Token.__table__):
            session.execute(delete(rows).where(rows.c.document_id.in_(documents)))
        for family in FAMILIES.values():
            if family.run_table is not None:
                table = family.run_table.__table__
                session.execute(delete(table).where(table.c.run_id == run_id))
        jobs = Job.__table__
        session.execute(update(jobs).where(jobs.c.run_id == run_id).values(run_id=None))
        session.execute(delete(Document.__table__).where(Document.__table__.c.run_id == run_id))
        session.delete(run)
        session.flush()
        return True
