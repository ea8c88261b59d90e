"""Corpus jobs: built-in and uploaded corpora, progress, cancel, and resume after a crash."""

from __future__ import annotations

import json
import time

import pytest

from backend import jobs as job_logic
from storage import ingest


def _wait(client, job_id, statuses=("done", "failed", "cancelled"), timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']}")


def _documents(client, run_id):
    docs, offset = [], 0
    while page := client.get(f"/v1/runs/{run_id}/tokens", params={"offset": offset}).json():
        docs += [d["document"] for d in page]
        offset += len(page)
    return docs


def test_builtin_corpus_job_analyses_every_validation_document(client):
    started = client.post("/v1/jobs", data={"corpus": "builtin", "split": "validation"})
    assert started.status_code == 202
    job = _wait(client, started.json()["job_id"])
    assert job["status"] == "done" and job["done"] == job["total"] == 9
    documents = _documents(client, job["run_id"])
    assert sorted(d["domain"] for d in documents) == sorted(["code", "prose-en", "chat-ja"] * 3)


def test_uploaded_jsonl_with_limit(client):
    lines = [json.dumps({"text": f"sample text {i}", "domain": f"d{i % 2}"}) for i in range(7)]
    upload = ("corpus.jsonl", "\n".join(lines).encode(), "application/jsonl")
    started = client.post("/v1/jobs", data={"corpus": "upload", "limit": 5},
                          files={"file": upload})  # fmt: skip
    job = _wait(client, started.json()["job_id"])
    assert job["total"] == 5 and job["done"] == 5
    texts = sorted(d["text"] for d in _documents(client, job["run_id"]))
    assert texts == sorted(f"sample text {i}" for i in range(5))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "a", "domain": "x"}\n{oops\n', "line 2: malformed JSON"),
        (b'{"text": "a", "domain": "x"}\n\xff\xfe\n', "line 2: not valid UTF-8"),
        (b'{"text": "a\\u0000", "domain": "x"}\n{"text": "b\x00", "domain": "x"}\n', "NUL"),
        (b'{"text": "", "domain": "x"}\n', "line 1: 'text' must be"),
        (
            b'{"text": "a", "domain": "x"}\n{"text": "b", "domain": "x\\ny"}\n',
            "line 2: 'domain' contains",
        ),
        (b"\n\n", "no records"),
    ],
)
def test_bad_uploads_name_the_line(client, content, message):
    response = client.post(
        "/v1/jobs", data={"corpus": "upload"}, files={"file": ("c.jsonl", content)}
    )
    assert response.status_code == 422 and message in response.json()["detail"]


def test_unknown_job_and_cancel(make_client, monkeypatch):
    """A running job cancelled mid-way stops after its current chunk; a finished one is 409."""
    import threading

    client = make_client(job_chunk_documents=1)
    assert client.get("/v1/jobs/4242").status_code == 404
    assert client.post("/v1/jobs/4242/cancel").status_code == 404
    entered, gate = threading.Event(), threading.Event()
    real = job_logic.run_batch

    def gated(*args, **kwargs):
        entered.set()  # the first chunk is in the model: the job is certainly running
        assert gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(job_logic, "run_batch", gated)
    job_id = client.post("/v1/jobs", data={"corpus": "builtin"}).json()["job_id"]
    assert entered.wait(30)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    gate.set()
    # The runner takes one job at a time: once the next job is done, the cancelled one ended.
    finished = client.post("/v1/jobs", data={"corpus": "builtin", "limit": 1}).json()["job_id"]
    assert _wait(client, finished)["status"] == "done"
    job = client.get(f"/v1/jobs/{job_id}").json()
    # It stopped at the chunk it was in (committed or not, per backend/jobs.py), no later.
    assert job["status"] == "cancelled" and job["done"] <= 1 < job["total"] == 9
    assert len(_documents(client, job["run_id"])) == job["done"]
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    late = client.post(f"/v1/jobs/{finished}/cancel")
    assert late.status_code == 409 and "already done" in late.json()["detail"]
    assert client.get(f"/v1/jobs/{finished}").json()["status"] == "done"


