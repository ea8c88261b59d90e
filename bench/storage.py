"""Storage benchmark: ingest rate, statistic-query latency, end-to-end corpus throughput.

    python -m bench.storage                      # 10M route rows on SQLite and PostgreSQL
    python -m bench.storage --rows 500000        # a quick run
    python -m bench.storage --backends sqlite --skip-model

Prints, per backend: the ingest rate (route rows/s) while filling a store to --rows route
rows through `storage.ingest.ingest_run`; p50/p95 latency of every statistic query on that
store (target p95 <= 50 ms; objects alive by then are first frozen out of the garbage
collector, as a service should do after startup: see --no-gc-freeze); and corpus analysis
throughput (glam-tiny forward with capture + ingest, tokens/s) as a ratio of the
model-only throughput on the same tokens (target >= 0.7). Traces for the fill are
synthetic, shaped like glam-tiny's (2 MoE layers, 8 experts, 8192-token vocabulary,
Zipf-distributed tokens, token-dependent routing).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from glam.trace import RoutingTrace
from storage import db, queries, runs
from storage.examples import expert_examples
from storage.ingest import ingest_run, register_model
from storage.maintenance import StatisticsKeeper
from storage.pipeline import BackgroundIngest
from storage.scope import Scope

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MODEL, NUM_EXPERTS, VOCAB, MOE_LAYERS = "bench-tiny", 8, 8192, (1, 3)
DOMAINS = ("web", "code", "wiki", "books", "news")


def synthetic_trace(rng: np.random.Generator, batch: int, seq: int) -> RoutingTrace:
    """A glam-tiny-shaped trace: Zipf tokens, experts that prefer some tokens, ~5% drops."""
    n_layers = len(MOE_LAYERS)
    tokens = np.minimum(rng.zipf(1.2, size=(batch, seq)), VOCAB) - 1
    lengths = rng.integers(seq // 2, seq + 1, size=batch)
    mask = np.arange(seq)[None, :] < lengths[:, None]
    preferred = (tokens[None] * (np.arange(n_layers)[:, None, None] + 3)) % NUM_EXPERTS
    noise = rng.integers(0, NUM_EXPERTS, size=(n_layers, batch, seq))
    e1 = np.where(rng.random((n_layers, batch, seq)) < 0.5, preferred, noise)
    e2 = (e1 + rng.integers(1, NUM_EXPERTS, size=e1.shape)) % NUM_EXPERTS
    p1 = rng.uniform(0.3, 0.7, size=e1.shape)
    p2 = rng.uniform(0.05, 1 - p1)
    prob = np.stack([p1, p2], -1).astype(np.float32)
    kept = rng.random(prob.shape) > 0.05
    nll = rng.gamma(2.0, 2.0, size=(batch, seq)).astype(np.float32)
    nll[np.arange(batch), lengths - 1] = np.nan
    return RoutingTrace(
        moe_layers=np.asarray(MOE_LAYERS, np.int32),
        tokens=tokens.astype(np.int32),
        mask=mask,
        expert=np.stack([e1, e2], -1).astype(np.int16),
        gate=(prob / prob.sum(-1, keepdims=True) * kept).astype(np.float32),
        prob=prob,
        kept=kept,
        entropy=rng.uniform(0.5, 2.0, size=e1.shape).astype(np.float32),
        aux_loss=rng.uniform(1.0, 1.2, size=n_layers).astype(np.float32),
        z_loss=rng.uniform(3.0, 4.0, size=n_layers).astype(np.float32),
        nll=nll,
        predicted=(np.minimum(rng.zipf(1.2, size=(batch, seq)), VOCAB) - 1).astype(np.int32),
    )


def _texts(rng: np.random.Generator, n: int) -> list[str]:
    return [f"document {rng.integers(1 << 62)}" for _ in range(n)]


def open_store(backend: str) -> tuple[Engine, Callable[[], None]]:
    """A fresh, migrated store and a function that removes it."""
    if backend == "sqlite":
        folder = tempfile.mkdtemp(prefix="bench-storage-")
        engine = db.make_engine(f"sqlite:///{folder}/bench.sqlite")

        def drop() -> None:
            engine.dispose()
            for path in Path(folder).iterdir():
                path.unlink()
            Path(folder).rmdir()

    else:
        schema = f"bench_storage_{uuid.uuid4().hex[:8]}"
        admin = db.make_engine(PG_URL)
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
        engine = db.make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})

        def drop() -> None:
            engine.dispose()
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()

    db.upgrade(engine)
    with Session(engine) as session, session.begin():
        register_model(
            session,
            name=MODEL,
            num_experts=NUM_EXPERTS,
            vocab_size=VOCAB,
            moe_layers=MOE_LAYERS,
            pieces=[f"p{i}" for i in range(VOCAB)],
        )
    return engine, drop


def fill(engine: Engine, rows: int, batch: int, seq: int, batches_per_run: int) -> dict:
    """Ingest synthetic runs until the store holds `rows` route rows; returns timings.

    The service's maintenance (`StatisticsKeeper`: on PostgreSQL, VACUUM and ANALYZE as rows
    accumulate) runs in line here, and its time counts as ingest time.
    """
    rng = np.random.default_rng(0)
    keeper = StatisticsKeeper(engine, background=False)
    written, seconds, run_ids, first_rate = 0, 0.0, [], None
    while written < rows:
        # A run of several forward passes, ingested in one call like a finished corpus job.
        merged = synthetic_trace(rng, batch * batches_per_run, seq)
        domains = [DOMAINS[i] for i in rng.integers(0, len(DOMAINS), size=merged.batch_size)]
        texts = _texts(rng, merged.batch_size)
        n_routes = int(merged.mask.sum()) * len(MOE_LAYERS)
        start = time.perf_counter()
        with Session(engine) as session, session.begin():
            run_ids.append(
                ingest_run(
                    session,
                    model_name=MODEL,
                    trace=merged,
                    texts=texts,
                    domains=domains,
                    source="job",
                )
            )
        keeper.wrote(n_routes)
        elapsed = time.perf_counter() - start
        first_rate = first_rate or n_routes / elapsed
        written += n_routes
        seconds += elapsed
        print(f"  {written:>11,} route rows  {written / seconds:>10,.0f} rows/s", end="\r")
    print()
    return {
        "rows": written,
        "seconds": seconds,
        "rate": written / seconds,
        "first_rate": first_rate,
        "runs": run_ids,
        "maintenance_passes": keeper.passes,
    }


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95


def query_latencies(
    engine: Engine, run_ids: list[int], repeats: int, seq: int, freeze: bool
) -> list[tuple]:
    """p50/p95 (ms) of each statistic on a few scopes, plus saturation and the explorer."""
    if freeze:
        # As a service should once it has loaded the model: a full collection walks every
        # object of JAX and Flax (~2e5), which put 100-200 ms stalls into 5% of the queries.
        gc.collect()
        gc.freeze()
    rng = np.random.default_rng(1)
    # Two runs over the same documents, as under two checkpoints, for router saturation.
    trace = synthetic_trace(rng, 32, seq)
    texts = _texts(rng, 32)
    pair = []
    for checkpoint in ("step-1", "step-2"):
        again = synthetic_trace(rng, 32, seq)
        again = RoutingTrace.from_arrays(
            {**again.to_arrays(), "tokens": trace.tokens, "mask": trace.mask}
        )
        with Session(engine) as session, session.begin():
            pair.append(
                ingest_run(
                    session,
                    model_name=MODEL,
                    trace=again,
                    texts=texts,
                    domains="web",
                    parameters={"checkpoint": checkpoint},
                )
            )
    with Session(engine) as session:
        document = runs.list_documents(session, run_ids[0], limit=1)[0].id
    scopes = {
        "model": Scope(model=MODEL),
        "model, 2 domains, 1 layer": Scope(model=MODEL, domains=["web", "code"], layers=[3]),
        "1 run": Scope(runs=run_ids[:1]),
        "10 runs, 1 domain": Scope(runs=run_ids[:10], domains=["code"]),
    }
    statistics_ = {
        "expert_load": queries.expert_load,
        "balance": queries.balance,
        "routing_summary": queries.routing_summary,
        "drops_by_position": queries.drops_by_position,
        "domain_specialization": queries.domain_specialization,
        "vocab_specialization(input)": lambda s, sc: queries.vocab_specialization(
            s, sc, expert=3, by="input", min_count=5
        ),
        "vocab_specialization(predicted)": lambda s, sc: queries.vocab_specialization(
            s, sc, expert=5, by="predicted", min_count=5
        ),
        "token_experts": lambda s, sc: queries.token_experts(s, sc, token_id=17),
        "coactivation": queries.coactivation,
        "consecutive_routing": queries.consecutive_routing,
        "transitions": queries.transitions,
        "domain_loss": queries.domain_loss,
        "expert_examples": lambda s, sc: expert_examples(s, sc, layer=MOE_LAYERS[0], expert=3),
        # An expert no token chose (NUM_EXPERTS is past the last): the counts answer, no scan.
        "expert_examples(dead)": lambda s, sc: expert_examples(
            s, sc, layer=MOE_LAYERS[0], expert=NUM_EXPERTS
        ),
    }
    calls: list[tuple[str, str, Callable[[Session], object]]] = [
        (name, scope_name, lambda s, f=f, sc=sc: f(s, sc))
        for name, f in statistics_.items()
        for scope_name, sc in scopes.items()
    ]
    calls += [
        ("router_saturation", f"2 runs x {32 * seq:,} tokens",
         lambda s: queries.router_saturation(s, pair[0], pair[1])),
        ("list_runs", "model", lambda s: runs.list_runs(s, model=MODEL)),
        ("document_tokens", "1 document", lambda s: runs.document_tokens(s, document)),
    ]  # fmt: skip
    results = []
    for name, scope_name, call in calls:
        samples = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            with Session(engine) as session:
                call(session)
            if i:  # the first call warms caches and compiles the statement
                samples.append((time.perf_counter() - start) * 1000)
        results.append((name, scope_name, *_percentiles(samples)))
    return results


def end_to_end(engine: Engine, batch: int, seq: int, steps: int) -> dict | None:
    """glam-tiny forward(capture) + ingest vs forward alone, tokens/s on the same batches.

    "sequential" ingests each batch after its forward pass; "pipelined" writes on a thread
    (`storage.pipeline.BackgroundIngest`) while the next batch is computed.
    """
    try:
        from glam.config import GlamConfig
        from glam.model import build, forward
    except ImportError as error:
        print(f"  model API unavailable ({error}); skipping the end-to-end measurement")
        return None
    cfg = GlamConfig.preset("glam-tiny")
    model = build(cfg, seed=0)
    rng = np.random.default_rng(2)
    batches = [
        (
            # Zipf-distributed ids, as in text (uniform ids would defeat every aggregate).
            (np.minimum(rng.zipf(1.2, size=(batch, seq)), cfg.vocab_size) - 1).astype(np.int32),
            np.arange(seq)[None, :] < rng.integers(seq // 2, seq + 1, size=batch)[:, None],
        )
        for _ in range(steps)
    ]
    texts = [f"doc {i}" for i in range(batch)]
    with Session(engine) as session, session.begin():
        register_model(
            session,
            name=cfg.name,
            num_experts=cfg.num_experts,
            vocab_size=cfg.vocab_size,
            moe_layers=cfg.moe_layers,
        )
    for capture in (False, True):  # compile both programs before timing
        np.asarray(forward(model, *batches[0], capture=capture)[0])

    def timed(capture: bool, ingest: str | None) -> float:
        tokens = 0
        start = time.perf_counter()
        if ingest == "pipelined":
            with BackgroundIngest(engine, model_name=cfg.name) as writer:
                for token_ids, mask in batches:
                    _, trace = forward(model, token_ids, mask, capture=True)
                    writer.submit(trace, texts, "web")
                    tokens += int(mask.sum())
            return tokens / (time.perf_counter() - start)
        for token_ids, mask in batches:
            logits, trace = forward(model, token_ids, mask, capture=capture)
            np.asarray(logits)
            if ingest == "sequential" and trace is not None:
                with Session(engine) as session, session.begin():
                    ingest_run(
                        session,
                        model_name=cfg.name,
                        trace=trace,
                        texts=texts,
                        domains="web",
                        source="job",
                    )
            tokens += int(mask.sum())
        return tokens / (time.perf_counter() - start)

    return {
        "plain": timed(capture=False, ingest=None),
        "capture": timed(capture=True, ingest=None),
        "sequential": timed(capture=True, ingest="sequential"),
        "pipelined": timed(capture=True, ingest="pipelined"),
    }


_E2E = {
    "plain": "model only, no capture",
    "capture": "model only, capture=True",
    "sequential": "model + ingest after each batch",
    "pipelined": "model + ingest on a writer thread",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="route rows to fill")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--batch", type=int, default=32, help="documents per forward pass")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batches-per-run", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per query")
    parser.add_argument("--model-steps", type=int, default=8, help="batches end to end")
    parser.add_argument("--skip-model", action="store_true", help="no end-to-end part")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the startup heap (JAX, Flax) in the collector's generations",
    )
    args = parser.parse_args()

    for backend in args.backends.split(","):
        print(f"\n== {backend} ==")
        try:
            engine, drop = open_store(backend)
        except Exception as error:  # report an unreachable server and go on
            print(f"  unavailable: {type(error).__name__}: {error}")
            continue
        try:
            print(f"filling to {args.rows:,} route rows through ingest_run ...")
            filled = fill(engine, args.rows, args.batch, args.seq, args.batches_per_run)
            print(
                f"ingest: {filled['rows']:,} route rows in {filled['seconds']:.1f} s = "
                f"{filled['rate']:,.0f} route rows/s (first run, empty store: "
                f"{filled['first_rate']:,.0f}/s); {len(filled['runs'])} runs, "
                f"{filled['maintenance_passes']} maintenance passes"
            )
            print(f"\nquery latency, ms, {args.repeats} calls each (target p95 <= 50):")
            print(f"  {'statistic':<34}{'scope':<28}{'p50':>8}{'p95':>8}")
            for name, scope, p50, p95 in query_latencies(
                engine, filled["runs"], args.repeats, args.seq, not args.no_gc_freeze
            ):
                flag = "" if p95 <= 50 else "  > target"
                print(f"  {name:<34}{scope:<28}{p50:>8.1f}{p95:>8.1f}{flag}")
            if not args.skip_model:
                e2e = end_to_end(engine, args.batch, args.seq, args.model_steps)
                if e2e:
                    print(
                        f"\nend to end, glam-tiny, {args.model_steps} batches of "
                        f"{args.batch}x{args.seq} (tokens/s; ratio to model with capture, "
                        "to model without; target >= 0.7):"
                    )
                    for name in ("plain", "capture", "sequential", "pipelined"):
                        print(
                            f"  {_E2E[name]:<44}{e2e[name]:>9,.0f}"
                            f"{e2e[name] / e2e['capture']:>8.2f}{e2e[name] / e2e['plain']:>8.2f}"
                        )
        finally:
            drop()


if __name__ == "__main__":
    main()
