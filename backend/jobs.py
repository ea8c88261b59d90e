"""Corpus analysis jobs: run in the background, survive restarts, never count twice.

A job's documents are fixed when it is created (the built-in corpus's split, or the
uploaded records, kept in the job row). The runner analyses them in chunks; each chunk's
documents and the job's `done` counter are committed in ONE transaction, so after a crash
the job resumes at `done` with nothing lost and nothing written twice.

Several API processes may share one database: a runner claims a job before running it
(`storage.jobs.claim_job`) and keeps the claim alive while it works; each chunk's commit
checks that it still holds it. A runner that dies without letting go loses the claim when
its lease (`job_lease_s`) runs out, and another runner resumes the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from backend.batching import RouteRequest, run_batch
from backend.deps import AppState
from glam import checkpoint, windows
from glam.corpus import Record, read_corpus
from glam.trace import RoutingTrace
from storage import ingest
from storage import jobs as job_store
from storage.errors import NotFound
from storage.maintenance import route_rows

log = logging.getLogger("glamlab.jobs")
BUILTIN_CORPUS = "corpus.jsonl.gz"  # shipped beside the model's checkpoints
RETRY_FIRST_S = 2.0  # wait after the database failed the runner; doubled per failure
RETRY_MAX_S = 60.0


class ClaimLost(RuntimeError):
    """Another runner took the job over (this one's claim ran out): stop writing for it."""


def builtin_corpus_path(state: AppState) -> Path:
    """The corpus beside the served checkpoint; an imported model's directory ships none,
    so it is the shipped GLaM's (text and domains, which any tokenizer reads)."""
    beside = state.registry.main.path.parent / BUILTIN_CORPUS
    if beside.exists() or not state.registry.imported:
        return beside
    return checkpoint.shipped_dir().parent / BUILTIN_CORPUS


def builtin_records(state: AppState, split: str | None) -> list[Record]:
    path = builtin_corpus_path(state)
    if not path.exists():
        raise NotFound(f"no built-in corpus beside the model ({path})")
    return read_corpus(path, split)


def job_records(state: AppState, params: dict[str, Any]) -> list[dict[str, str]]:
    """The documents of a job, in order: [{"text", "domain"}]."""
    if params["corpus"] == "upload":
        records = params["records"]
    else:
        records = [
            {"text": r.text, "domain": r.domain}
            for r in builtin_records(state, params.get("split"))
        ]
    limit = params.get("limit")
    return records[:limit] if limit else records


@dataclasses.dataclass
class _Analysed:
    """A chunk through the model: traces of at most `step` windows each, with the offset of
    their first window, and every window's text and domain."""

    traces: list[tuple[RoutingTrace, int]]
    texts: list[str]
    domains: list[str]
    step: int


class JobRunner:
    """One worker thread that runs queued jobs, oldest first, each under a claim."""

    def __init__(self, state: AppState):
        self.state = state
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = dt.timedelta(seconds=state.settings.job_lease_s)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="glamlab-jobs", daemon=True)
        self.retry_delay_s = 0.0  # 0 while the database answers; else the current backoff

    def start(self) -> None:
        self._thread.start()
        self._wake.set()  # resume whatever a previous process left running or queued

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def notify(self) -> None:
        self._wake.set()

    def _next_job(self) -> int | None:
        """Claim the next job (interrupted ones first) for this runner."""
        with self.state.writer.begin() as session:
            return job_store.claim_job(session, runner=self.runner_id, lease=self.lease)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.retry_delay_s:  # the database failed us: back off, wakes or not
                self._stop.wait(self.retry_delay_s)
            else:
                self._wake.wait(timeout=5)
            self._wake.clear()
            try:
                while not self._stop.is_set() and (job_id := self._next_job()) is not None:
                    try:
                        self._run(job_id)
                    except (OperationalError, PoolTimeout):
                        raise  # the database is away: retry the same job after a while
                    except ClaimLost:
                        log.warning("job %s: another runner took it over", job_id)
                    except Exception as error:  # the job itself is broken: never retry it
                        log.exception("job %s failed", job_id)
                        self._fail(job_id, f"{type(error).__name__}: {error}")
                self.retry_delay_s = 0.0
            except Exception:  # the database may be down: try again, less and less often
                self.retry_delay_s = min(max(2 * self.retry_delay_s, RETRY_FIRST_S), RETRY_MAX_S)
                log.exception("job runner (next try in %.0f s)", self.retry_delay_s)

    def _fail(self, job_id: int, message: str) -> None:
        with self.state.writer.begin() as session:
            job_store.update_job(session, job_id, status="failed", error=message[:2000])
            job_store.release_claim(session, job_id, runner=self.runner_id)
        self._forget_metrics(job_id)

    def _release(self, job_id: int) -> None:
        with self.state.writer.begin() as session:
            job_store.release_claim(session, job_id, runner=self.runner_id)

    def _renew(self, session: Session, job_id: int) -> None:
        if not job_store.renew_claim(session, job_id, runner=self.runner_id, lease=self.lease):
            raise ClaimLost(job_id)

    @contextlib.contextmanager
    def _claim_kept_alive(self, job_id: int) -> Iterator[threading.Event]:
        """Renew the claim every third of the lease while the job runs (a chunk through the
        model can outlast a lease); the yielded event is set if the claim was lost."""
        done, lost = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(self.lease.total_seconds() / 3):
                try:
                    with self.state.writer.begin() as session:
                        self._renew(session, job_id)
                except ClaimLost:
                    lost.set()
                    return
                except Exception:  # the database is away: the commits will say so
                    log.warning("job %s: could not renew its claim", job_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"glamlab-job-{job_id}-claim", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def _forget_metrics(self, job_id: int) -> None:
        for gauge in (self.state.metrics.job_done, self.state.metrics.job_total):
            with contextlib.suppress(KeyError):
                gauge.remove(str(job_id))

    def _is_cancelled(self, job_id: int) -> bool:
        with self.state.sessions() as session:
            job = job_store.get_job(session, job_id)
            return job is None or job.status == "cancelled"

    def _analyse(self, batch: Sequence[Record]) -> _Analysed:
        """The chunk's documents through the model; a document longer than max_tokens as
        overlapping windows, stitched back into one document (glam/windows.py)."""
        state = self.state
        tokenizer = state.registry.main.tokenizer
        documents = [
            (record, ids)
            for record, ids in zip(
                batch, tokenizer.encode_batch([r["text"] for r in batch]), strict=True
            )
            if ids  # a text of no tokens has no routing to store
        ]
        plans, sequences = windows.plan_documents([ids for _, ids in documents], state.max_tokens)
        # Forward passes of at most max_batch_size windows: one long document can make
        # thousands of windows, which must not become one giant batch.
        step = state.settings.max_batch_size
        model = state.registry.model("final")
        rows = [
            row
            for i in range(0, len(sequences), step)
            for row in windows.rows_of(run_batch(model, sequences[i : i + step], RouteRequest()))
        ]
        state.metrics.tokens_analysed.inc(sum(len(s) for s in sequences))
        stitched = windows.stitch_documents(rows, plans)
        traces = [(windows.stack(stitched[i : i + step]), i) for i in range(0, len(stitched), step)]
        texts = [record["text"] for record, _ in documents]
        domains = [record["domain"] for record, _ in documents]
        return _Analysed(traces, texts, domains, step)

    def _commit(self, job_id: int, run_id: int, analysed: _Analysed, done: int) -> None:
        """The chunk's documents and the progress counter, in ONE transaction: a crash before
        this commit redoes the chunk, after it never repeats it."""
        state, step = self.state, analysed.step
        with state.writer.begin() as session:
            self._renew(session, job_id)  # still ours: else nothing of this chunk is written
            for trace, i in analysed.traces:
                ingest.add_documents(
                    session, run_id, trace=trace, texts=analysed.texts[i : i + step],
                    domains=analysed.domains[i : i + step],
                )  # fmt: skip
            job_store.update_job(session, job_id, done=done)
        state.metrics.job_done.labels(str(job_id)).set(done)
        state.keeper.wrote(sum(route_rows(trace) for trace, _ in analysed.traces))

    def _run(self, job_id: int) -> None:
        """Run a job this runner has claimed; the claim is let go however it ends, except
        when the database fails (then it runs out, or this runner claims the job again)."""
        with self._claim_kept_alive(job_id) as lost:
            self._run_claimed(job_id, lost)
        self._release(job_id)

    def _run_claimed(self, job_id: int, lost: threading.Event) -> None:
        state = self.state
        with state.writer.begin() as session:
            job = job_store.get_job(session, job_id)
            # Cancelled between being picked and starting: leave it cancelled.
            if job is None or job.status not in ("queued", "running"):
                return
            try:
                records = job_records(state, job.params)
            except Exception as error:  # e.g. the built-in corpus is gone
                job_store.update_job(session, job_id, status="failed", error=str(error))
                return
            if not state.model_registered:
                from backend.analysis import register_model

                register_model(session, state)
            run_id = job.run_id
            if run_id is None:
                run_id = ingest.create_run(
                    session, model_name=state.model_name, source="job",
                    parameters={"job": job_id},
                )  # fmt: skip
            done = job_store.update_job(session, job_id, status="running", run_id=run_id).done
        state.model_registered = True
        state.metrics.job_total.labels(str(job_id)).set(len(records))
        chunk = state.settings.job_chunk_documents
        # Chunk n is committed on a writer thread while chunk n+1 runs through the model: the
        # database's time hides behind the model's. Commits stay in order, one at a time.
        with ThreadPoolExecutor(1, thread_name_prefix="glamlab-job-writer") as writer:
            committing: Future[None] | None = None
            while done < len(records):
                if lost.is_set():
                    raise ClaimLost(job_id)
                if self._stop.is_set() or self._is_cancelled(job_id):
                    break
                batch = records[done : done + chunk]
                analysed = self._analyse(batch)
                if committing is not None:
                    committing.result()  # a failed commit stops the job here, as it did inline
                    committing = None
                # Cancelled or stopped while this chunk ran through the model: it is not
                # committed (the one in flight was), so a cancel starts no new write.
                if self._stop.is_set() or self._is_cancelled(job_id):
                    break
                done += len(batch)
                committing = writer.submit(self._commit, job_id, run_id, analysed, done)
            if committing is not None:
                committing.result()
        if self._stop.is_set() or done < len(records):
            return  # stopped or cancelled: a restart resumes at the last committed chunk
        with state.writer.begin() as session:
            self._renew(session, job_id)
            if job_store.get_job(session, job_id).status != "cancelled":
                job_store.update_job(session, job_id, status="done")
        self._forget_metrics(job_id)
