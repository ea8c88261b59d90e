"""Load: 32 concurrent clients against a live `glamlab serve` on PostgreSQL (what compose runs).

For a bounded time the clients mix stored analyses (POST /v1/analyze, store=true, each text
carrying a unique marker), statistics and run listings/reads. Every answer must be 2xx, and
afterwards the database must hold every acknowledged write exactly once, with exactly its
documents and tokens, and no run that nobody was told about.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from storage import db
from tests.reliability import live, observations
from tests.ui import stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 32
SECONDS = 15.0
KINDS = ("analyze", "stats", "analyze", "runs")  # a client's requests cycle through these
STATS = ("/v1/stats/load", "/v1/stats/domains", "/v1/stats/loss")
WORDS = ("The quick brown fox", "def add(a, b):", "Sparse models route", "こんにちは。元気です")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_config, tokenizer, corpus_path) -> Path:
    return stack.shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path)


@dataclasses.dataclass(frozen=True)
class Write:
    """An acknowledged store=true analysis: what was sent and what the API answered."""

    run_id: int
    texts: tuple[str, ...]
    n_tokens: tuple[int, ...]  # per document, as the response counted them


class Load:
    """What one client does in a loop; results collect in `tally` and `writes`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.tally = live.Tally()
        self.writes: list[Write] = []
        self.sent: set[str] = set()  # every marker sent, acknowledged or not
        self._lock = threading.Lock()

    def client(self, index: int, stop: threading.Event) -> None:
        last_run: int | None = None
        with httpx.Client(base_url=self.url, timeout=60) as http:
            step = 0
            while not stop.is_set():
                kind = KINDS[(index + step) % len(KINDS)]
                if kind == "analyze":
                    last_run = self._analyze(http, index, step) or last_run
                elif kind == "stats":
                    self._get(http, "stats", STATS[step % len(STATS)])
                else:
                    # Alternate the newest runs and a read of this client's own last write
                    # (read-your-writes: an acknowledged run must be there at once).
                    path = "/v1/runs?limit=20" if last_run is None or step % 2 else None
                    self._get(http, "runs", path or f"/v1/runs/{last_run}")
                step += 1

    def _get(self, http: httpx.Client, kind: str, path: str) -> None:
        started = time.perf_counter()
        response = http.get(path)
        self.tally.add(kind, response.status_code, live.since(started), response.text)

    def _analyze(self, http: httpx.Client, index: int, step: int) -> int | None:
        # 1-3 texts, each with a marker no other request uses, so each can be found again.
        texts = tuple(
            f"{WORDS[(step + k) % len(WORDS)]} load-c{index:02d}-s{step:05d}-t{k}"
            for k in range(1 + step % 3)
        )
        with self._lock:
            self.sent.update(texts)
        body = {"texts": list(texts), "domain": "load", "store": True}
        started = time.perf_counter()
        response = http.post("/v1/analyze", json=body)
        self.tally.add("analyze", response.status_code, live.since(started), response.text)
        if response.status_code != 200:
            return None
        answer = response.json()
        write = Write(
            run_id=answer["run_id"],
            texts=texts,
            n_tokens=tuple(len(d["tokens"]) for d in answer["documents"]),
        )
        with self._lock:
            self.writes.append(write)
        return write.run_id


def _stored(database_url: str, sent: set[str]) -> dict[str, object]:
    """What the database holds for the load's requests, read with SQL, not through the API."""
    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            runs = connection.execute(
                text("SELECT id, n_documents, n_tokens FROM runs WHERE source = 'request'")
            ).all()
            documents = connection.execute(
                text(
                    "SELECT d.run_id, d.ordinal, d.text, d.n_tokens,"
                    " (SELECT count(*) FROM tokens t WHERE t.document_id = d.id),"
                    " (SELECT count(*) FROM routes r WHERE r.document_id = d.id)"
                    " FROM documents d JOIN runs ON runs.id = d.run_id"
                    " WHERE runs.source = 'request' ORDER BY d.run_id, d.ordinal"
                )
            ).all()
            layers = connection.execute(text("SELECT moe_layers FROM models")).scalar_one()
    finally:
        engine.dispose()
    by_run: dict[int, list[tuple]] = {}
    for run_id, ordinal, body, n_tokens, n_token_rows, n_route_rows in documents:
        by_run.setdefault(run_id, []).append((ordinal, body, n_tokens, n_token_rows, n_route_rows))
    return {
        "runs": {r.id: (r.n_documents, r.n_tokens) for r in runs},
        "documents": by_run,
        "texts": [d[2] for d in documents],
        "foreign": [d[2] for d in documents if d[2] not in sent],
        "layers": len(layers),
    }


