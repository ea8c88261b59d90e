"""Hostile input against the real service: what it must refuse, and what it must store verbatim.

Researchers feed the service whatever text they have, on shared machines. Each test sends one
kind of hostile input and records what was tried and what came back (status codes, rows in
every table before and after):

- bodies over the size limit (413 with a message), JSON nested 100k levels deep (4xx, and the
  live server still answers), non-UTF-8 and NUL bytes in an uploaded JSONL (422 naming the
  line, nothing stored);
- SQL-injection strings in every string parameter, on SQLite and PostgreSQL (stored and
  returned verbatim, every table intact);
- HTML and script in analysed text, shown by the real dashboard in Chromium (as text; no
  script runs);
- checkpoint names that try path traversal (422; only registered checkpoints are ever loaded);
- a wrong or missing API key (401 on every /v1 route: writes, model compute and reads of
  stored texts; with protect_reads off, 401 on writes and compute only; the health, readiness
  and metrics probes always open);
- CORS (only the dashboard's origin is allowed).

Most tests use the app in-process (TestClient: the same app, its lifespan, a real database);
nesting and escaping use `glamlab serve` as a process, where a crash would show.
"""

from __future__ import annotations

import collections
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from backend.app import create_app
from glam import checkpoint
from tests.reliability import live, observations
from tests.ui import stack

KEY = "hostile-key"
AUTH = {"X-API-Key": KEY}
LIMIT = 1 << 20  # max_body_bytes of the service under test
DEPTH = 100_000  # levels of nesting
DASHBOARD_ORIGINS = ["http://localhost:8501", "http://127.0.0.1:8501"]  # Settings' default

# Classic injections, a second-order one (stored, then used as a filter), unicode quotes;
# all free of NUL (which the API refuses outright, tested below). Each fits a domain label.
INJECTIONS = [
    "'; DROP TABLE runs; --",
    '" OR 1=1 --',
    "1' OR '1'='1' /*",
    "Robert'); DROP TABLE documents;--",
    "x' UNION SELECT name, sql FROM sqlite_master --",
    "$$; DELETE FROM tokens; $$",
    "\u2019; DROP TABLE routes; --\u2018 \u201c OR \u201d1\u201d=\u201d1",
    "%' AND 1=0; TRUNCATE models CASCADE; --",
]
# Markup a browser (and a Markdown renderer that allows HTML) would act on.
XSS_TEXTS = [
    "Hello <script>alert(1)</script> world",
    "Look <img src=x onerror=alert(2)> here",
]
XSS_DOMAIN = "<img src=x onerror=alert(3)>"


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, small_config, tokenizer, corpus_path) -> Path:
    return stack.shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path)


