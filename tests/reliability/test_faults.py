"""Faults: the API killed mid-job, PostgreSQL stopped under load, SQLite locked by writers.

- SIGKILL during a corpus job, then a restart on the same database: the job resumes and
  ends with every document exactly once (and the statistics count each token once).
- A private PostgreSQL stopped mid-load and started again: meanwhile requests fail fast
  with a clear 503, afterwards they succeed without restarting the API, and no request
  that was refused left anything behind.
- SQLite with concurrent writers (requests, a corpus job, a foreign writer holding the write
  lock): writes wait for the lock and none is lost; a lock held past the busy timeout gives a
  clear 503, never a 500, and nothing half-written.
- The connection lost after COMMIT was sent (what stopping PostgreSQL now and then does to a
  write): the 503 says the write may be stored, instead of "nothing changed, retry".
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from backend.analysis import COMMIT_IN_DOUBT
from storage import db
from tests.reliability import live, observations
from tests.ui import stack

pytestmark = pytest.mark.slow

# The API's 503 when the database is away (backend/errors.py). COMMIT_IN_DOUBT is its 503 when
# the connection broke after COMMIT was sent, so the write may have been stored.
DOWN_DETAIL = "database unavailable; the request changed nothing, retry shortly"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_config, tokenizer, corpus_path) -> Path:
    return stack.shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path)


def _sql(database_url: str, query: str, **params: object) -> list[tuple]:
    """Rows of one query, on a connection of its own (the API may be dead or alive)."""
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query), params)]
    finally:
        engine.dispose()


# --- SIGKILL during a corpus job ---------------------------------------------------------

JOB_DOCUMENTS = 600
JOB_CHUNK = 6  # documents per commit: many commits, so the kill lands between two of them
JOB_LEASE_S = 2.0  # scaled down from the service's 30 s


def _corpus(n: int) -> list[dict[str, str]]:
    """Short documents, each with a marker that says which record it is."""
    words = ("The quick brown fox", "def add(a, b):", "Sparse models route tokens", "こんにちは")
    return [
        {"text": f"{words[i % len(words)]} doc{i:05d}", "domain": f"d{i % 3}"} for i in range(n)
    ]


def _job(url: str, job_id: int) -> dict:
    return httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()


def _job_documents(database_url: str, run_id: int) -> list[tuple]:
    """(ordinal, text, n_tokens, token rows) of every stored document of the run."""
    return _sql(
        database_url,
        "SELECT d.ordinal, d.text, d.n_tokens,"
        " (SELECT count(*) FROM tokens t WHERE t.document_id = d.id)"
        " FROM documents d WHERE d.run_id = :run ORDER BY d.ordinal",
        run=run_id,
    )


def test_sigkill_during_a_corpus_job_then_restart_every_document_once(model_dir, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    records = _corpus(JOB_DOCUMENTS)
    upload = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode()
    # The killed runner never lets go of its claim on the job: the restarted one takes it
    # over when the lease runs out.
    settings = {
        "job_chunk_documents": str(JOB_CHUNK),
        "analyze_builtin_on_start": "false",
        "job_lease_s": str(JOB_LEASE_S),
    }

    with live.serve(model_dir, database_url, tmp_path / "api-1.log", **settings) as server:
        started = httpx.post(
            f"{server.url}/v1/jobs",
            data={"corpus": "upload"},
            files={"file": ("corpus.jsonl", upload, "application/jsonl")},
            timeout=60,
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        # Kill once a good part is committed, well before the end: mid-way, for certain.
        live.poll_until(
            lambda: _job(server.url, job_id)["done"] >= JOB_DOCUMENTS // 4,
            timeout=120,
            what="a quarter of the job committed",
            every=0.02,
        )
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
    killed_by = -server.process.returncode

    (job_row,) = _sql(database_url, "SELECT status, done, run_id FROM jobs WHERE id = :j", j=job_id)
    status_at_kill, done_at_kill, run_id = job_row
    before = _job_documents(database_url, run_id)

    with live.serve(model_dir, database_url, tmp_path / "api-2.log", **settings) as server:
        resumed_in = live.poll_until(
            lambda: _job(server.url, job_id)["status"] in ("done", "failed", "cancelled"),
            timeout=180,
            what="the resumed job",
            every=0.1,
        )
        job = _job(server.url, job_id)
        routing = httpx.get(
            f"{server.url}/v1/stats/load", params={"run_id": run_id}, timeout=30
        ).json()
    after = _job_documents(database_url, run_id)

    ordinals = [row[0] for row in after]
    texts = [row[1] for row in after]
    duplicates = len(texts) - len(set(texts)) + len(ordinals) - len(set(ordinals))
    stored_tokens = sum(row[2] for row in after)
    counted_tokens = {layer["layer"]: layer["routing"]["tokens"] for layer in routing}
    observations.record(
        "fault: SIGKILL during a corpus job, then restart (SQLite)",
        f"`glamlab serve` analysing an uploaded corpus of {JOB_DOCUMENTS} documents in chunks "
        f"of {JOB_CHUNK}, killed with SIGKILL once a quarter was committed, then started again "
        "on the same SQLite file; documents counted per ordinal and per text by SQL",
        {
            "documents in corpus": JOB_DOCUMENTS,
            "job status at kill": status_at_kill,
            "job progress (done) at kill": done_at_kill,
            "documents stored at kill": len(before),
            "documents stored after restart": len(after),
            "duplicates": duplicates,
            "missing": JOB_DOCUMENTS - len(set(texts)),
            "job status after restart": job["status"],
            "seconds from restart to job done": round(resumed_in, 2),
            "tokens stored / counted in statistics per layer": [
                stored_tokens,
                *counted_tokens.values(),
            ],
        },
    )

    assert killed_by == signal.SIGKILL
    assert status_at_kill == "running" and 0 < done_at_kill < JOB_DOCUMENTS
    # A chunk's documents and the progress counter commit together: nothing half-written.
    assert len(before) == done_at_kill
    assert [row[3] for row in before] == [row[2] for row in before]
    assert job["status"] == "done" and job["done"] == job["total"] == JOB_DOCUMENTS
    assert ordinals == list(range(JOB_DOCUMENTS)), "ordinals missing or repeated"
    assert duplicates == 0
    # Each ordinal holds its own record (markers are in corpus order), whole.
    for ordinal, body, n_tokens, token_rows in after:
        assert body.endswith(f"doc{ordinal:05d}"), (ordinal, body)
        assert token_rows == n_tokens
    # The statistics count each token once, not once per attempt.
    assert set(counted_tokens.values()) == {stored_tokens}


# --- PostgreSQL stopped during load, then started -------------------------------------------

WRITE = "The quick brown fox"  # each stored text: this and a marker
OUTAGE_CLIENTS = 6
ENOUGH = 30  # answers to collect in each phase
# up: database running; stopping: `pg_ctl stop` running; down: stopped; starting: `pg_ctl
# start` running; recovered: after the first success since. A request whose phase changed
# while it ran is "in transition".
PHASES = ("up", "stopping", "down", "starting", "recovered", "in transition")


class Phases:
    """Clients whose answers are sorted by the phase of the outage they saw.

    Each write carries a marker, so the database can be checked afterwards: acknowledged
    writes stored once, refused ones not at all, in-doubt ones (COMMIT_IN_DOUBT) at most once.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.phase = "up"
        self.tallies = {phase: live.Tally() for phase in PHASES}
        self.acknowledged: list[str] = []
        self.refused: list[str] = []
        self.in_doubt: list[str] = []
        self.details: set[str] = set()
        self.first_success: float | None = None  # perf_counter of the first 2xx since start

    def client(self, index: int, stop: threading.Event) -> None:
        kinds = ("analyze", "stats", "runs")
        with httpx.Client(base_url=self.url, timeout=30) as http:
            step = 0
            while not stop.is_set():
                self._one(http, kinds[(index + step) % 3], f"outage-c{index}-s{step:05d}")
                step += 1

    def _one(self, http: httpx.Client, kind: str, marker: str) -> None:
        phase = self.phase
        started = time.perf_counter()
        if kind == "analyze":
            body = {"texts": [f"{WRITE} {marker}"], "domain": "outage", "store": True}
            response = http.post("/v1/analyze", json=body)
        else:
            response = http.get("/v1/stats/load" if kind == "stats" else "/v1/runs?limit=5")
        seen = phase if self.phase == phase else "in transition"
        self.tallies[seen].add(kind, response.status_code, live.since(started), response.text)
        ok = 200 <= response.status_code < 300
        detail = response.json().get("detail", "") if response.status_code == 503 else ""
        if detail:
            self.details.add(detail)
        if kind == "analyze" and ok:
            self.acknowledged.append(marker)
        elif kind == "analyze":  # the connection lost mid-COMMIT: the one answer not "nothing"
            (self.in_doubt if detail == COMMIT_IN_DOUBT else self.refused).append(marker)
        if ok and phase == "starting" and self.first_success is None:
            self.first_success = time.perf_counter()
            self.phase = "recovered"

    def count(self, phase: str, status: int | None = None) -> int:
        return self.tallies[phase].count(lambda s: status is None or s == status)

    def statuses(self, phase: str) -> set[int]:
        return {s for codes in self.tallies[phase].codes().values() for s in codes}


