"""Health, model card, auth, runs, export, experiments."""

from __future__ import annotations

import io
import logging

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from glam.corpus import read_corpus
from storage import queries


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["checks"] == {"model": True, "batcher": True, "database": True}
    client.post("/v1/analyze", json={"texts": ["hello"], "store": False})
    metrics = client.get("/metrics").text
    counted = 'glamlab_request_seconds_count{method="POST",route="/v1/analyze",status="200"}'
    assert counted in metrics
    assert "glamlab_tokens_analysed_total" in metrics


def test_readiness_fails_without_a_database(make_client, tmp_path):
    # A database file that cannot be opened: its path is a directory.
    (tmp_path / "isdir.sqlite").mkdir()
    client = make_client(database_url=f"sqlite:///{tmp_path}/isdir.sqlite")
    response = client.get("/readyz")
    assert response.status_code == 503 and "database unreachable" in response.json()["detail"]
    stored = client.post("/v1/analyze", json={"texts": ["hello"], "store": True})
    assert stored.status_code == 503 and "database unavailable" in stored.json()["detail"]


def test_a_connection_lost_after_the_answer_does_not_abort_it(client, monkeypatch):
    # PostgreSQL stopped between a read and the session's closing rollback: the answer stands
    # (the rollback had nothing to undo). Raised, it aborted the response: a connection reset.
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    close = Session.close

    def close_then_fail(self: Session) -> None:
        close(self)
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Session, "close", close_then_fail)
    assert client.get("/v1/runs").status_code == 200
    assert client.get("/v1/stats/load", params={"layer": 1}).status_code in (200, 404)


@pytest.mark.parametrize(
    "bug",
    [KeyError("layer"), IndexError("list index out of range"),
     IntegrityError("INSERT ...", {}, Exception("UNIQUE constraint failed"))],
    ids=["KeyError", "IndexError", "IntegrityError"],
)  # fmt: skip
def test_a_bug_is_a_logged_500_not_a_404_or_503(client, monkeypatch, caplog, bug):
    # A KeyError is a LookupError and an IntegrityError a DBAPIError, but neither means
    # "no such thing" or "database away": answered 404 / 503, the bug stayed hidden.
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(queries, "expert_load", broken)
    unraised = TestClient(client.app, raise_server_exceptions=False)  # the app is running
    with caplog.at_level(logging.ERROR, logger="glamlab"):
        response = unraised.get("/v1/stats/load")
    assert response.status_code == 500, response.text
    assert any(r.exc_info and r.exc_info[1] is bug for r in caplog.records)