def _check_writes(writes: list[Write], stored: dict) -> int:
    """Every acknowledged write is stored exactly once, whole; returns the documents checked."""
    acknowledged = {w.run_id for w in writes}
    assert len(acknowledged) == len(writes), "one run id acknowledged to two requests"
    extra = set(stored["runs"]) - acknowledged
    missing = acknowledged - set(stored["runs"])
    assert not missing, f"{len(missing)} acknowledged runs are not stored: {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} stored runs were never acknowledged: {sorted(extra)[:5]}"
    assert not stored["foreign"], "documents that no client sent"
    duplicates = len(stored["texts"]) - len(set(stored["texts"]))
    assert duplicates == 0, f"{duplicates} texts stored more than once"
    layers = stored["layers"]
    for write in writes:
        expected = [
            (ordinal, body, n, n, n * layers)
            for ordinal, (body, n) in enumerate(zip(write.texts, write.n_tokens, strict=True))
        ]
        assert stored["documents"].get(write.run_id) == expected, f"run {write.run_id}"
        assert stored["runs"][write.run_id] == (len(write.texts), sum(write.n_tokens))
    return sum(len(w.texts) for w in writes)


def test_32_clients_mixed_load_no_errors_and_every_write_stored_once(model_dir, tmp_path):
    with (
        live.fresh_database("glamlab_load") as database_url,
        live.serve(model_dir, database_url, tmp_path / "api.log") as server,
    ):
        load = Load(server.url)
        started = time.perf_counter()
        with live.clients(CLIENTS, load.client) as stop:
            stop.wait(SECONDS)  # the load's duration; a failing client ends it early
        elapsed = live.since(started)
        server_alive = server.process.poll() is None
        stored = _stored(database_url, load.sent)

    codes = load.tally.codes()
    errors = load.tally.count(lambda status: not 200 <= status < 300)
    observed: dict[str, object] = {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": load.tally.count(),
        "errors (non-2xx)": errors,
        "status codes": {kind: {str(k): v for k, v in c.items()} for kind, c in codes.items()},
        "requests per second": round(load.tally.count() / elapsed, 1),
        "acknowledged writes (runs)": len(load.writes),
        "documents written": sum(len(w.texts) for w in load.writes),
        "runs stored (source=request)": len(stored["runs"]),
        "documents stored": len(stored["texts"]),
    }
    for kind, latencies in sorted(load.tally.latencies.items()):
        observed[f"{kind} latency"] = live.summary_ms(latencies)
    observations.record(
        "load: 32 concurrent clients, mixed analyse/stats/runs (PostgreSQL)",
        f"{CLIENTS} client threads against `glamlab serve` on a fresh PostgreSQL database for "
        f"{SECONDS:.0f} s: POST /v1/analyze store=true (1-3 texts, each with a unique marker), "
        "GET /v1/stats/{load,domains,loss}, GET /v1/runs and GET /v1/runs/{own last run}; "
        "then every acknowledged run compared with the database by SQL",
        observed,
    )

    assert server_alive, f"the API died under load:\n{server.log.read_text()[-3000:]}"
    assert errors == 0, f"{errors} non-2xx answers, e.g. {load.tally.failures}"
    assert len(load.writes) >= CLIENTS, "too few writes to say anything"
    checked = _check_writes(load.writes, stored)
    assert checked == len(stored["texts"])