# The injected kill ends the job thread with SystemExit, which pytest reports as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_job_killed_midway_resumes_with_every_document_exactly_once(make_client, monkeypatch):
    # The killed runner never lets go of its claim: the restarted one takes the job over
    # once the lease has run out.
    client = make_client(job_chunk_documents=2, job_lease_s=1)
    real_add = ingest.add_documents
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # mid-transaction: this chunk's rows must vanish
            raise SystemExit("killed")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(job_logic.ingest, "add_documents", crash_on_third_chunk)
    job_id = client.post("/v1/jobs", data={"corpus": "builtin"}).json()["job_id"]
    deadline = time.monotonic() + 60
    while calls["n"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "running" and job["done"] == 4  # two chunks committed
    assert len(_documents(client, job["run_id"])) == 4
    client.__exit__(None, None, None)

    monkeypatch.setattr(job_logic.ingest, "add_documents", real_add)
    restarted = make_client(job_chunk_documents=2, job_lease_s=1)  # same database: resumes
    job = _wait(restarted, job_id)
    assert job["status"] == "done" and job["done"] == 9
    documents = _documents(restarted, job["run_id"])
    assert len(documents) == 9
    assert len({d["text"] for d in documents}) == 9  # nothing twice


def test_a_broken_job_fails_with_its_reason_and_the_next_one_runs(client, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("this corpus cannot be analysed")

    monkeypatch.setattr(job_logic, "run_batch", broken)
    first = client.post("/v1/jobs", data={"corpus": "builtin", "limit": 2}).json()["job_id"]
    failed = _wait(client, first)
    assert failed["status"] == "failed" and "cannot be analysed" in failed["error"]
    monkeypatch.undo()
    second = client.post("/v1/jobs", data={"corpus": "builtin", "limit": 2}).json()["job_id"]
    assert _wait(client, second)["status"] == "done"


def test_a_run_that_a_job_is_writing_cannot_be_deleted(make_client, monkeypatch):
    client = make_client(job_chunk_documents=1)
    gate = __import__("threading").Event()
    real = job_logic.run_batch

    def slow(*args, **kwargs):
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(job_logic, "run_batch", slow)
    job_id = client.post("/v1/jobs", data={"corpus": "builtin"}).json()["job_id"]
    deadline = time.monotonic() + 30
    while (run_id := client.get(f"/v1/jobs/{job_id}").json()["run_id"]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    response = client.delete(f"/v1/runs/{run_id}")
    assert response.status_code == 409 and "cancel it first" in response.json()["detail"]
    gate.set()
    assert _wait(client, job_id)["status"] == "done"
    assert client.delete(f"/v1/runs/{run_id}").status_code == 204


def test_uploads_with_lone_surrogates_are_refused(client):
    content = b'{"text": "ok", "domain": "x"}\n{"text": "\\ud800", "domain": "x"}\n'
    response = client.post(
        "/v1/jobs", data={"corpus": "upload"}, files={"file": ("c.jsonl", content)}
    )
    assert response.status_code == 422 and "line 2: not valid Unicode" in response.text


def test_a_chunk_commits_while_the_next_one_runs_through_the_model(make_client, monkeypatch):
    # Each commit waits until the model has started on the following chunk: were the two
    # sequential, the first commit would wait for nothing and the job would time out.
    import threading

    client = make_client(job_chunk_documents=2)
    started_chunks, overlapped = threading.Semaphore(0), []
    analyse, commit = job_logic.JobRunner._analyse, job_logic.JobRunner._commit

    def noting_analyse(self, batch):
        started_chunks.release()  # one more chunk has entered the model
        return analyse(self, batch)

    def waiting_commit(self, job_id, run_id, analysed, done):
        # Chunk k (done = 2k) was the k-th to enter the model; unless it is the last, the
        # (k+1)-th must enter while this commit waits.
        chunk = done // 2
        if chunk == 1:
            assert started_chunks.acquire(timeout=30)  # the first chunk's own entry
        if done < 6:
            overlapped.append(started_chunks.acquire(timeout=30))
        return commit(self, job_id, run_id, analysed, done)

    monkeypatch.setattr(job_logic.JobRunner, "_analyse", noting_analyse)
    monkeypatch.setattr(job_logic.JobRunner, "_commit", waiting_commit)
    records = "".join(json.dumps({"text": f"text {i}", "domain": "d"}) + "\n" for i in range(6))
    started = client.post(
        "/v1/jobs", data={"corpus": "upload"}, files={"file": ("c.jsonl", records.encode())}
    )
    job = _wait(client, started.json()["job_id"])
    assert job["status"] == "done" and job["done"] == 6
    assert overlapped == [True, True]
    assert sorted(d["text"] for d in _documents(client, job["run_id"])) == sorted(
        f"text {i}" for i in range(6)
    )


@pytest.mark.postgres
def test_two_api_processes_on_one_postgresql_run_each_job_once(
    make_client, pg_database_url, monkeypatch
):
    """Two apps (each with its runner) on one PostgreSQL schema: each job is run by one of
    them, and every document is stored once (without claims both ran every job)."""
    analyse = job_logic.JobRunner._analyse

    def slow_analyse(self, batch):
        time.sleep(0.05)  # long enough for the other runner to look for work meanwhile
        return analyse(self, batch)

    monkeypatch.setattr(job_logic.JobRunner, "_analyse", slow_analyse)
    first = make_client(database_url=pg_database_url, job_chunk_documents=1)
    second = make_client(database_url=pg_database_url, job_chunk_documents=1)
    records = "".join(json.dumps({"text": f"text {i}", "domain": "d"}) + "\n" for i in range(12))
    job_ids = [
        client.post(
            "/v1/jobs", data={"corpus": "upload"}, files={"file": ("c.jsonl", records.encode())}
        ).json()["job_id"]
        for client in (first, second, first)
    ]
    for client in (first, second):  # both runners look for work now, not at their next wake
        client.app.state.glamlab.jobs.notify()
    for job_id in job_ids:
        job = _wait(first, job_id)
        assert job["status"] == "done" and job["done"] == 12
        texts = [d["text"] for d in _documents(first, job["run_id"])]
        assert sorted(texts) == sorted(f"text {i}" for i in range(12)), job_id


def test_a_database_that_keeps_failing_is_retried_less_and_less_often():
    """The runner backs off (2 s, doubling, at most 60 s) while the database fails, and comes
    back to its normal wake once it answers again."""
    import types

    from sqlalchemy.exc import OperationalError

    state = types.SimpleNamespace(settings=types.SimpleNamespace(job_lease_s=30.0))
    runner = job_logic.JobRunner(state)
    waits: list[float] = []
    answers = iter([*[OperationalError("SELECT", {}, Exception("down"))] * 7, None, "stop"])

    class Clock:  # the runner's stop event, seen as the clock it waits on
        def is_set(self) -> bool:
            return False

        def wait(self, timeout: float) -> bool:
            waits.append(timeout)
            return False

    def next_job():
        answer = next(answers)
        if answer == "stop":
            runner._stop = types.SimpleNamespace(is_set=lambda: True, wait=lambda t: True)
            return None
        if isinstance(answer, Exception):
            raise answer
        return None

    runner._stop = Clock()
    runner._wake = types.SimpleNamespace(
        wait=lambda timeout: waits.append(-timeout), clear=lambda: None, set=lambda: None
    )
    runner._next_job = next_job
    runner._loop()
    # -5: a normal wake (every 5 s, or at once when a job arrives); positive: a backoff.
    assert waits == [-5, 2, 4, 8, 16, 32, 60, 60, -5]


def test_long_documents_are_one_document_with_continuous_positions_in_jobs_and_experiments(
    make_client,
):
    """With an 8-token limit every built-in document is longer than the model's window: the
    job stores each whole (its text, every token once, positions 0..n-1, a loss at every
    position but the last), and the ablation experiment routes the same windows: its
    per-domain base loss is the job's (issue 18.3)."""
    client = make_client(max_tokens_per_text=8)
    started = client.post("/v1/jobs", data={"corpus": "builtin", "split": "validation"})
    job = _wait(client, started.json()["job_id"])
    assert job["status"] == "done"
    stored = client.get(f"/v1/runs/{job['run_id']}/tokens", params={"limit": 100}).json()
    state = client.app.state.glamlab
    records = job_logic.builtin_records(state, "validation")
    assert sorted(d["document"]["text"] for d in stored) == sorted(r.text for r in records)
    losses: dict[str, list[float]] = {}
    longest = 0
    for doc in stored:
        ids = state.registry.main.tokenizer.encode(doc["document"]["text"])
        tokens = doc["tokens"]
        assert [t["position"] for t in tokens] == list(range(len(ids)))
        assert [t["token_id"] for t in tokens] == ids
        assert all(len(t["routes"]) == len(state.registry.main.config.moe_layers) for t in tokens)
        assert all(t["nll"] is not None for t in tokens[:-1]) and tokens[-1]["nll"] is None
        losses.setdefault(doc["document"]["domain"], []).extend(t["nll"] for t in tokens[:-1])
        longest = max(longest, len(ids))
    assert longest > 3 * 8  # the documents really span several windows

    effect = client.post(
        "/v1/experiments/ablation", json={"ablate": {"1": [0]}, "per_domain": 100}
    ).json()
    for domain in effect["domains"]:
        expected = losses[domain["domain"]]
        assert domain["tokens"] == len(expected)
        assert domain["base_nll"] == pytest.approx(sum(expected) / len(expected), rel=1e-5)


@pytest.mark.postgres
def test_a_cancelled_job_mid_commit_keeps_its_run_until_the_commit_lands(
    make_client, pg_database_url, monkeypatch
):
    """Cancel while a chunk's commit is in flight, then delete the run: the delete waits for
    that commit (409 until it lands), and afterwards the model-wide statistics are exactly
    those from before the job (issue 18.6: the delete ran first and the late chunk stayed
    counted for good)."""
    import threading

    client = make_client(database_url=pg_database_url, job_chunk_documents=2)
    stored = client.post("/v1/analyze", json={"texts": ["def f(x): return x"], "store": True})
    assert stored.status_code == 200
    routes = ("load", "domains", "coactivation", "loss")
    before = {r: client.get(f"/v1/stats/{r}").json() for r in routes}
    in_flight, land = threading.Event(), threading.Event()
    commit = job_logic.JobRunner._commit

    def held_commit(self, job_id, run_id, analysed, done):
        if done == 4:  # the second chunk's commit: held until the test lets it land
            in_flight.set()
            assert land.wait(60)
        return commit(self, job_id, run_id, analysed, done)

    monkeypatch.setattr(job_logic.JobRunner, "_commit", held_commit)
    job_id = client.post("/v1/jobs", data={"corpus": "builtin"}).json()["job_id"]
    assert in_flight.wait(60)
    run_id = client.get(f"/v1/jobs/{job_id}").json()["run_id"]
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    refused = client.delete(f"/v1/runs/{run_id}")
    assert refused.status_code == 409, refused.text
    land.set()
    deadline = time.monotonic() + 60
    while (deleted := client.delete(f"/v1/runs/{run_id}")).status_code == 409:
        assert time.monotonic() < deadline, "the cancelled job never let go of its run"
        time.sleep(0.05)
    assert deleted.status_code == 204
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["done"] == 4  # the held chunk did land
    assert {r: client.get(f"/v1/stats/{r}").json() for r in routes} == before