def test_what_is_missing_is_still_404_and_a_lost_database_503(client, monkeypatch):
    assert client.get("/v1/stats/load", params={"run_id": 987654}).status_code == 404
    assert client.get("/v1/stats/load", params={"model": "nope"}).status_code == 404
    assert client.get("/v1/runs/987654").status_code == 404

    def database_away(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(queries, "expert_load", database_away)
    response = client.get("/v1/stats/load")
    assert response.status_code == 503 and "database unavailable" in response.json()["detail"]


def test_model_card(client):
    card = client.get("/v1/model").json()
    assert card["name"] == "test-glam" and card["num_experts"] == 4
    assert card["family"] == "glam" and card["top_k"] == 2
    assert card["moe_layers"] == [1]
    assert card["params_total"] > card["params_activated"] > 0
    assert [c["name"] for c in card["checkpoints"]] == ["final", "early"]
    assert card["checkpoint"]["step"] == 100 and len(card["checkpoint"]["sha256"]) == 64
    assert card["max_tokens_per_text"] == 64


def test_api_key_guards_writes_compute_and_reads_of_stored_texts(make_client):
    client = make_client(api_key="s3cret")
    key = {"X-API-Key": "s3cret"}
    payload = {"texts": ["hello"]}
    assert client.post("/v1/analyze", json=payload).status_code == 401
    wrong = client.post("/v1/analyze", json=payload, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
    ok = client.post("/v1/analyze", json=payload, headers=key)
    assert ok.status_code == 200
    run_id = ok.json()["run_id"]
    for read in (f"/v1/runs/{run_id}/tokens", f"/v1/runs/{run_id}/export", "/v1/stats/load"):
        assert client.get(read).status_code == 401, read  # the stored texts are private
        assert client.get(read, headers=key).status_code == 200, read
    assert client.get("/healthz").status_code == 200  # the probes need no secret
    assert client.delete(f"/v1/runs/{run_id}").status_code == 401
    assert client.post("/v1/jobs", data={"corpus": "builtin"}).status_code == 401
    assert client.delete(f"/v1/runs/{run_id}", headers=key).status_code == 204


def test_protect_reads_off_leaves_reads_open_and_writes_guarded(make_client):
    client = make_client(api_key="s3cret", protect_reads=False)
    ok = client.post("/v1/analyze", json={"texts": ["hello"]}, headers={"X-API-Key": "s3cret"})
    run_id = ok.json()["run_id"]
    assert client.get(f"/v1/runs/{run_id}/tokens").status_code == 200
    assert client.delete(f"/v1/runs/{run_id}").status_code == 401


def test_blank_api_key_is_refused_and_empty_means_none():
    from backend.settings import Settings

    with pytest.raises(ValueError, match="blank"):
        Settings(api_key="  ")
    assert Settings(api_key="").api_key is None


def _store(client, texts, domain="demo"):
    return client.post("/v1/analyze", json={"texts": texts, "domain": domain}).json()


def test_runs_list_paginate_get_tokens_delete(client):
    ids = [_store(client, [f"text number {i}"])["run_id"] for i in range(5)]
    first = client.get("/v1/runs", params={"limit": 2}).json()
    assert [r["id"] for r in first["runs"]] == ids[::-1][:2]
    second = client.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [r["id"] for r in second["runs"]] == ids[::-1][2:4]
    third = client.get("/v1/runs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [r["id"] for r in third["runs"]] == ids[:1] and third["next_cursor"] is None

    tokens = client.get(f"/v1/runs/{ids[0]}/tokens").json()
    assert tokens[0]["document"]["text"] == "text number 0"
    assert all(len(t["routes"]) == 1 for t in tokens[0]["tokens"])

    assert client.delete(f"/v1/runs/{ids[0]}").status_code == 204
    assert client.get(f"/v1/runs/{ids[0]}").status_code == 404
    assert client.delete(f"/v1/runs/{ids[0]}").status_code == 404
    assert client.get("/v1/runs/999999/tokens").status_code == 404


def test_export_csv_and_parquet_hold_every_token_layer_and_choice(client):
    body = _store(client, ["def add(a, b):\n    return a + b", "hello there"])
    run_id = body["run_id"]
    first = body["documents"][0]["tokens"][0]["routes"][0]
    n_layers, k = len(body["documents"][0]["tokens"][0]["routes"]), len(first["experts"])
    n_rows = sum(d["n_tokens"] for d in body["documents"]) * n_layers * k
    csv_response = client.get(f"/v1/runs/{run_id}/export", params={"format": "csv"})
    assert csv_response.headers["content-type"].startswith("text/csv")
    lines = csv_response.text.strip().splitlines()
    assert lines[0].startswith("document_id,domain,position") and len(lines) == 1 + n_rows
    parquet = client.get(f"/v1/runs/{run_id}/export", params={"format": "parquet"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == n_rows
    head = table.slice(0, k).to_pydict()  # the first token's choices at the first layer
    assert head["rank"] == list(range(k))
    assert head["expert"] == first["experts"] and head["kept"] == first["kept"]
    assert head["gate"] == pytest.approx(first["gates"], rel=1e-5)  # stored as REAL
    assert client.get(f"/v1/runs/{run_id}/export", params={"format": "xml"}).status_code == 422


def test_ablation_experiment_reports_loss_change_and_rerouting(client, corpus_path):
    texts = ["def add(a, b):\n    return a + b", "こんにちは。お元気ですか？"]
    baseline = client.post("/v1/analyze", json={"texts": texts, "store": False}).json()
    routes = [t["routes"][0] for d in baseline["documents"] for t in d["tokens"]]
    top1 = [r["experts"][0] for r in routes]
    busiest = max(range(4), key=top1.count)  # switched off, it certainly moves tokens
    body = client.post(
        "/v1/experiments/ablation",
        json={"texts": texts, "ablate": {"1": [busiest]}, "domain": "x"},
    ).json()
    (effect,) = body["domains"]
    scored = sum(d["n_tokens"] - 1 for d in baseline["documents"])  # every token but the last
    assert effect["domain"] == "x" and effect["tokens"] == scored
    assert effect["base_nll"] == pytest.approx(
        sum(t["nll"] for d in baseline["documents"] for t in d["tokens"][:-1]) / scored, rel=1e-4
    )
    assert effect["ablated_nll"] != effect["base_nll"]
    assert effect["delta"] == pytest.approx(effect["ablated_nll"] - effect["base_nll"])
    (layer,) = body["rerouting"]
    assert layer["layer"] == 1
    assert layer["affected_tokens"] == sum(busiest in r["experts"] for r in routes) > 0
    # Every token whose top-1 was switched off has a new top-1.
    assert layer["changed_top1"] >= top1.count(busiest) / len(routes) > 0
    assert layer["new_experts"][busiest] == 0.0
    assert sum(layer["new_experts"]) == pytest.approx(1.0)
    # A one-token text has no next token to score: its domain has no loss, yet it is routed.
    single = client.post("/v1/analyze", json={"texts": ["a"], "store": False}).json()
    assert single["documents"][0]["n_tokens"] == 1
    lone = client.post(
        "/v1/experiments/ablation", json={"texts": ["a"], "ablate": {"1": [0]}, "domain": "one"}
    )
    assert lone.status_code == 200
    assert lone.json()["domains"] == [
        {"domain": "one", "tokens": 0, "base_nll": None, "ablated_nll": None, "delta": None}
    ]
    assert lone.json()["rerouting"][0]["affected_tokens"] == int(
        0 in single["documents"][0]["tokens"][0]["routes"][0]["experts"]
    )
    assert lone.json()["sample"] == {"source": "texts", "documents": {"one": 1}}
    # Without texts, a stratified sample of the built-in validation documents: the first
    # `per_domain` of every domain, labelled by their domains, and the response says so.
    corpus = client.post(
        "/v1/experiments/ablation", json={"ablate": {"1": [1]}, "per_domain": 2}
    ).json()
    validation = [r.domain for r in read_corpus(corpus_path, "validation")]
    every = sorted(set(validation))
    assert corpus["sample"] == {
        "source": "builtin",
        "documents": {d: min(2, validation.count(d)) for d in every},
    }
    assert [d["domain"] for d in corpus["domains"]] == every and len(every) > 2
    assert all(d["tokens"] > 0 for d in corpus["domains"])
    some = client.post(
        "/v1/experiments/ablation",
        json={"ablate": {"1": [1]}, "per_domain": 1, "corpus_domains": [every[-1]]},
    ).json()
    assert some["sample"]["documents"] == {every[-1]: 1}
    unknown = client.post(
        "/v1/experiments/ablation", json={"ablate": {"1": [1]}, "corpus_domains": ["klingon"]}
    )
    assert unknown.status_code == 422 and "klingon" in unknown.json()["detail"]


def test_saturation_experiment(client):
    texts = ["def add(a, b):\n    return a + b", "The fox jumps over the dog."]
    same = client.post(
        "/v1/experiments/saturation",
        json={"texts": texts, "checkpoint_a": "final", "checkpoint_b": "final"},
    ).json()
    assert same["layers"][0]["saturation"] == pytest.approx(1.0)
    other = client.post("/v1/experiments/saturation", json={"texts": texts}).json()
    layer = other["layers"][0]
    assert layer["baseline"] == 0.5 and 0.0 <= layer["saturation"] < 1.0
    bad = client.post("/v1/experiments/saturation", json={"texts": texts, "checkpoint_a": "x"})
    assert bad.status_code == 422


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/healthz", "/readyz", "/metrics", "/v1/model", "/v1/analyze", "/v1/generate",
        "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/tokens", "/v1/runs/{run_id}/export",
        "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel", "/v1/stats/load",
        "/v1/stats/balance", "/v1/stats/domains", "/v1/stats/vocab", "/v1/stats/coactivation",
        "/v1/stats/consecutive", "/v1/stats/transitions", "/v1/stats/positions",
        "/v1/experts/{layer}/{expert}", "/v1/experiments/ablation", "/v1/experiments/saturation",
    ):  # fmt: skip
        assert path in paths, path