def _drive_outage(
    load: Phases, postgres: live.PrivatePostgres, stop: threading.Event
) -> dict[str, float]:
    """Up, stop the database, down, start it, back: returns when each step began."""

    def enough(phase: str, status: int) -> Callable[[], bool]:
        return lambda: load.count(phase, status) >= ENOUGH or stop.is_set()

    live.poll_until(enough("up", 200), 60, "successes before the stop")
    load.phase = "stopping"
    times = {"stop": time.perf_counter()}
    postgres.stop("immediate")
    load.phase = "down"
    times["stopped"] = time.perf_counter()

    def long_enough() -> bool:  # an outage worth the name: 2 s and a good number of refusals
        return enough("down", 503)() and time.perf_counter() - times["stopped"] >= 2

    live.poll_until(long_enough, 60, "503s while the database is down")
    load.phase = "starting"
    times["start"] = time.perf_counter()
    postgres.start()
    times["started"] = time.perf_counter()
    live.poll_until(enough("recovered", 200), 60, "successes after the database came back")
    return times


@pytest.mark.postgres
def test_postgres_stopped_during_load_503_fast_then_recovers_without_restart(model_dir, tmp_path):
    with live.private_postgres() as postgres:
        settings = {"analyze_builtin_on_start": "false"}
        with live.serve(model_dir, postgres.url, tmp_path / "api.log", **settings) as server:
            live.warm_up(server.url, f"{WRITE} outage-c0-s00000")
            load = Phases(server.url)
            with live.clients(OUTAGE_CLIENTS, load.client) as stop:
                times = _drive_outage(load, postgres, stop)
            api_kept_running = server.process.poll() is None
        rows = _sql(postgres.url, "SELECT text FROM documents WHERE domain = 'outage'")

    stored = [row[0].rsplit(" ", 1)[1] for row in rows]
    up, down = load.tallies["up"], load.tallies["down"]
    first_success = (load.first_success or math.nan) - times["start"]
    observations.record(
        "fault: PostgreSQL stopped during load, then started (private instance)",
        f"{OUTAGE_CLIENTS} clients (stored analyses, statistics, run lists) against `glamlab "
        "serve` on a private PostgreSQL 15; `pg_ctl stop -m immediate` mid-load, then "
        "`pg_ctl start`, the API left running throughout",
        {
            "answers while up": up.codes(),
            **{f"{kind} latency while up": live.summary_ms(v) for kind, v in up.latencies.items()},
            "answers while down": down.codes(),
            **{f"{kind} 503 latency": live.summary_ms(v) for kind, v in down.latencies.items()},
            "503 detail": sorted(load.details),
            "seconds the database was down": round(times["start"] - times["stopped"], 2),
            "seconds pg_ctl start took": round(times["started"] - times["start"], 3),
            "seconds from pg_ctl start to the first success": round(first_success, 3),
            "answers while stopping / starting": [
                load.tallies["stopping"].codes(),
                load.tallies["starting"].codes(),
            ],
            "answers after the first success": load.tallies["recovered"].codes(),
            "answers spanning two phases": load.tallies["in transition"].codes(),
            "writes acknowledged / refused / in doubt": [
                len(load.acknowledged),
                len(load.refused),
                len(load.in_doubt),
            ],
            "acknowledged writes stored": len(set(stored) & set(load.acknowledged)),
            "refused writes stored": len(set(stored) & set(load.refused)),
            "in-doubt writes stored": len(set(stored) & set(load.in_doubt)),
        },
    )

    assert api_kept_running, "the API process exited"
    assert load.statuses("up") == {200}, load.tallies["up"].failures
    assert load.statuses("down") == {503}, load.tallies["down"].failures
    assert load.details <= {DOWN_DETAIL, COMMIT_IN_DOUBT}, load.details
    assert load.first_success is not None, "no success after the database came back"
    assert load.statuses("recovered") == {200}, load.tallies["recovered"].failures
    # Meanwhile (database stopping or starting): a success or a clear 503, nothing else.
    for phase in ("stopping", "starting", "in transition"):
        assert load.statuses(phase) <= {200, 503}, (phase, load.tallies[phase].failures)
    # Acknowledged writes are stored, once; refused ones changed nothing; a write whose
    # COMMIT lost its answer (said so) may be stored, once.
    assert len(stored) == len(set(stored)), "a write stored twice"
    assert set(load.acknowledged) <= set(stored), "an acknowledged write was lost"
    assert set(stored) <= set(load.acknowledged) | set(load.in_doubt), "a refused write stored"


