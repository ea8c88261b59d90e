"""Corpus jobs end to end through the service: tokens/s of a job against the model alone.

    python -m bench.jobs                           # shipped model, built-in corpus, both stores
    python -m bench.jobs --backends sqlite --limit 200

The service (`create_app`, lifespan on, shipped model) analyses the built-in corpus as a job:
forward passes, their capture, and each chunk committed with the job's progress. The model
alone is the same chunks through the same code path (`JobRunner._analyse`: tokenize, cut
into windows, padded forward passes with capture), without the store. The ratio is the
cost of keeping every token's routing, as a corpus job pays it (target >= 0.7). Each store
is new (a temporary SQLite file; a fresh PostgreSQL database, dropped afterwards).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.app import create_app
from backend.jobs import job_records
from backend.settings import Settings
from storage import db

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _sqlite_store() -> tuple[str, Callable[[], None]]:
    folder = Path(tempfile.mkdtemp(prefix="bench-jobs-"))

    def drop() -> None:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()

    return f"sqlite:///{folder / 'jobs.sqlite'}", drop


def _postgres_store() -> tuple[str, Callable[[], None]]:
    name = f"bench_jobs_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()

    return f"{PG_SERVER}/{name}", drop


def measure(database_url: str, split: str, limit: int | None) -> dict[str, float]:
    settings = Settings(database_url=database_url, auto_migrate=True,
                        analyze_builtin_on_start=False)  # fmt: skip
    with TestClient(create_app(settings)) as client:
        state = client.app.state.glamlab
        records = job_records(state, {"corpus": "builtin", "split": split, "limit": limit})
        chunk = state.settings.job_chunk_documents

        def model_only() -> float:
            start = time.perf_counter()
            for i in range(0, len(records), chunk):
                state.jobs._analyse(records[i : i + chunk])
            return time.perf_counter() - start

        model_only()  # compiles every padded shape the job will meet
        model_seconds = [model_only()]
        form = {"corpus": "builtin", "split": split}
        if limit:
            form["limit"] = str(limit)
        start = time.perf_counter()
        job_id = client.post("/v1/jobs", data=form).json()["job_id"]
        while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
            time.sleep(0.02)
        job_seconds = time.perf_counter() - start
        if job["status"] != "done":
            raise RuntimeError(f"job ended {job['status']}: {job.get('error')}")
        model_seconds.append(model_only())  # before and after: the machine's drift, averaged
        tokens = client.get(f"/v1/runs/{job['run_id']}").json()["n_tokens"]
    model_s = sum(model_seconds) / len(model_seconds)
    return {
        "documents": len(records),
        "tokens": tokens,
        "model": tokens / model_s,
        "job": tokens / job_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--split", default="validation", choices=("train", "validation"))
    parser.add_argument("--limit", type=int, default=None, help="documents (default: all)")
    args = parser.parse_args()
    stores = {"sqlite": _sqlite_store, "postgresql": _postgres_store}
    print("corpus job through the service vs the model alone on the same chunks (tokens/s)")
    for backend in args.backends.split(","):
        try:
            url, drop = stores[backend]()
        except Exception as error:  # an unreachable server: say so, go on
            print(f"  {backend:<12}unavailable: {type(error).__name__}: {error}")
            continue
        try:
            r = measure(url, args.split, args.limit)
        finally:
            drop()
        print(
            f"  {backend:<12}{r['documents']:>5} documents {r['tokens']:>8,} tokens   "
            f"model alone {r['model']:>8,.0f}   job {r['job']:>8,.0f}   "
            f"ratio {r['job'] / r['model']:.2f} (target >= 0.7)"
        )


if __name__ == "__main__":
    main()
