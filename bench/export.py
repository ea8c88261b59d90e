"""Export benchmark: a run's routing streamed as Parquet and CSV, rows per second.

    python -m bench.export                    # a 1M-row run on SQLite and PostgreSQL
    python -m bench.export --tokens 50000 --backends sqlite

Fills a store with one run of synthetic glam-tiny-shaped traces (bench/storage.py), then
measures side by side on it: the streamed Parquet and CSV exports (`storage.export`, what
GET /v1/runs/{id}/export sends), the row-by-row path the export used before (documents read
through the token explorer's ORM query, one Python tuple per row), and the floor: fetching
the run's `route_choices` rows alone. Target: >= 300,000 exported rows/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bench.storage import DOMAINS, MODEL, MOE_LAYERS, NUM_EXPERTS, PG_URL, VOCAB, synthetic_trace
from storage import db, export
from storage import runs as run_store
from storage.ingest import add_documents, create_run, register_model

TARGET_ROWS_PER_S = 300_000


def fill(engine: Engine, tokens: int) -> tuple[int, int]:
    """One run of about `tokens` valid tokens; returns (run id, exported rows)."""
    rng = np.random.default_rng(0)
    with Session(engine) as session, session.begin():
        register_model(session, name=MODEL, num_experts=NUM_EXPERTS, vocab_size=VOCAB,
                       moe_layers=MOE_LAYERS, pieces=[f"t{i}" for i in range(VOCAB)])  # fmt: skip
        run_id = create_run(session, model_name=MODEL, source="job")
        written = 0
        while written < tokens:
            trace = synthetic_trace(rng, 64, 256)
            domains = [DOMAINS[i % len(DOMAINS)] for i in range(trace.batch_size)]
            texts = [f"doc {uuid.uuid4()}" for _ in range(trace.batch_size)]
            add_documents(session, run_id, trace=trace, texts=texts, domains=domains)
            written += int(trace.mask.sum())
    return run_id, written * len(MOE_LAYERS) * 2


def _timed(label: str, rows: int, job: Callable[[], int]) -> float:
    start = time.perf_counter()
    size = job()
    seconds = time.perf_counter() - start
    rate = rows / seconds
    print(f"  {label:<34s} {seconds:7.2f} s  {rate:>12,.0f} rows/s  {size / 1e6:8.1f} MB")
    return rate


def bench(engine: Engine, tokens: int, old_path: bool) -> dict[str, float]:
    run_id, rows = fill(engine, tokens)
    print(f"  run {run_id}: {rows:,} rows (token x layer x choice)")

    def stream(encode) -> int:
        with Session(engine) as session:
            return sum(len(part) for part in encode(export.run_batches(session, run_id)))

    def floor() -> int:
        with Session(engine) as session:
            fetched = session.execute(
                text("SELECT c.* FROM route_choices c JOIN documents d ON d.id = c.document_id "
                     "WHERE d.run_id = :run"), {"run": run_id},
            ).fetchall()  # fmt: skip
            return len(fetched) * 0

    def row_by_row() -> int:  # the export before it streamed: ORM documents, a tuple per row
        count, offset = 0, 0
        with Session(engine) as session:
            while documents := run_store.run_tokens(session, run_id, limit=50, offset=offset):
                for doc in documents:
                    for token in doc.tokens:
                        for route in token.routes:
                            count += len(route.experts)
                offset += len(documents)
        return 0

    rates = {
        "parquet": _timed(
            "export, Parquet (streamed)", rows, lambda: stream(export.parquet_stream)
        ),
        "csv": _timed("export, CSV (streamed)", rows, lambda: stream(export.csv_stream)),
        "floor": _timed("fetch route_choices alone (floor)", rows, floor),
    }
    if old_path:
        rates["row_by_row"] = _timed("row by row, as before", rows, row_by_row)
        print(f"  Parquet vs row by row: {rates['parquet'] / rates['row_by_row']:.1f}x")
    print(f"  Parquet vs the fetch floor: {rates['parquet'] / rates['floor']:.2f}x")
    verdict = "meets" if rates["parquet"] >= TARGET_ROWS_PER_S else "MISSES"
    print(f"  Parquet {verdict} the {TARGET_ROWS_PER_S:,} rows/s target")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=250_000, help="valid tokens in the run")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--skip-old", action="store_true", help="skip the row-by-row baseline")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        print(f"{backend}:")
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                engine = db.make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
            else:
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                with db.make_engine(PG_URL).begin() as connection:
                    connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
                engine = db.make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
            db.upgrade(engine)
            try:
                bench(engine, args.tokens, not args.skip_old)
            finally:
                engine.dispose()
                if backend != "sqlite":
                    with db.make_engine(PG_URL).begin() as connection:
                        connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