# --- SQLite busy / locked under concurrent writers ------------------------------------------

BUSY_TIMEOUT_MS = 4000  # scaled down from the service's 10 s, so the test waits less
SHORT_HOLD_S = 1.0  # a foreign writer's lock shorter than the busy timeout: writers wait
LONG_HOLD_S = 6.0  # longer than it: writers give up with 503
WRITERS = 8
JOB_RECORDS = 200
LOCKED_JOB_CHUNK = 4  # documents per commit of the job beside the locks


@dataclasses.dataclass(frozen=True)
class Answer:
    kind: str  # analyze | runs
    marker: str | None  # the stored text's marker (analyze)
    started: float  # perf_counter
    ended: float
    status: int
    detail: str

    def overlaps(self, window: tuple[float, float]) -> bool:
        return self.started < window[1] and self.ended > window[0]


class LockedWriters:
    """Clients storing analyses (and reading runs) while a foreign writer takes the lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[Answer] = []  # list.append is atomic: no lock needed

    def client(self, index: int, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            step = 0
            while not stop.is_set():
                marker = None if step % 4 == 3 else f"lock-c{index}-s{step:05d}"
                self._request(http, marker)
                step += 1

    def _request(self, http: httpx.Client, marker: str | None) -> None:
        started = time.perf_counter()
        if marker is None:
            response = http.get("/v1/runs?limit=5")
        else:
            body = {"texts": [f"{WRITE} {marker}"], "domain": "locked", "store": True}
            response = http.post("/v1/analyze", json=body)
        detail = response.json().get("detail", "") if response.status_code >= 400 else ""
        kind = "runs" if marker is None else "analyze"
        answer = Answer(kind, marker, started, time.perf_counter(), response.status_code, detail)
        self.answers.append(answer)

    def successes(self, after: float) -> int:
        return sum(a.status == 200 and a.started > after for a in self.answers)


def _hold_write_lock(
    path: Path, seconds: float, note: str, on_locked: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """A writer outside the API: take the write lock, write, hold it `seconds`, commit.
    `on_locked` runs once the lock is held.

    Returns the window (perf_counter) in which it held the lock.
    """
    import sqlite3

    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        connection.execute("BEGIN IMMEDIATE")  # waits (busy timeout 30 s) for the API's writers
        taken = time.perf_counter()
        connection.execute("INSERT INTO reliability_probe (note) VALUES (?)", (note,))
        on_locked()
        time.sleep(seconds)  # the point of the test: a lock held this long
        connection.execute("COMMIT")
        return taken, time.perf_counter()
    finally:
        connection.close()


def _lock_twice(
    load: LockedWriters,
    path: Path,
    stop: threading.Event,
    job_running: Callable[[], bool],
    release_job: threading.Event,
) -> dict[str, tuple[float, float]]:
    """Hold the write lock for longer than the busy timeout, then briefly; writes between.

    The long lock comes first, once the job has committed a chunk; the job is held (see
    `_hold_the_job`) until the long lock is taken, so the lock falls in the middle of the job
    however fast or slow the machine is.
    """
    windows: dict[str, tuple[float, float]] = {}
    since = 0.0
    for name, hold in (("long", LONG_HOLD_S), ("short", SHORT_HOLD_S)):

        def ready(since: float = since, name: str = name) -> bool:
            writes = load.successes(after=since) >= WRITERS
            return stop.is_set() or (writes and (name != "long" or job_running()))

        live.poll_until(ready, 60, f"writes before the {name} lock")
        on_locked = release_job.set if name == "long" else (lambda: None)
        windows[name] = _hold_write_lock(path, hold, name, on_locked)
        since = windows[name][1]
    return windows


def _hold_the_job(monkeypatch: pytest.MonkeyPatch, at_document: int) -> threading.Event:
    """Stop the corpus job before it analyses the chunk that starts at `at_document`, until
    the returned event is set: the chunks before it are committed (or committing) by then."""
    from backend.jobs import JobRunner

    release = threading.Event()
    analyse = JobRunner._analyse
    held = {"done": False}

    def held_analyse(runner: JobRunner, batch: list[dict[str, str]]) -> object:
        if not held["done"] and batch and batch[0]["text"].endswith(f"doc{at_document:05d}"):
            held["done"] = True
            if not release.wait(120):
                raise AssertionError("the test never released the job")
        return analyse(runner, batch)

    monkeypatch.setattr(JobRunner, "_analyse", held_analyse)
    return release


def _locked_runs(database_url: str) -> list[tuple]:
    """(marker, n_documents, n_tokens, documents, their tokens, their token rows) per stored
    run of the test's clients."""
    return _sql(
        database_url,
        "SELECT min(d.text), r.n_documents, r.n_tokens, count(d.id), sum(d.n_tokens),"
        " sum((SELECT count(*) FROM tokens t WHERE t.document_id = d.id))"
        " FROM runs r LEFT JOIN documents d ON d.run_id = r.id"
        " WHERE r.source = 'request' GROUP BY r.id",
    )


