"""The statistic endpoints agree with numbers computed from the analyze responses."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest

from storage import db
from storage.ingest import ingest_run, register_model
from tests.storage.traces import random_trace

TEXTS = {
    "code": ["def add(a, b):\n    return a + b", "for i in range(10):\n    print(i)"],
    "chat-ja": ["こんにちは。お元気ですか？", "今日はいい天気ですね。"],
}


@pytest.fixture
def analysed(client):
    documents = []
    for domain, texts in TEXTS.items():
        body = client.post("/v1/analyze", json={"texts": texts, "domain": domain}).json()
        documents += body["documents"]
    return documents


def _routes(documents, domain=None):
    return [
        t["routes"][0]
        for d in documents
        if domain is None or d["domain"] == domain
        for t in d["tokens"]
    ]


def test_load_matches_the_responses(client, analysed):
    routes = _routes(analysed)
    load = np.zeros(4)
    for r in routes:
        for expert, kept in zip(r["experts"], r["kept"], strict=True):
            load[expert] += kept
    layer = client.get("/v1/stats/load", params={"layer": 1}).json()[0]
    assert [e["load"] for e in layer["load"]["experts"]] == load.tolist()
    shares = [e["share"]["value"] for e in layer["load"]["experts"]]
    np.testing.assert_allclose(shares, load / load.sum())
    assert layer["load"]["experts"][0]["share"]["baseline"] == pytest.approx(0.25)
    cv = layer["balance"]["cv"]["value"]
    assert cv == pytest.approx(load.std() / load.mean()) and layer["balance"]["cv"]["baseline"] == 0
    dropped = np.array([[not kept for kept in r["kept"]] for r in routes])  # [tokens, k]
    by_rank = [m["value"] for m in layer["routing"]["drop_rate_by_rank"]]
    assert by_rank == pytest.approx(dropped.mean(axis=0).tolist())
    assert layer["routing"]["drop_rate"]["value"] == pytest.approx(dropped.mean())
    entropy = np.mean([r["entropy"] for r in routes])
    assert layer["routing"]["router_entropy"]["value"] == pytest.approx(entropy, rel=1e-4)


def test_domain_specialisation_matches_the_responses(client, analysed):
    rows = client.get("/v1/stats/domains", params={"layer": 1}).json()
    by_domain = {row["domain"]: row for row in rows}
    for domain in TEXTS:
        routes = _routes(analysed, domain)
        counts = collections.Counter(e for r in routes for e in r["experts"])
        assert by_domain[domain]["tokens"] == len(routes)
        assert list(by_domain[domain]["counts"]) == [counts[e] for e in range(4)]
        assert by_domain[domain]["baseline"] == pytest.approx(0.5)
    filtered = client.get("/v1/stats/domains", params={"layer": 1, "domain": "code"}).json()
    assert [row["domain"] for row in filtered] == ["code"]


def test_coactivation_consecutive_transitions_positions_loss(client, analysed):
    routes = _routes(analysed)
    co = client.get("/v1/stats/coactivation").json()[0]
    pairs = np.zeros((4, 4), int)
    for r in routes:
        a, b = r["experts"]
        pairs[a, b] += 1
        pairs[b, a] += 1
    assert np.array_equal(np.asarray(co["pairs"]), pairs)

    consecutive = client.get("/v1/stats/consecutive").json()[0]
    same = total = 0
    for document in analysed:
        top1 = [t["routes"][0]["experts"][0] for t in document["tokens"]]
        same += sum(a == b for a, b in itertools.pairwise(top1))
        total += len(top1) - 1
    assert consecutive["pairs"] == total
    assert consecutive["same_top1"]["value"] == pytest.approx(same / total)
    assert consecutive["same_top1"]["baseline"] == pytest.approx(0.25)

    # One MoE layer: no layer pairs to transition between.
    assert client.get("/v1/stats/transitions").json() == []
    positions = client.get("/v1/stats/positions", params={"bucket": 32}).json()
    assert sum(p["tokens"] for p in positions) == len(routes)
    odd = client.get("/v1/stats/positions", params={"bucket": 8})
    assert odd.status_code == 422 and "multiple of 32" in odd.json()["detail"]

    loss = {row["domain"]: row for row in client.get("/v1/stats/loss").json()}
    for domain in TEXTS:
        nll = [t["nll"] for d in analysed if d["domain"] == domain for t in d["tokens"] if t["nll"]]
        assert loss[domain]["mean_nll"]["value"] == pytest.approx(np.mean(nll), rel=1e-5)


def test_vocab_and_expert_profile(client, analysed):
    routes_by_token = collections.defaultdict(list)
    for document in analysed:
        for token in document["tokens"]:
            routes_by_token[token["token_id"]].append(token["routes"][0]["experts"])
    top1 = [r["experts"][0] for r in _routes(analysed)]
    expert = max(range(4), key=top1.count)  # the busiest: certainly some tokens to list
    (row,) = client.get(
        "/v1/stats/vocab", params={"layer": 1, "expert": expert, "min_count": 1}
    ).json()
    assert row["layer"] == 1 and row["expert"] == expert and row["tokens"]
    assert any(share["with_expert"] for share in row["tokens"])
    for share in row["tokens"]:
        seen = routes_by_token[share["token_id"]]
        assert share["count"] == len(seen)
        assert share["with_expert"] == sum(expert in pair for pair in seen)

    profile = client.get(f"/v1/experts/1/{expert}").json()
    assert profile["layer"] == 1 and profile["expert"] == expert
    assert {d["domain"] for d in profile["domains"]} == set(TEXTS)
    assert len(profile["partners"]) == 3
    # Each example is a stored token whose kept rank-th choice at layer 1 was this expert.
    stored = {}
    for run in client.get("/v1/runs").json()["runs"]:
        for doc in client.get(f"/v1/runs/{run['id']}/tokens").json():
            stored[doc["document"]["id"]] = (doc["document"]["domain"], doc["tokens"])
    kept = sum(
        route["experts"][rank] == expert and route["kept"][rank]
        for _, tokens in stored.values()
        for t in tokens
        for route in t["routes"]
        if route["layer"] == 1
        for rank in (0, 1)
    )
    examples = profile["examples"]
    assert len(examples) == min(8, kept) > 0
    assert [e["rank"] for e in examples] == sorted(e["rank"] for e in examples)  # top-1 first
    for example in examples:
        domain, tokens = stored[example["document_id"]]
        at, rank = example["position"], example["rank"] - 1
        assert tokens[at]["position"] == at and example["domain"] == domain
        (route,) = tokens[at]["routes"]
        assert route["layer"] == 1 and route["experts"][rank] == expert and route["kept"][rank]
        assert example["gate"] == pytest.approx(route["gates"][rank])
        pieces = [t["piece"] for t in tokens]  # eight of context on each side
        assert example["piece"] == pieces[at] and len(example["before"]) == min(at, 8)
        assert [*example["before"], example["piece"], *example["after"]] == pieces[
            max(at - 8, 0) : at + 9
        ]
    assert client.get("/v1/experts/0/0").status_code == 404
    assert client.get("/v1/experts/1/9").status_code == 404


def test_filters_by_run_and_unknown_run(client, analysed):
    only = client.post("/v1/analyze", json={"texts": ["x y z"], "domain": "solo"}).json()
    rows = client.get("/v1/stats/domains", params={"run_id": only["run_id"]}).json()
    assert [row["domain"] for row in rows] == ["solo"]
    assert client.get("/v1/stats/load", params={"run_id": 987654}).status_code == 404


def test_deleting_a_run_removes_its_share(client, analysed):
    before = client.get("/v1/stats/load").json()[0]["load"]["total"]
    extra = client.post("/v1/analyze", json={"texts": ["one more text"]}).json()
    assert client.get("/v1/stats/load").json()[0]["load"]["total"] > before
    client.delete(f"/v1/runs/{extra['run_id']}")
    assert client.get("/v1/stats/load").json()[0]["load"]["total"] == before


@pytest.mark.parametrize(
    "path",
    ["/v1/stats/load", "/v1/stats/balance", "/v1/stats/domains", "/v1/stats/loss",
     "/v1/stats/coactivation", "/v1/stats/consecutive", "/v1/stats/transitions",
     "/v1/stats/positions", "/v1/experts/1/0"],
)  # fmt: skip
@pytest.mark.parametrize(
    "params",
    [{"run_id": 2**70}, {"run_id": -3}, {"layer": 2**70}, {"domain": "a\x00b"}],
)
def test_out_of_range_filters_are_422_not_500(client, path, params):
    if path.startswith("/v1/experts") and "layer" in params:  # its layer is in the path
        path, params = f"/v1/experts/{params['layer']}/0", {}
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text


def test_out_of_range_ids_in_paths_are_422(client):
    for path in ("/v1/runs/99999999999999999999999", "/v1/jobs/99999999999999999999999",
                 "/v1/experts/1/99999999999999999999"):  # fmt: skip
        assert client.get(path).status_code == 422
    assert client.get("/v1/runs", params={"cursor": 2**64}).status_code == 422


@pytest.fixture
def lone_expert_model(client, database_url) -> str:
    """A one-expert model (documented as supported) with one stored run, next to the app's."""
    engine = db.make_engine(database_url)
    trace = random_trace(np.random.default_rng(9), batch=3, seq=12, num_experts=1)
    # A write session (BEGIN IMMEDIATE on SQLite): the app's job runner and statistics keeper
    # write too, and a deferred transaction that reads then writes fails at once on conflict.
    with db.session_factory(engine, writes=True).begin() as session:
        register_model(session, name="lone", num_experts=1, vocab_size=30, moe_layers=(1, 3, 5))
        ingest_run(session, model_name="lone", trace=trace, texts=["a", "b", "c"], domains="web")
    engine.dispose()
    return "lone"


def test_one_expert_statistics_are_defined_or_a_clear_422(client, lone_expert_model):
    params = {"model": lone_expert_model}
    for path in ("/v1/stats/load", "/v1/stats/balance", "/v1/stats/consecutive",
                 "/v1/stats/domains", "/v1/stats/transitions", "/v1/experts/1/0"):  # fmt: skip
        response = client.get(path, params=params)
        assert response.status_code == 200, (path, response.text)
    balance = client.get("/v1/stats/balance", params=params).json()["balance"]
    assert [b["load_entropy"]["value"] for b in balance] == [1.0, 1.0, 1.0]
    consecutive = client.get("/v1/stats/consecutive", params=params).json()
    assert [c["shared_topk"]["baseline"] for c in consecutive] == [1.0, 1.0, 1.0]
    assert client.get("/v1/experts/1/0", params=params).json()["partners"] == []
    co = client.get("/v1/stats/coactivation", params=params)
    assert co.status_code == 422 and "at least two experts" in co.json()["detail"]