@contextlib.contextmanager
def _service(model_dir: Path, database_url: str, **overrides: object) -> Iterator[TestClient]:
    """The app with a key configured and a 1 MiB body limit; a 500 is a response, not raised."""
    settings = stack.app_settings(
        model_dir, database_url, analyze_builtin_on_start=False, api_key=KEY,
        max_body_bytes=LIMIT, **overrides,
    )  # fmt: skip
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def service(model_dir, tmp_path_factory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("hostile") / "hostile.sqlite"
    with _service(model_dir, f"sqlite:///{database}") as client:
        yield client


@pytest.fixture(scope="module")
def live_api(model_dir, tmp_path_factory) -> Iterator[str]:
    """`glamlab serve` with the key; the first-start corpus job done, so runs are ours after."""
    root = tmp_path_factory.mktemp("hostile-live")
    database = f"sqlite:///{root / 'api.sqlite'}"
    log, port = root / "api.log", stack.free_port()
    with stack.api_process(model_dir, database, log, port, api_key=KEY) as url:
        stack.wait_for_jobs(url, api_key=KEY)
        yield url


# --- helpers -------------------------------------------------------------------------------


def rows(client: TestClient) -> dict[str, int]:
    """Rows in every table of the service's database, counted with SQL."""
    engine = client.app.state.glamlab.engine
    names = sorted(set(inspect(engine).get_table_names()) - {"alembic_version"})
    with engine.connect() as connection:
        return {
            n: connection.execute(text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names
        }


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {
        name: after.get(name, 0) - count
        for name, count in before.items()
        if after.get(name) != count
    }


def _core(delta: dict[str, int]) -> dict[str, int]:
    """Row changes of the main tables; the aggregate tables' summed up."""
    core = ("runs", "documents", "tokens", "routes", "jobs", "models")
    summary = {name: delta[name] for name in core if name in delta}
    summary["aggregate tables"] = sum(n for name, n in delta.items() if name not in core)
    return summary


class Statuses:
    """Status codes seen, per operation; `call` sends a request and counts its answer."""

    def __init__(self, client: TestClient | httpx.Client) -> None:
        self.client = client
        self.seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def call(self, method: str, url: str, op: str | None = None, **kwargs) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)
        self.seen[op or f"{method} {url.split('?')[0]}"][response.status_code] += 1
        return response

    def total(self) -> collections.Counter:
        return sum(self.seen.values(), collections.Counter())

    def summary(self) -> dict[str, str]:
        return {
            op: " ".join(f"{c}x{n}" for c, n in sorted(s.items())) for op, s in self.seen.items()
        }

    def server_errors(self) -> int:
        return sum(n for code, n in self.total().items() if code >= 500)


def wait_for_job(client: TestClient, job_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still running after {timeout:.0f}s")


def upload(client: TestClient, content: bytes, name: str = "corpus.jsonl", **kw) -> httpx.Response:
    files = {"file": (name, content, "application/jsonl")}
    return client.post("/v1/jobs", data={"corpus": "upload"}, files=files, **kw)


def jsonl(*records: dict) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


# --- size and shape ------------------------------------------------------------------------


def test_oversized_bodies_are_413_with_a_message(service):
    before = rows(service)
    calls = Statuses(service)
    big_json = json.dumps({"texts": ["a" * LIMIT]}).encode()
    over = {
        "JSON body with Content-Length": ("/v1/analyze", {"content": big_json}),
        # No Content-Length: the limit must hold while the body streams in.
        "JSON body streamed (chunked)": ("/v1/analyze", {"content": _chunks(big_json)}),
        "JSONL upload": ("/v1/jobs", {"files": {"file": ("big.jsonl", b"x" * (LIMIT + 1))}}),
    }
    messages = {}
    for what, (url, kwargs) in over.items():
        headers = {**AUTH, "Content-Type": "application/json"} if "content" in kwargs else AUTH
        response = calls.call("POST", url, op=what, headers=headers, **kwargs)
        messages[what] = response.json()["detail"]
        assert response.status_code == 413, (what, response.text[:200])
        assert f"limit of {LIMIT} bytes" in messages[what]

    # Under the byte limit but over the service's other limits: texts per request, tokens.
    too_many = calls.call("POST", "/v1/analyze", op="65 texts", headers=AUTH,
                          json={"texts": ["hi"] * 65})  # fmt: skip
    too_long = calls.call("POST", "/v1/analyze", op="a text of 300 words", headers=AUTH,
                          json={"texts": ["word " * 300]})  # fmt: skip
    assert too_many.status_code == 413 and "limit is 64" in too_many.json()["detail"]
    assert too_long.status_code == 413 and "texts[0] is" in too_long.json()["detail"]
    after = rows(service)
    assert after == before
    observations.record(
        "hostile: oversized bodies",
        f"with max_body_bytes = {LIMIT}: a JSON body of {len(big_json)} bytes (declared, then "
        f"streamed without Content-Length), a {LIMIT + 1}-byte JSONL upload; then 65 texts in "
        "one request and a text longer than the model's 64 tokens",
        {
            "status codes": calls.summary(),
            "message": messages["JSON body with Content-Length"],
            "rows changed": changed(before, after) or "none",
        },
    )


def _chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _nested(depth: int) -> dict[str, bytes]:
    arrays = b"[" * depth + b"]" * depth
    return {
        "texts as arrays nested 100k deep": b'{"texts": ' + arrays + b"}",
        "objects nested 100k deep": b'{"a":' * depth + b"1" + b"}" * depth,
        "100k unclosed [": b"[" * depth,
        "ablate nested 100k deep": b'{"texts": ["hi"], "ablate": {"1": ' + arrays + b"}}",
    }


def test_deeply_nested_json_is_a_4xx_and_the_server_lives(live_api):
    with httpx.Client(base_url=live_api, timeout=60, headers=AUTH) as http:
        calls = Statuses(http)
        json_headers = {"Content-Type": "application/json"}
        for what, body in _nested(DEPTH).items():
            response = calls.call(
                "POST", "/v1/analyze", op=what, content=body, headers=json_headers
            )
            assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
        nested_line = jsonl({"text": "fine", "domain": "d"}) + b"[" * DEPTH + b"]" * DEPTH + b"\n"
        files = {"file": ("nested.jsonl", nested_line)}
        response = calls.call("POST", "/v1/jobs", op="JSONL line 2 nested 100k deep",
                              data={"corpus": "upload"}, files=files)  # fmt: skip
        assert response.status_code == 422 and "line 2" in response.json()["detail"]
        upload_message = response.json()["detail"]
        # Still alive and still working: liveness, readiness, and a real analysis.
        health = calls.call("GET", "/healthz").status_code
        ready = calls.call("GET", "/readyz").status_code
        analysed = calls.call("POST", "/v1/analyze", json={"texts": ["still here"], "store": False})
    assert (health, ready, analysed.status_code) == (200, 200, 200)
    observations.record(
        "hostile: deeply nested JSON",
        f"against a live `glamlab serve`: JSON bodies nested {DEPTH:,} levels (arrays in texts, "
        "objects, unclosed brackets, arrays in ablate) and a JSONL upload whose line 2 is "
        f"{DEPTH:,} nested arrays; then /healthz, /readyz and an analysis",
        {
            "status codes": calls.summary(),
            "upload message": upload_message,
            "5xx": calls.server_errors(),
            "healthy after": True,
        },
    )


# (what, content, line the answer must name, words it must contain); GOOD is a valid line.
GOOD = b'{"text": "ok", "domain": "d"}\n'
BAD_UPLOADS = [
    ("invalid UTF-8 bytes", GOOD + b"\xff\xfe\xfd\n", 2, "UTF-8"),
    ("Latin-1 text", GOOD * 2 + b'{"text": "caf\xe9", "domain": "d"}\n', 3, "UTF-8"),
    ("overlong UTF-8", GOOD + b'{"text": "\xc0\xaf", "domain": "d"}\n', 2, "UTF-8"),
    ("UTF-8-encoded surrogate", b'{"text": "\xed\xa0\x80", "domain": "d"}\n', 1, "UTF-8"),
    ("a UTF-16 file", GOOD.decode().encode("utf-16"), 1, "UTF-8"),
    ("a raw NUL byte", GOOD + b'{"text": "a\x00b", "domain": "d"}\n', 2, "NUL"),
    ("an escaped NUL in text", GOOD * 4 + b'{"text": "a\\u0000b", "domain": "d"}\n', 5, "NUL"),
    ("an escaped NUL in domain", b'{"text": "ok", "domain": "d\\u0000"}\n', 1, "NUL"),
    ("an escaped lone surrogate", b'{"text": "\\udc80", "domain": "d"}\n', 1, "Unicode"),
]


def test_bad_bytes_in_an_upload_are_a_422_naming_the_line(service):
    before = rows(service)
    calls = Statuses(service)
    messages = {}
    for what, content, line, words in BAD_UPLOADS:
        response = upload(calls.client, content, headers=AUTH)
        calls.seen["POST /v1/jobs (upload)"][response.status_code] += 1
        messages[what] = response.json()["detail"]
        assert response.status_code == 422, (what, response.text)
        assert f"line {line}" in messages[what] and words in messages[what], (what, messages[what])
    # The same bytes in a JSON request: NUL in a text to analyse, or in a prompt.
    for op, path, body in (
        ("NUL in texts", "/v1/analyze", {"texts": ["ok", "a\x00b"], "store": True}),
        ("NUL in prompt", "/v1/generate", {"prompt": "a\x00b", "store": True}),
    ):
        response = calls.call("POST", path, op=op, json=body, headers=AUTH)
        messages[op] = response.json()["detail"]
        assert response.status_code == 422 and "NUL" in messages[op], (op, response.text)
    after = rows(service)
    assert after == before
    observations.record(
        "hostile: non-UTF-8 and NUL bytes",
        f"{len(BAD_UPLOADS)} JSONL uploads, each with one bad line among good ones "
        f"({', '.join(w for w, *_ in BAD_UPLOADS)}); a NUL in a text to analyse and in a "
        "prompt (store=true)",
        {
            "status codes": calls.summary(),
            "messages": {what: messages[what] for what in (BAD_UPLOADS[0][0], BAD_UPLOADS[6][0])},
            "rows before": sum(before.values()),
            "rows after": sum(after.values()),
        },
    )


# --- SQL injection -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_service(request, service, model_dir) -> Iterator[TestClient]:
    """The service on SQLite (the module's) or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield service
        return
    with live.fresh_database("glamlab_hostile") as url, _service(model_dir, url) as client:
        yield client


def _inject_reads(calls: Statuses, value: str, run_id: int) -> None:
    """Every read that takes a string: the value as domain filter and as model name."""
    domain = {"domain": value}
    stored = calls.call("GET", f"/v1/runs/{run_id}", op="GET /v1/runs/{id}", headers=AUTH)
    assert stored.json()["domains"] == [value]
    for path in ("/v1/stats/domains", "/v1/stats/loss", "/v1/stats/load", "/v1/experts/1/0"):
        response = calls.call("GET", path, params=domain, headers=AUTH)
        assert response.status_code == 200, (path, response.text)
    by_domain = calls.client.get(
        "/v1/stats/loss", params={**domain, "run_id": run_id}, headers=AUTH
    ).json()
    assert [d["domain"] for d in by_domain] == [value]
    model = calls.call("GET", "/v1/stats/load", op="GET /v1/stats/load?model=",
                       params={"model": value}, headers=AUTH)  # fmt: skip
    assert model.status_code == 404 and value in model.json()["detail"]
    runs = calls.call("GET", "/v1/runs", params={"model": value}, headers=AUTH)
    assert runs.status_code == 200 and runs.json()["runs"] == []


def _inject_writes(calls: Statuses, value: str) -> int:
    """The value as text, domain, and checkpoint name; returns the stored run."""
    texts = [value, f"before {value} after"]
    body = {"texts": texts, "domain": value, "store": True}
    stored = calls.call("POST", "/v1/analyze", json=body, headers=AUTH)
    assert stored.status_code == 200, stored.text
    run_id = stored.json()["run_id"]
    documents = calls.call(
        "GET", f"/v1/runs/{run_id}/tokens", op="GET /v1/runs/{id}/tokens", headers=AUTH
    ).json()
    assert [(d["document"]["text"], d["document"]["domain"]) for d in documents] == [
        (t, value) for t in texts
    ]
    for path, field in (
        ("/v1/analyze", "checkpoint"),
        ("/v1/experiments/saturation", "checkpoint_a"),
    ):
        wrong = calls.call("POST", path, json={"texts": ["x"], field: value}, headers=AUTH)
        assert wrong.status_code == 422 and repr(value) in wrong.json()["detail"]
    return run_id


def test_sql_injection_strings_are_stored_verbatim_and_change_nothing(store_service):
    client = store_service
    backend = client.app.state.glamlab.engine.dialect.name
    before = rows(client)
    calls = Statuses(client)
    runs = [_inject_writes(calls, value) for value in INJECTIONS]
    for value, run_id in zip(INJECTIONS, runs, strict=True):
        _inject_reads(calls, value, run_id)

    # A prompt, and an uploaded corpus whose texts and domains are the injections.
    generated = calls.call("POST", "/v1/generate", headers=AUTH,
                           json={"prompt": INJECTIONS[0], "domain": INJECTIONS[1],
                                 "max_new_tokens": 4, "store": True})  # fmt: skip
    assert generated.status_code == 200 and generated.json()["document"]["domain"] == INJECTIONS[1]
    records = [{"text": value, "domain": value} for value in INJECTIONS]
    started = upload(client, jsonl(*records), name="'; DROP TABLE jobs; --.jsonl", headers=AUTH)
    calls.seen["POST /v1/jobs (upload)"][started.status_code] += 1
    job = wait_for_job(client, started.json()["job_id"])
    assert job["status"] == "done", job
    documents = client.get(
        f"/v1/runs/{job['run_id']}/tokens", params={"limit": 50}, headers=AUTH
    ).json()
    assert [(d["document"]["text"], d["document"]["domain"]) for d in documents] == [
        (r["text"], r["domain"]) for r in records
    ]

    after = rows(client)
    written = len(INJECTIONS) * 2 + 1 + len(INJECTIONS)  # analyses, the prompt, the upload
    assert set(after) == set(before)  # no table dropped
    assert after["runs"] - before["runs"] == len(INJECTIONS) + 2
    assert after["documents"] - before["documents"] == written
    assert after["models"] == before["models"] and calls.server_errors() == 0
    observations.record(
        f"hostile: SQL injection ({backend})",
        f"{len(INJECTIONS)} injection strings (quotes, comments, UNION, DROP/DELETE/TRUNCATE, "
        "dollar quoting, unicode quotes) as texts, domain labels, checkpoint names, a prompt, "
        "an uploaded corpus (texts, domains, file name), and as domain and model filters of "
        "runs, statistics and expert profiles",
        {
            "requests": sum(calls.total().values()),
            "status codes": calls.summary(),
            "5xx": calls.server_errors(),
            "tables before / after": f"{len(before)} / {len(after)}",
            "rows added": _core(changed(before, after)),
            "stored verbatim": f"{written} of {written} documents (text and domain)",
        },
    )


# --- checkpoints, keys, origins ------------------------------------------------------------


def _traversal_names(model_dir: Path, rogue: Path) -> list[str]:
    return [
        "../../etc/passwd", "/etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd",
        "%252e%252e%252fetc", "..\\..\\windows\\win.ini", "file:///etc/passwd", "~/.ssh/id_rsa",
        "final/../early", "./final", "final/", "FINAL", " final", "early\x2f..",
        str(model_dir / "final"), str(rogue), "../rogue", "rogue",
    ]  # fmt: skip


def test_checkpoint_names_that_traverse_paths_are_refused(
    service, model_dir, tmp_path, monkeypatch
):
    # A real, loadable checkpoint outside the registry: naming it in any form must not load it.
    rogue = tmp_path / "rogue"
    shutil.copytree(model_dir / "early", rogue)
    loaded: list[Path] = []
    real_load = checkpoint.load

    def load(path, *args, **kwargs):  # every checkpoint the registry loads, by path
        loaded.append(Path(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "load", load)
    calls = Statuses(service)
    names = _traversal_names(model_dir, rogue)
    for name in names:
        for path, field in (
            ("/v1/analyze", "checkpoint"),
            ("/v1/experiments/saturation", "checkpoint_a"),
            ("/v1/experiments/saturation", "checkpoint_b"),
        ):
            response = calls.call("POST", path, op=f"{path} {field}",
                                  json={"texts": ["hello"], field: name},
                                  headers=AUTH)  # fmt: skip
            assert response.status_code == 422, (name, field, response.text)
            assert "unknown checkpoint" in response.json()["detail"]
    for url in ("/v1/runs/..%2F..%2Fetc%2Fpasswd", "/v1/experts/%2e%2e/0", "/v1/runs/%2e%2e"):
        response = calls.call("GET", url, op="GET (encoded .. in the path)", headers=AUTH)
        assert response.status_code in (404, 422), (url, response.text)
    # The registered names still work, and load only what the registry names.
    early = calls.call("POST", "/v1/analyze", json={"texts": ["hi"], "checkpoint": "early"},
                       headers=AUTH)  # fmt: skip
    assert early.status_code == 200
    registry = service.app.state.glamlab.registry
    registered = {(model_dir / name).resolve() for name in registry.names}
    assert {p.resolve() for p in loaded} <= registered
    assert set(registry._loaded) <= {"final", "early"}
    observations.record(
        "hostile: checkpoint path traversal",
        f"{len(names)} checkpoint names (relative and absolute paths, URL-encoded and "
        "double-encoded dots, backslashes, file:// and ~ paths, case and space variants, the "
        "absolute path of the served checkpoint, and a real checkpoint copied outside the "
        "registry) as checkpoint, checkpoint_a and checkpoint_b; encoded '..' in URL paths",
        {
            "status codes": calls.summary(),
            "checkpoints loaded during the test": sorted({p.name for p in loaded}) or "none",
            "registry holds": ", ".join(registry._loaded),
        },
    )


def _writes(client: TestClient) -> dict[str, Callable[[dict], httpx.Response]]:
    """Every route that writes or runs the model, as a call taking the headers to send."""
    texts = {"texts": ["guarded"]}
    run_id = client.post("/v1/analyze", json=texts, headers=AUTH).json()["run_id"]
    job = upload(client, jsonl({"text": "queued", "domain": "d"}), headers=AUTH).json()
    return {
        "POST /v1/analyze": lambda h: client.post("/v1/analyze", json=texts, headers=h),
        "POST /v1/generate": lambda h: client.post("/v1/generate", json={"prompt": "a"}, headers=h),
        "POST /v1/jobs": lambda h: client.post("/v1/jobs", data={"limit": "1"}, headers=h),
        "POST /v1/jobs/{job_id}/cancel": lambda h: client.post(
            f"/v1/jobs/{job['job_id']}/cancel", headers=h
        ),
        "POST /v1/experiments/ablation": lambda h: client.post(
            "/v1/experiments/ablation", json={**texts, "ablate": {"1": [0]}}, headers=h
        ),
        "POST /v1/experiments/saturation": lambda h: client.post(
            "/v1/experiments/saturation", json=texts, headers=h
        ),
        # Last: with the right key it deletes the run.
        "DELETE /v1/runs/{run_id}": lambda h: client.delete(f"/v1/runs/{run_id}", headers=h),
    }


STATISTICS = ["load", "balance", "domains", "loss", "coactivation", "consecutive", "transitions",
              "positions"]  # fmt: skip


def _reads(client: TestClient) -> dict[str, Callable[[dict], httpx.Response]]:
    """Every route that only reads, as a call taking the headers to send. They read a stored
    run of their own: its texts, tokens and statistics are what the key keeps private."""
    stored = client.post("/v1/analyze", json={"texts": ["private", "notes"]}, headers=AUTH)
    run_id = stored.json()["run_id"]
    job_id = client.get("/v1/jobs", headers=AUTH).json()[0]["job_id"]
    run, scope = f"/v1/runs/{run_id}", {"run_id": run_id}

    def get(path: str, **params: object) -> Callable[[dict], httpx.Response]:
        return lambda headers: client.get(path, params=params, headers=headers)

    return {
        "GET /v1/model": get("/v1/model"),
        "GET /v1/runs": get("/v1/runs"),
        "GET /v1/runs/{run_id}": get(run),
        "GET /v1/runs/{run_id}/tokens": get(f"{run}/tokens"),
        "GET /v1/runs/{run_id}/export": get(f"{run}/export", format="parquet"),
        "GET /v1/jobs": get("/v1/jobs"),
        "GET /v1/jobs/{job_id}": get(f"/v1/jobs/{job_id}"),
        **{f"GET /v1/stats/{name}": get(f"/v1/stats/{name}", **scope) for name in STATISTICS},
        "GET /v1/stats/vocab": get("/v1/stats/vocab", expert=0, min_count=1, **scope),
        "GET /v1/stats/saturation": get("/v1/stats/saturation", run_a=run_id, run_b=run_id),
        "GET /v1/stats/training": get("/v1/stats/training"),  # the model's, not the run's
        "GET /v1/experts/{layer}/{expert}": get("/v1/experts/1/0", **scope),
    }


# Operators' probes: open whatever the key, so that health checks need no secret.
PROBES = ["GET /healthz", "GET /readyz", "GET /metrics"]


def _operations(client: TestClient) -> set[str]:
    """Every operation the service documents (what the fuzzing walks too)."""
    paths = client.app.openapi()["paths"]
    return {f"{method.upper()} {path}" for path, methods in paths.items() for method in methods}


WRONG_KEYS = {
    "no key": {},
    "empty key": {"X-API-Key": ""},
    "wrong key": {"X-API-Key": "guess"},
    "upper-cased key": {"X-API-Key": KEY.upper()},
    "key with a suffix": {"X-API-Key": KEY + "x"},
    "a prefix of the key": {"X-API-Key": KEY[:-1]},
    "key as a bearer token": {"Authorization": f"Bearer {KEY}"},
}


def _routes(client: TestClient) -> tuple[dict, dict]:
    """(writes, reads) of `client`'s service, once the job the writes queued is done (it
    writes a run: rows are counted after it); together with PROBES, every route."""
    writes = _writes(client)
    wait_for_job(client, client.get("/v1/jobs", headers=AUTH).json()[0]["job_id"])
    reads = _reads(client)
    assert set(PROBES) | writes.keys() | reads.keys() == _operations(client)  # none left out
    return writes, reads


def test_with_a_key_set_every_v1_route_needs_it_and_only_the_probes_are_open(service):
    writes, reads = _routes(service)
    before = rows(service)
    refused: collections.Counter = collections.Counter()
    for what, headers in WRONG_KEYS.items():
        for op, send in {**reads, **writes}.items():
            response = send(headers)
            refused[response.status_code] += 1
            assert response.status_code == 401, (what, op, response.text)
            assert "X-API-Key" in response.json()["detail"]
            assert response.headers["WWW-Authenticate"] == "APIKey"
    unchanged = rows(service) == before
    # Refused before anything is looked up: without the key, no answer says a run exists.
    unknown_run = service.get("/v1/runs/987654321/tokens").status_code
    probes = {op: service.get(op.split()[1]).status_code for op in PROBES}
    read = {op: send(AUTH).status_code for op, send in reads.items()}
    allowed = {op: send(AUTH).status_code for op, send in writes.items()}
    assert unchanged and unknown_run == 401
    assert set(probes.values()) == {200} and set(read.values()) == {200}, (probes, read)
    # The job was done before the cancel: 409 says "already done", past the key check.
    assert all(200 <= code < 300 for op, code in allowed.items() if "cancel" not in op)
    assert allowed["POST /v1/jobs/{job_id}/cancel"] in (200, 409)
    observations.record(
        "hostile: API key",
        f"with GLAMLAB_API_KEY set (reads protected, the default): every route of the OpenAPI "
        f"schema; the {len(reads)} reads and {len(writes)} write and compute routes each with "
        f"{len(WRONG_KEYS)} wrong keys ({', '.join(WRONG_KEYS)}); an unknown run without a "
        f"key; the {len(PROBES)} probes without a key; then every read and write with the key",
        {
            "routes": f"{len(_operations(service))}: {len(reads)} reads, {len(writes)} writes "
            f"and compute, {len(PROBES)} probes",
            "wrong-key requests": sum(refused.values()),
            "their status codes": dict(refused),
            "rows changed by them": "none" if unchanged else "some",
            "unknown run without a key": unknown_run,
            "probes without a key": probes,
            "reads with the key": dict(collections.Counter(read.values())),
            "writes with the right key": allowed,
        },
    )


def test_with_protect_reads_off_reads_are_open_and_writes_still_need_the_key(model_dir, tmp_path):
    database = f"sqlite:///{tmp_path / 'open-reads.sqlite'}"
    with _service(model_dir, database, protect_reads=False) as client:
        writes, reads = _routes(client)
        before = rows(client)
        read = {op: send({}).status_code for op, send in reads.items()}
        refused = {op: send({}).status_code for op, send in writes.items()}
        unchanged = rows(client) == before
    assert set(read.values()) == {200}, read
    assert set(refused.values()) == {401} and unchanged, refused
    observations.record(
        "hostile: API key, reads left open",
        f"with GLAMLAB_API_KEY set and GLAMLAB_PROTECT_READS=false: the {len(reads)} reads "
        f"and the {len(writes)} write and compute routes without a key",
        {
            "reads without a key": dict(collections.Counter(read.values())),
            "writes without a key": dict(collections.Counter(refused.values())),
            "rows changed by them": "none" if unchanged else "some",
        },
    )


OTHER_ORIGINS = [
    "https://evil.example",
    "http://localhost:8502",
    "http://localhost:8501.evil.example",
    "https://localhost:8501",
    "null",
]


def _cors(client: TestClient, origin: str) -> tuple[int, str | None, int, str | None]:
    """(preflight status, its allowed origin, simple GET status, its allowed origin)."""
    preflight = client.options(
        "/v1/analyze",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    simple = client.get("/v1/model", headers={"Origin": origin, **AUTH})
    allow = "access-control-allow-origin"
    return (
        preflight.status_code,
        preflight.headers.get(allow),
        simple.status_code,
        simple.headers.get(allow),
    )


def test_cors_admits_only_the_dashboard_origin(service):
    seen = {origin: _cors(service, origin) for origin in DASHBOARD_ORIGINS + OTHER_ORIGINS}
    for origin in DASHBOARD_ORIGINS:
        assert seen[origin] == (200, origin, 200, origin), seen[origin]
    for origin in OTHER_ORIGINS:
        # The GET itself is answered (CORS is the browser's rule), but without the header the
        # browser keeps the answer from the other origin's page.
        assert seen[origin] == (400, None, 200, None), (origin, seen[origin])
    observations.record(
        "hostile: CORS",
        "a preflight (POST /v1/analyze with Content-Type and X-API-Key) and a GET /v1/model "
        f"(with the key) from the dashboard's origins ({', '.join(DASHBOARD_ORIGINS)}) and from "
        f"{len(OTHER_ORIGINS)} others ({', '.join(OTHER_ORIGINS)})",
        {
            origin: f"preflight {p} allow-origin {a or '-'}; GET {s} allow-origin {sa or '-'}"
            for origin, (p, a, s, sa) in seen.items()
        },
    )


# --- the dashboard in a browser ------------------------------------------------------------

IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
CAPTION = "[data-testid='stCaptionContainer']"
# Elements the texts would have created anywhere in the page, had it parsed them as HTML.
INJECTED = """() => document.querySelectorAll("img[src='x']").length
    + [...document.querySelectorAll("script")].filter(s => s.text.includes("alert(")).length"""


@pytest.fixture(scope="module")
def dashboard(live_api, tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("hostile-ui") / "ui.log"
    with stack.dashboard_process(live_api, log, api_key=KEY) as url:  # its reads need it
        yield url


def _show_stored_document(page, dashboard: str, document: int, document_id: int) -> str:
    """The token explorer's view of the newest run's `document`; returns the tokens' text."""
    page.goto(f"{dashboard}/token-explorer")
    page.wait_for_selector(IDLE, timeout=60_000)
    page.keyboard.press("Escape")  # a first visit by URL may open a "page not found" notice
    page.get_by_role("radio", name="Stored document").click()
    page.wait_for_selector(IDLE, timeout=60_000)
    if document:
        number = page.get_by_label("Document (0-1)")
        number.fill(str(document))
        number.press("Enter")
    # The caption names the stored document shown: this one, with its domain label.
    caption = page.locator(CAPTION, has_text=f"document {document_id} ")
    caption.wait_for(timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert XSS_DOMAIN in caption.inner_text()
    page.wait_for_timeout(500)  # an injected onerror or script would have run by now
    return page.locator(".glam-tokens").inner_text().replace("\u2581", " ")


def test_html_in_a_stored_text_is_shown_as_text_in_the_dashboard(
    live_api, dashboard, page, dialogs
):
    body = {"texts": XSS_TEXTS, "domain": XSS_DOMAIN, "store": True}
    stored = httpx.post(f"{live_api}/v1/analyze", json=body, headers=AUTH, timeout=120)
    stored.raise_for_status()
    ids = [d["document_id"] for d in stored.json()["documents"]]
    shown = {}
    for document, expected in enumerate(XSS_TEXTS):
        shown[document] = _show_stored_document(page, dashboard, document, ids[document])
        assert expected in shown[document], (expected, shown[document])
        assert page.locator(".glam-tokens img, .glam-tokens script").count() == 0
        assert page.evaluate(INJECTED) == 0
    assert dialogs == []
    observations.record(
        "hostile: HTML and script in stored text",
        f"stored a run (POST /v1/analyze) of {len(XSS_TEXTS)} texts with <script> and "
        "<img onerror> and a domain label with <img onerror>, then opened each document in the "
        "dashboard's token explorer (Stored document) in Chromium",
        {
            "documents shown": len(shown),
            "text shown literally": all(t in shown[i] for i, t in enumerate(XSS_TEXTS)),
            "domain label shown literally": True,
            "injected img/script elements": 0,
            "JavaScript dialogs opened": len(dialogs),
        },
    )