def test_sqlite_concurrent_writers_wait_for_the_lock_and_a_long_lock_gives_503(
    model_dir, tmp_path, monkeypatch, caplog
):
    path = tmp_path / "api.sqlite"
    database_url = f"sqlite:///{path}"
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", BUSY_TIMEOUT_MS)
    monkeypatch.setenv("GLAMLAB_JOB_CHUNK_DOCUMENTS", str(LOCKED_JOB_CHUNK))
    monkeypatch.setenv("GLAMLAB_ANALYZE_BUILTIN_ON_START", "false")
    upload = "\n".join(json.dumps(r, ensure_ascii=False) for r in _corpus(JOB_RECORDS)).encode()
    release_job = _hold_the_job(monkeypatch, at_document=3 * LOCKED_JOB_CHUNK)

    with stack.api_in_thread(model_dir, database_url) as url:
        probe_engine = db.make_engine(database_url)
        with probe_engine.begin() as connection:  # the foreign writer's table
            connection.exec_driver_sql(
                "CREATE TABLE reliability_probe (id INTEGER PRIMARY KEY, note TEXT)"
            )
        probe_engine.dispose()
        live.warm_up(url, f"{WRITE} lock-c0-s00000")
        load = LockedWriters(url)
        job_id = httpx.post(
            f"{url}/v1/jobs",
            data={"corpus": "upload"},
            files={"file": ("corpus.jsonl", upload, "application/jsonl")},
            timeout=60,
        ).json()["job_id"]
        progress: dict[str, int] = {}  # the job's progress when the long lock is taken

        def job_running() -> bool:
            progress["long"] = _job(url, job_id)["done"]
            return progress["long"] > 0

        with live.clients(WRITERS, load.client) as stop:
            windows = _lock_twice(load, path, stop, job_running, release_job)
            live.poll_until(
                lambda: load.successes(after=windows["short"][1]) >= WRITERS or stop.is_set(),
                60,
                "writes after the locks",
            )
        # The job alone, after the clients: its refused chunk is retried at the runner's next
        # wake (at most 5 s later).
        job_after = live.poll_until(
            lambda: _job(url, job_id)["status"] in ("done", "failed", "cancelled"),
            90,
            "the job",
            every=0.1,
        )
        job = _job(url, job_id)
    documents = _job_documents(database_url, job["run_id"])
    runs = _locked_runs(database_url)
    probes = sorted(row[0] for row in _sql(database_url, "SELECT note FROM reliability_probe"))

    writes = [a for a in load.answers if a.kind == "analyze"]
    # A write that waited through the end of the short lock into the long one counts as long.
    long = [a for a in writes if a.overlaps(windows["long"])]
    short = [a for a in writes if a.overlaps(windows["short"]) and a not in long]
    elsewhere = [a for a in writes if a not in short and a not in long]
    reads = [a for a in load.answers if a.kind == "runs"]
    refused = {a.marker for a in writes if a.status != 200}
    acknowledged = [a.marker for a in writes if a.status == 200]
    stored = [row[0].rsplit(" ", 1)[1] for row in runs]
    job_retries = sum(
        r.name == "glamlab.jobs" and "database is locked" in str(r.exc_info and r.exc_info[1])
        for r in caplog.records
    )

    def codes(answers: list[Answer]) -> dict[str, int]:
        return {str(s): sum(a.status == s for a in answers) for s in {a.status for a in answers}}

    def latency(answers: list[Answer], status: int) -> dict[str, float]:
        return live.summary_ms([a.ended - a.started for a in answers if a.status == status])

    observations.record(
        "fault: SQLite busy/locked under concurrent writers",
        f"{WRITERS} clients storing analyses (and reading runs) on one SQLite file, a corpus "
        f"job of {JOB_RECORDS} documents committing every 4, and a foreign writer holding the "
        f"write lock for {LONG_HOLD_S:.0f} s (mid-job), then {SHORT_HOLD_S:.0f} s, with the busy "
        f"timeout at {BUSY_TIMEOUT_MS / 1000:.0f} s (the service's is 10 s)",
        {
            "writes overlapping the short lock": codes(short),
            "their latency (waited for the lock)": latency(short, 200),
            "writes overlapping the long lock": codes(long),
            "latency of its 503s": latency(long, 503),
            "latency of its successes": latency(long, 200),
            "other writes": codes(elsewhere),
            "their latency": latency(elsewhere, 200),
            "reads (GET /v1/runs)": codes(reads),
            "read latency": latency(reads, 200),
            "503 detail": sorted({a.detail for a in writes if a.status == 503}),
            "writes acknowledged / refused": [len(acknowledged), len(refused)],
            "acknowledged writes stored": len(set(stored) & set(acknowledged)),
            "refused writes stored": len(set(stored) & refused),
            "job status / documents stored / in corpus": [
                job["status"],
                len(documents),
                JOB_RECORDS,
            ],
            "job progress when the long lock was taken": progress["long"],
            "job commits refused by the lock (then retried)": job_retries,
            "foreign writer's rows stored": len(probes),
            "seconds from the clients' end to the job's end": round(job_after, 2),
        },
    )

    assert {a.status for a in reads} == {200}, "a read waited for a writer"
    # Shorter than the busy timeout: the writers waited for the lock and succeeded.
    assert short and {a.status for a in short} == {200}, codes(short)
    assert {a.status for a in elsewhere} == {200}, [a.detail for a in elsewhere][:5]
    # Longer: a clear 503 (never a 500) for the writers that waited the whole timeout.
    assert {a.status for a in long} <= {200, 503} and 503 in {a.status for a in long}
    assert {a.detail for a in writes if a.status == 503} == {DOWN_DETAIL}
    # Nothing lost, nothing doubled, nothing half-written.
    assert sorted(stored) == sorted(acknowledged), "stored writes differ from acknowledged ones"
    assert not refused & set(stored)
    assert all(row[1:] == (1, row[2], 1, row[2], row[2]) for row in runs), "a half-written run"
    assert 0 < progress["long"] < JOB_RECORDS, "the job was not running during the long lock"
    assert job["status"] == "done" and [d[0] for d in documents] == list(range(JOB_RECORDS))
    assert all(body.endswith(f"doc{o:05d}") and rows == n for o, body, n, rows in documents)
    assert probes == ["long", "short"]


