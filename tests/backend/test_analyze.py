"""POST /v1/analyze and /v1/generate: routing per token, storage, limits, batching."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest

from backend.schemas import AnalyzeResponse
from glam import checkpoint
from glam.model import forward

TEXTS = ["def add(a, b):\n    return a + b", "こんにちは。お元気ですか？", "The fox jumps."]


def test_analyze_returns_every_tokens_routing_as_the_model_computes_it(client, model_dir):
    body = client.post("/v1/analyze", json={"texts": TEXTS, "domain": "demo"}).json()
    AnalyzeResponse.model_validate(body)  # the documented schema, field for field
    loaded = checkpoint.load(model_dir / "final")
    assert body["moe_layers"] == [1] and body["num_experts"] == 4
    assert isinstance(body["run_id"], int)
    for text, document in zip(TEXTS, body["documents"], strict=True):
        ids = loaded.tokenizer.encode(text)
        assert [t["token_id"] for t in document["tokens"]] == ids
        assert [t["piece"] for t in document["tokens"]] == loaded.tokenizer.pieces(ids)
        _, trace = forward(loaded.model, np.asarray([ids], np.int32), capture=True)
        experts = [t["routes"][0]["experts"] for t in document["tokens"]]
        np.testing.assert_array_equal(experts, trace.expert[0, 0])
        gates = [t["routes"][0]["gates"] for t in document["tokens"]]
        np.testing.assert_allclose(gates, trace.gate[0, 0], atol=1e-5)
        assert document["tokens"][-1]["nll"] is None
        np.testing.assert_allclose(
            [t["nll"] for t in document["tokens"][:-1]], trace.nll[0, :-1], rtol=1e-4
        )
        np.testing.assert_allclose(document["aux_loss"], trace.aux_loss, rtol=1e-4)


def test_stored_run_holds_the_documents(client):
    body = client.post("/v1/analyze", json={"texts": TEXTS[:2], "domain": "demo"}).json()
    run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert run["n_documents"] == 2 and run["domains"] == ["demo"] and run["pooled"]
    assert run["n_tokens"] == sum(d["n_tokens"] for d in body["documents"])
    unstored = client.post("/v1/analyze", json={"texts": TEXTS[:1], "store": False}).json()
    assert unstored["run_id"] is None


def test_interventions_are_applied_and_recorded(client):
    body = client.post(
        "/v1/analyze",
        json={"texts": TEXTS, "ablate": {"1": [0, 2]}, "capacity_factor": 0.5,
              "router_probs": True},
    ).json()  # fmt: skip
    routes = [t["routes"][0] for d in body["documents"] for t in d["tokens"]]
    assert not any(set(r["experts"]) & {0, 2} for r in routes)
    assert all(len(r["router_probs"]) == 4 for r in routes)
    assert all(r["router_probs"][0] == 0.0 for r in routes)
    assert not all(all(r["kept"]) for r in routes)  # cf 0.5 drops something
    run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert run["parameters"]["ablation"] == {"1": [0, 2]}
    assert run["parameters"]["capacity_factor"] == 0.5
    assert not run["pooled"]  # interventions stay out of the model-wide statistics


def test_no_drops_keeps_every_choice_and_is_recorded_as_such(client):
    # cf 0.25 drops; "no-drops" is unlimited capacity whatever E and the text's length
    tight = client.post("/v1/analyze", json={"texts": TEXTS, "capacity_factor": 0.25}).json()
    assert not all(
        k for d in tight["documents"] for t in d["tokens"] for k in t["routes"][0]["kept"]
    )
    body = client.post("/v1/analyze", json={"texts": TEXTS, "capacity_factor": "no-drops"}).json()
    kept = [
        k for d in body["documents"] for t in d["tokens"] for r in t["routes"] for k in r["kept"]
    ]
    assert kept and all(kept)
    run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert run["parameters"]["capacity_factor"] == "no-drops" and not run["pooled"]


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"texts": []}, 422, "at least 1"),
        ({"texts": [""]}, 422, "texts[0] is empty"),
        ({"texts": ["x"], "ablate": {"0": [1]}}, 422, "not an MoE layer"),
        ({"texts": ["x"], "ablate": {"1": [7]}}, 422, "does not exist"),
        ({"texts": ["x"], "ablate": {"1": [0, 1, 2]}}, 422, "at least 2"),
        ({"texts": ["x"], "capacity_factor": 0}, 422, "must be in (0, 64]"),
        ({"texts": ["x"], "capacity_factor": 65}, 422, "must be in (0, 64]"),
        ({"texts": ["x"], "capacity_factor": "lots"}, 422, "no-drops"),
        ({"texts": ["x"], "checkpoint": "../../etc/passwd"}, 422, "unknown checkpoint"),
        ({"texts": ["x"], "domain": "a\nb"}, 422, "pattern"),
        ({"texts": ["x"], "bogus": 1}, 422, "Extra inputs"),
        ({"texts": ["word " * 200]}, 413, "the limit is 64"),
        ({"texts": ["x"] * 65}, 413, "the limit is 64"),
    ],
)
def test_bad_input_is_a_clear_4xx(client, payload, status, message):
    response = client.post("/v1/analyze", json=payload)
    assert response.status_code == status
    assert message in str(response.json()["detail"])


def test_oversized_body_is_413_before_it_is_read(make_client):
    client = make_client(max_body_bytes=2048)
    response = client.post("/v1/analyze", json={"texts": ["a" * 5000]})
    assert response.status_code == 413 and "2048 bytes" in response.json()["detail"]


def test_malformed_json_is_422(client):
    response = client.post(
        "/v1/analyze", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_concurrent_requests_are_batched_and_equal_to_alone(make_client):
    client = make_client(batch_window_ms=200)
    texts = [f"{TEXTS[i % 3]} {i}" for i in range(8)]
    alone = [
        client.post("/v1/analyze", json={"texts": [t], "store": False}).json()["documents"][0]
        for t in texts
    ]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        together = list(
            pool.map(
                lambda t: client.post("/v1/analyze", json={"texts": [t], "store": False}).json(),
                texts,
            )
        )
    for single, batched in zip(alone, together, strict=True):
        document = batched["documents"][0]
        pairs = [
            (a["routes"][0], b["routes"][0])
            for a, b in zip(document["tokens"], single["tokens"], strict=True)
        ]
        # The same decisions exactly; weights equal up to float summation order.
        assert all(a["experts"] == b["experts"] and a["kept"] == b["kept"] for a, b in pairs)
        for field in ("gates", "probs"):
            np.testing.assert_allclose(
                [a[field] for a, _ in pairs], [b[field] for _, b in pairs], atol=1e-5
            )
        np.testing.assert_allclose(document["mean_nll"], single["mean_nll"], rtol=1e-5)
    metrics = client.get("/metrics").text
    batch_sum = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("glamlab_batch_requests_sum")
    )
    batch_count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("glamlab_batch_requests_count")
    )
    assert batch_sum == 16 and batch_count < 16  # some requests shared a forward pass


def test_generate_returns_routing_of_prompt_and_continuation(client, model_dir):
    tokenizer = checkpoint.load(model_dir / "final").tokenizer
    response = client.post(
        "/v1/generate", json={"prompt": "def add", "max_new_tokens": 6, "seed": 1, "store": True}
    )
    body = response.json()
    assert response.status_code == 200
    prompt_ids = tokenizer.encode("def add")
    n_prompt = body["prompt_tokens"]
    assert n_prompt == len(prompt_ids) and not body["stopped_at_eos"]  # all six generated
    document, tokens = body["document"], body["document"]["tokens"]
    # Every token that went through the model is routed: the prompt and the first five new
    # ones; the sixth was sampled from the fifth's output and is recorded as its prediction.
    assert document["n_tokens"] == len(tokens) == n_prompt + 6 - 1
    assert [t["position"] for t in tokens] == list(range(n_prompt + 5))
    assert [t["token_id"] for t in tokens[:n_prompt]] == prompt_ids
    generated = [t["token_id"] for t in tokens[n_prompt:]] + [tokens[-1]["predicted"]]
    assert tokenizer.decode(generated) == body["text"]
    # Greedy: each generated token is the prediction at the position before it.
    assert [t["predicted"] for t in tokens[n_prompt - 1 :]] == generated
    for token in tokens:
        (route,) = token["routes"]
        assert route["layer"] == 1 and len(set(route["experts"])) == 2
        assert set(route["experts"]) <= set(range(4)) and all(route["kept"])  # no capacity
    run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert run["source"] == "generate" and run["n_tokens"] == len(tokens)
    (stored,) = client.get(f"/v1/runs/{body['run_id']}/tokens").json()
    assert stored["document"]["id"] == document["document_id"]
    assert [(t["position"], t["token_id"], t["predicted"]) for t in stored["tokens"]] == [
        (t["position"], t["token_id"], t["predicted"]) for t in tokens
    ]
    assert [[r["experts"] for r in t["routes"]] for t in stored["tokens"]] == [
        [r["experts"] for r in t["routes"]] for t in tokens
    ]
    again = client.post(
        "/v1/generate", json={"prompt": "def add", "max_new_tokens": 6, "seed": 1}
    ).json()
    assert again["text"] == body["text"] and again["run_id"] is None
    too_long = client.post("/v1/generate", json={"prompt": "def add", "max_new_tokens": 200})
    assert too_long.status_code == 422 and "exceeds" in too_long.json()["detail"]


def test_lone_surrogates_are_a_clear_422(client):
    response = client.post(
        "/v1/analyze",
        content=b'{"texts": ["ok", "bad \\ud800 text"]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422 and "texts[1] is not valid Unicode" in response.text


def test_a_request_larger_than_one_batch_is_split_and_equal_to_alone(make_client):
    client = make_client(max_batch_size=4)
    texts = [f"{TEXTS[i % 3]} {i}" for i in range(10)]
    together = client.post("/v1/analyze", json={"texts": texts, "store": False}).json()
    for i in (0, 5, 9):
        alone = client.post("/v1/analyze", json={"texts": [texts[i]], "store": False}).json()
        got, want = together["documents"][i], alone["documents"][0]
        assert [t["token_id"] for t in got["tokens"]] == [t["token_id"] for t in want["tokens"]]
        assert [t["routes"][0]["experts"] for t in got["tokens"]] == [
            t["routes"][0]["experts"] for t in want["tokens"]
        ]
        np.testing.assert_allclose(got["aux_loss"], want["aux_loss"], rtol=1e-4)


def test_generate_runs_stay_out_of_the_model_wide_statistics(client):
    body = client.post(
        "/v1/generate", json={"prompt": "hello", "max_new_tokens": 3, "store": True,
                              "temperature": 1e-300},
    ).json()  # fmt: skip
    run = client.get(f"/v1/runs/{body['run_id']}").json()
    assert not run["pooled"] and "no capacity limit" in run["parameters"]["routing"]


def _stored_runs(client) -> list[int]:
    return [run["id"] for run in client.get("/v1/runs", params={"limit": 100}).json()["runs"]]


def test_an_idempotency_key_stores_a_run_at_most_once(client):
    body = {"texts": TEXTS[:2], "domain": "retry"}
    key = {"Idempotency-Key": "req-7f3a"}
    first = client.post("/v1/analyze", json=body, headers=key)
    again = client.post("/v1/analyze", json=body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json()["run_id"] == first.json()["run_id"]
    ids = [[d["document_id"] for d in r.json()["documents"]] for r in (first, again)]
    assert ids[0] == ids[1] and None not in ids[0]
    assert _stored_runs(client).count(first.json()["run_id"]) == 1
    assert len(_stored_runs(client)) == 1
    # Another key, or none, is another request: stored again.
    other = client.post("/v1/analyze", json=body, headers={"Idempotency-Key": "req-8"})
    plain = client.post("/v1/analyze", json=body)
    assert len({first.json()["run_id"], other.json()["run_id"], plain.json()["run_id"]}) == 3


@pytest.mark.parametrize(
    "change",
    [{"texts": [TEXTS[2]]}, {"domain": "elsewhere"}, {"capacity_factor": 0.5}],
    ids=["texts", "domain", "parameters"],
)
def test_a_key_reused_for_another_request_is_422_and_stores_nothing(client, change):
    body = {"texts": TEXTS[:1], "domain": "retry"}
    key = {"Idempotency-Key": "once"}
    assert client.post("/v1/analyze", json=body, headers=key).status_code == 200
    reused = client.post("/v1/analyze", json={**body, **change}, headers=key)
    assert reused.status_code == 422
    assert "Idempotency-Key was already used" in reused.json()["detail"]
    assert len(_stored_runs(client)) == 1


def test_concurrent_first_attempts_with_one_key_store_one_run(make_client, monkeypatch):
    # Both requests look the key up before either writes (held at a barrier), so both try to
    # store the run: the unique index refuses the second, which answers with the first's run.
    from storage import runs as run_store

    client = make_client(batch_window_ms=50)
    lookup = run_store.stored_request
    barrier, calls = threading.Barrier(2, timeout=30), []

    def held_lookup(session, key):
        found = lookup(session, key)
        calls.append(found is not None)
        if len(calls) <= 2:
            barrier.wait()
        return found

    monkeypatch.setattr(run_store, "stored_request", held_lookup)
    body = {"texts": TEXTS[:1], "domain": "race"}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda _: client.post(
                    "/v1/analyze", json=body, headers={"Idempotency-Key": "race-1"}
                ),
                range(2),
            )
        )
    assert [a.status_code for a in answers] == [200, 200]
    assert len({a.json()["run_id"] for a in answers}) == 1
    # Two first look-ups found nothing; the loser's look-up after the refused insert found it.
    assert calls == [False, False, True]
    assert len(_stored_runs(client)) == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "naïve"])
def test_a_malformed_idempotency_key_is_422(client, key):
    answer = client.post(
        "/v1/analyze",
        json={"texts": TEXTS[:1]},
        headers={"Idempotency-Key": key.encode("utf-8")},  # bytes: httpx sends them as they are
    )
    assert answer.status_code == 422
    assert _stored_runs(client) == []


def test_a_generated_nul_is_stored_as_a_replacement_character(client, monkeypatch):
    # A sampled byte-fallback piece <0x00> decodes to NUL, which PostgreSQL text refuses.
    from glam.tokenizer import Tokenizer

    decode = Tokenizer.decode
    monkeypatch.setattr(Tokenizer, "decode", lambda self, ids: decode(self, ids) + "\x00!")
    body = client.post(
        "/v1/generate", json={"prompt": "def add", "max_new_tokens": 2, "seed": 1, "store": True}
    ).json()
    stored = client.get(f"/v1/runs/{body['run_id']}/tokens").json()
    text = stored[0]["document"]["text"]
    assert text.endswith("\ufffd!") and "\x00" not in text
