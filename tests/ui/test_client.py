"""The REST client: requests it sends, results it parses, errors it raises (no server)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.ui import samples
from ui import schemas as s
from ui.client import ApiClient, ApiError, Scope

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, api_key: str | None = None) -> ApiClient:
    return ApiClient("http://api.test", api_key, transport=httpx.MockTransport(handler))


def recording(response: httpx.Response) -> tuple[list[httpx.Request], Handler]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    return seen, handler


def test_configuration_comes_from_the_environment():
    client = ApiClient.from_env({"GLAMLAB_API_URL": "http://x:9/", "GLAMLAB_API_KEY": "k"})
    assert client.base_url == "http://x:9"
    assert client._http.headers["X-API-Key"] == "k"
    assert ApiClient.from_env({}).base_url == "http://127.0.0.1:8000"
    assert "X-API-Key" not in ApiClient.from_env({})._http.headers


def test_a_scope_becomes_repeated_query_parameters():
    seen, handler = recording(httpx.Response(200, json=[]))
    scope = Scope(layers=(1, 3), run_ids=(7,), domains=("code", "chat-ja"), model="m")
    client_for(handler).domains(scope)
    query = seen[0].url.params
    assert query.get_list("layer") == ["1", "3"]
    assert query.get_list("domain") == ["code", "chat-ja"]
    assert (query["run_id"], query["model"]) == ("7", "m")
    assert seen[0].url.path == "/v1/stats/domains"


def test_writes_carry_the_api_key_and_a_json_body():
    result = {
        "run_id": None,
        "model": "m",
        "checkpoint": "final",
        "moe_layers": [1, 3],
        "num_experts": 4,
        "top_k": 2,
        "documents": [],
    }
    seen, handler = recording(httpx.Response(200, json=result))
    out = client_for(handler, api_key="secret").analyze(
        ["a b"], store=False, ablate={1: [0, 2]}, capacity_factor=0.5
    )
    assert isinstance(out, s.AnalyzeResult) and out.moe_layers == [1, 3]
    request = seen[0]
    assert request.method == "POST" and request.headers["X-API-Key"] == "secret"
    body = json.loads(request.content)
    assert body["texts"] == ["a b"] and body["store"] is False
    assert body["ablate"] == {"1": [0, 2]} and body["capacity_factor"] == 0.5


def test_reads_carry_the_api_key_too():
    # A key-protected API refuses reads without it: stored texts, exports, statistics.
    seen, handler = recording(httpx.Response(200, json={"runs": [], "next_cursor": None}))
    client = client_for(handler, api_key="secret")
    client.runs()
    client.export_run(3)
    with pytest.raises(ApiError):  # the canned answer is no document list; the request counts
        client.run_tokens(3)
    assert [r.url.path for r in seen] == ["/v1/runs", "/v1/runs/3/export", "/v1/runs/3/tokens"]
    assert all(r.method == "GET" and r.headers["X-API-Key"] == "secret" for r in seen)


def test_a_server_error_is_raised_with_its_detail():
    _, handler = recording(httpx.Response(404, json={"detail": "no run 99"}))
    with pytest.raises(ApiError) as caught:
        client_for(handler).run(99)
    assert caught.value.status == 404
    assert str(caught.value) == "no run 99 (HTTP 404)"


def test_validation_errors_are_joined_into_one_line():
    detail = [
        {"loc": ["body", "texts", 0], "msg": "Value error, texts[0] is empty"},
        {"loc": ["query", "limit"], "msg": "Input should be greater than 0"},
    ]
    _, handler = recording(httpx.Response(422, json={"detail": detail}))
    with pytest.raises(ApiError) as caught:
        client_for(handler).analyze([""])
    assert str(caught.value) == (
        "texts.0: Value error, texts[0] is empty; limit: Input should be greater than 0 (HTTP 422)"
    )


def test_a_non_json_error_keeps_its_text():
    _, handler = recording(httpx.Response(502, text="Bad Gateway from proxy"))
    with pytest.raises(ApiError, match="Bad Gateway from proxy"):
        client_for(handler).model()


def test_an_unreachable_api_says_where_it_looked_and_what_to_do():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ApiError) as caught:
        client_for(refuse).model()
    assert caught.value.status is None
    assert "http://api.test" in str(caught.value) and "glamlab serve" in str(caught.value)


def test_a_response_of_the_wrong_shape_is_an_api_error_not_a_crash():
    _, handler = recording(httpx.Response(200, json={"balance": "oops", "routing": []}))
    with pytest.raises(ApiError, match="unexpected response shape at balance"):
        client_for(handler).balance()


def test_list_results_are_parsed_into_models():
    row = samples.layer_load_stats(1, [1, 2, 3, 4]).model_dump()
    _, handler = recording(httpx.Response(200, json=[row]))
    [stats] = client_for(handler).load()
    assert isinstance(stats, s.LayerLoadStats)
    assert [e.load for e in stats.load.experts] == [1, 2, 3, 4]


def test_runs_page_by_cursor():
    seen, handler = recording(httpx.Response(200, json={"runs": [], "next_cursor": None}))
    client_for(handler).runs(limit=10, cursor=42, source="job")
    assert dict(seen[0].url.params) == {"limit": "10", "cursor": "42", "source": "job"}


def test_export_returns_the_bytes_and_delete_returns_nothing():
    seen, handler = recording(httpx.Response(200, content=b"a,b\n1,2\n"))
    assert client_for(handler).export_run(3, "csv") == b"a,b\n1,2\n"
    assert seen[0].url.params["format"] == "csv"
    seen, handler = recording(httpx.Response(204))
    assert client_for(handler).delete_run(3) is None
    assert seen[0].method == "DELETE" and seen[0].url.path == "/v1/runs/3"


def test_an_upload_job_sends_the_file_as_multipart():
    job = {
        "job_id": 1,
        "status": "queued",
        "done": 0,
        "total": 1,
        "error": None,
        "run_id": None,
        "corpus": "upload",
    }
    seen, handler = recording(httpx.Response(202, json=job))
    out = client_for(handler).start_job(corpus="upload", limit=5, upload=b'{"text": "x"}\n')
    assert out.active
    body = seen[0].content
    assert seen[0].headers["content-type"].startswith("multipart/form-data")
    assert b'name="corpus"' in body and b"upload" in body
    assert b'name="limit"' in body and b'filename="upload.jsonl"' in body
    assert b'{"text": "x"}' in body


def test_an_expert_profile_takes_its_layer_from_the_path_only():
    seen, handler = recording(httpx.Response(500, json={"detail": "boom"}))
    with pytest.raises(ApiError):
        client_for(handler).expert(3, 2, Scope(layers=(1,), domains=("code",)))
    assert seen[0].url.path == "/v1/experts/3/2"
    assert "layer" not in seen[0].url.params and seen[0].url.params["domain"] == "code"
