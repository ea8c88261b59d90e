"""The FastAPI application factory.

uvicorn --factory backend.app:create_app      # or: glamlab serve
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.exc import OperationalError

from backend import analysis, errors
from backend import jobs as job_logic
from backend.batching import Batcher
from backend.deps import AppState, ReadAccess
from backend.jobs import JobRunner
from backend.limits import BodySizeLimit
from backend.metrics import Metrics
from backend.registry import ModelRegistry
from backend.routes import analyze, experiments, experts, generate, health, jobs, model, runs, stats
from backend.schemas import DATABASE_DOWN, KEY_REQUIRED
from backend.settings import Settings
from storage import db
from storage import jobs as job_store
from storage import runs as run_store
from storage.errors import NotFound
from storage.maintenance import StatisticsKeeper

log = logging.getLogger("glamlab")


def _queue_builtin_analysis(state: AppState) -> None:
    """On first start, analyse the built-in validation corpus so statistics are never empty."""
    try:
        with state.writer.begin() as session:
            if run_store.list_runs(session, limit=1) or job_store.list_jobs(session, limit=1):
                return
            params = {"corpus": "builtin", "split": "validation", "limit": None}
            total = len(job_logic.job_records(state, params))
            job_store.create_job(session, params=params, total=total)
    except (OperationalError, NotFound) as error:
        log.warning("no built-in analysis on start: %s", error)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url)
        if settings.auto_migrate:
            db.upgrade(engine)
        registry = ModelRegistry(settings.checkpoint, settings.early_checkpoint)
        # JAX and Flax leave ~200k long-lived objects; without this, full collections walk
        # them all and stall requests by 100-200 ms now and then (bench/storage.py).
        gc.collect()
        gc.freeze()
        metrics = Metrics()
        batcher = Batcher(
            registry.model,
            window_s=settings.batch_window_ms / 1000,
            max_rows=settings.max_batch_size,
            on_batch=metrics.observe_batch,
        )
        state = AppState(
            settings=settings,
            engine=engine,
            sessions=db.session_factory(engine),
            writer=db.session_factory(engine, writes=True),
            registry=registry,
            batcher=batcher,
            metrics=metrics,
            keeper=StatisticsKeeper(engine),
        )
        app.state.glamlab = state
        try:
            with state.writer.begin() as session:
                analysis.register_model(session, state)
            state.model_registered = True
        except OperationalError as error:  # the first write registers it instead
            log.warning("database unavailable at start: %s", error)
        batcher.start()
        state.jobs = JobRunner(state)
        analyze_builtin = settings.analyze_builtin_on_start
        if analyze_builtin is None:
            analyze_builtin = not registry.imported
        if analyze_builtin:
            _queue_builtin_analysis(state)
        state.jobs.start()
        try:
            yield
        finally:
            state.jobs.stop()
            await batcher.stop()
            engine.dispose()

    app = FastAPI(
        title="GLaM Routing Lab",
        version="0.1.0",
        summary="A live GLaM mixture-of-experts model that records every token's routing.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type", "X-API-Key", "Idempotency-Key"],
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    @app.middleware("http")
    async def observe_latency(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        state = getattr(request.app.state, "glamlab", None)  # None before the lifespan
        if state is not None:
            state.metrics.request_latency.labels(
                request.method, getattr(route, "path", "unmatched"), str(response.status_code)
            ).observe(time.perf_counter() - started)
        return response

    app.include_router(health.router)  # operators' probes: open whatever the key
    for module in (model, analyze, generate, runs, jobs, stats, experts, experiments):
        # Everything under /v1 holds or computes users' texts: with a key set, reads need it
        # too (Settings.protect_reads); writes and compute also declare WriteAccess.
        responses = dict(KEY_REQUIRED)
        if module in (runs, jobs):  # they live in the database: every route may answer 503
            responses.update(DATABASE_DOWN)
        app.include_router(module.router, dependencies=[ReadAccess], responses=responses)
    return app