# --- the connection lost after COMMIT was sent ------------------------------------------------


def test_connection_lost_during_commit_is_reported_in_doubt_not_as_nothing_changed(
    model_dir, tmp_path, monkeypatch, request
):
    """What `pg_ctl stop` now and then does to a write (seen in the outage test), made certain:
    the COMMIT reaches the database, its answer does not. The API must not answer "the request
    changed nothing, retry": the run is stored, and a retry would store it twice."""
    import sqlite3

    from fastapi.testclient import TestClient
    from sqlalchemy import event
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
    from sqlalchemy.orm import Session

    from backend.app import create_app
    from storage.schema import Run

    database_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    settings = stack.app_settings(model_dir, database_url, analyze_builtin_on_start=False)
    armed = threading.Event()  # the next commit that stores a run loses its answer
    run_flushed = threading.Event()  # the transaction being committed inserted a run
    commit = SQLiteDialect_pysqlite.do_commit

    def note_runs(session: Session, _context: object) -> None:
        if any(isinstance(item, Run) for item in session.new):
            run_flushed.set()

    def commit_then_lose_the_connection(dialect, dbapi_connection) -> None:
        stores_a_run = run_flushed.is_set()
        run_flushed.clear()
        commit(dialect, dbapi_connection)
        if armed.is_set() and stores_a_run:
            armed.clear()
            # What the sqlite3 module raises on a closed connection: a disconnect to SQLAlchemy.
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    monkeypatch.setattr(SQLiteDialect_pysqlite, "do_commit", commit_then_lose_the_connection)
    event.listen(Session, "after_flush", note_runs)
    request.addfinalizer(lambda: event.remove(Session, "after_flush", note_runs))

    def write(client: TestClient, marker: str, key: str | None = None) -> httpx.Response:
        body = {"texts": [f"{WRITE} {marker}"], "domain": "doubt", "store": True}
        return client.post(
            "/v1/analyze", json=body, headers={"Idempotency-Key": key} if key else {}
        )

    with TestClient(create_app(settings)) as client:
        armed.set()
        lost = write(client, "lost-answer")
        after = write(client, "next-write")
        # The same in doubt, with an idempotency key: the retry the 503 asks for stores nothing
        # more and answers with the run that the lost commit stored.
        armed.set()
        keyed = write(client, "keyed", key="retry-me")
        retried = write(client, "keyed", key="retry-me")
    stored = [row[0] for row in _sql(database_url, "SELECT text FROM documents ORDER BY id")]
    keyed_runs = [
        row[0] for row in _sql(database_url, "SELECT id FROM runs WHERE request_key = 'retry-me'")
    ]

    observations.record(
        "fault: the connection lost after COMMIT was sent",
        "a stored analysis whose COMMIT succeeds but whose connection then breaks (made certain "
        "by a wrapped commit; PostgreSQL stopped mid-commit does it by chance), then another; "
        "then the same with an Idempotency-Key, retried with that key",
        {
            "status / detail": [lost.status_code, lost.json().get("detail")],
            "that write stored": sum("lost-answer" in t for t in stored),
            "next write status": after.status_code,
            "keyed write / its retry": [keyed.status_code, retried.status_code],
            "keyed write stored": sum(t.endswith(" keyed") for t in stored),
            "documents stored": len(stored),
        },
    )

    assert lost.status_code == 503
    assert lost.json()["detail"] == COMMIT_IN_DOUBT, "claims more than it knows"
    assert after.status_code == 200, after.text
    assert keyed.status_code == 503 and keyed.json()["detail"] == COMMIT_IN_DOUBT
    assert retried.status_code == 200, retried.text
    assert [t.rsplit(" ", 1)[1] for t in stored] == ["lost-answer", "next-write", "keyed"]
    assert keyed_runs == [retried.json()["run_id"]]
