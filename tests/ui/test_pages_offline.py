"""Pages when there is nothing to show or nobody to ask: empty states and clear errors.

The pages run under AppTest against a fake API (httpx.MockTransport) or a closed port.
"""

from __future__ import annotations

import httpx
import pytest

from tests.ui import stack
from tests.ui.test_pages import assert_clean, chart_frames, chart_specs, charts, click
from ui.client import ApiClient

PAGES = [
    "overview", "token_explorer", "expert_profile", "load_balance", "specialisation", "compare",
    "experiments", "jobs", "training",
]  # fmt: skip
STATISTICS_PAGES = ["overview", "expert_profile", "load_balance", "specialisation"]

CARD = {
    "name": "fake-glam", "preset": "fake-glam", "config": {"capacity_factor": 2.0},
    "num_experts": 4, "top_k": 2, "moe_layers": [1, 3], "params_total": 10, "params_activated": 5,
    "checkpoint": {"name": "final", "step": 1, "sha256": "ab" * 32},
    "checkpoints": [{"name": "final", "step": 1, "sha256": "ab" * 32}],
    "max_tokens_per_text": 64, "max_texts_per_request": 8,
}  # fmt: skip
EMPTY_PROFILE = {
    "layer": 1, "expert": 0, "load": 0, "share": None, "share_baseline": 0.25, "domains": [],
    "top_input_tokens": [], "top_predicted_tokens": [], "partners": [], "examples": [],
}  # fmt: skip


def empty_store(request: httpx.Request) -> httpx.Response:
    """An API that serves a model but has stored nothing yet; writes need a key."""
    path = request.url.path
    if request.method == "POST":
        return httpx.Response(401, json={"detail": "missing or wrong X-API-Key header"})
    if path == "/v1/model":
        return httpx.Response(200, json=CARD)
    if path == "/v1/runs":
        return httpx.Response(200, json={"runs": [], "next_cursor": None})
    if path == "/v1/stats/balance":
        return httpx.Response(200, json={"balance": [], "routing": []})
    if path.startswith("/v1/experts/"):
        return httpx.Response(200, json=EMPTY_PROFILE)
    if path == "/v1/stats/training":
        return httpx.Response(404, json={"detail": "no routing history over training"})
    return httpx.Response(200, json=[])


@pytest.fixture
def fake_api(monkeypatch) -> str:
    fake = ApiClient("http://fake.test", transport=httpx.MockTransport(empty_store))
    monkeypatch.setattr(ApiClient, "from_env", classmethod(lambda cls, environ=None: fake))
    return fake.base_url


@pytest.mark.parametrize("page", PAGES)
def test_every_page_handles_an_empty_store(open_page, fake_api, page):
    app = open_page(page, fake_api)
    assert_clean(app)
    assert app.title, "the page drew nothing"


@pytest.mark.parametrize("page", STATISTICS_PAGES)
def test_statistics_pages_say_how_to_get_data(open_page, fake_api, page):
    app = open_page(page, fake_api)
    messages = " ".join(i.value for i in app.info)
    assert "No routing statistics yet" in messages and "Jobs page" in messages
    targets = {link.proto.page.replace("_", "-") for link in app.get("page_link")}
    assert targets >= {"token-explorer", "jobs"}


def test_a_missing_key_is_explained(open_page, fake_api):
    app = open_page("token_explorer", fake_api)
    app.text_area(key="explorer_text").set_value("hello")
    app = click(app, "Analyse")
    assert not app.exception
    [error] = app.error
    assert "missing or wrong X-API-Key header (HTTP 401)" in error.value
    assert "GLAMLAB_API_KEY" in error.value


@pytest.mark.parametrize("page", PAGES)
def test_an_unreachable_api_is_a_message_not_a_traceback(open_page, page):
    closed = f"http://127.0.0.1:{stack.free_port()}"  # nothing listens there
    app = open_page(page, closed)
    assert not app.exception
    errors = [e.value for e in app.error]
    assert any("cannot reach the API at " + closed in e for e in errors), errors


# What the service answers when one text is a single token: nothing of its domain is scored.
ABLATION = {
    "ablate": {"1": [0]},
    "sample": {"source": "texts", "documents": {"solo": 1, "user": 1}},
    "domains": [
        {"domain": "solo", "tokens": 0, "base_nll": None, "ablated_nll": None, "delta": None},
        {"domain": "user", "tokens": 4, "base_nll": 2.0, "ablated_nll": 2.5, "delta": 0.5},
    ],
    "rerouting": [{"layer": 1, "affected_tokens": 3, "changed_top1": 0.5,
                   "new_experts": [0.0, 0.5, 0.5, 0.0]}],
}  # fmt: skip


def test_an_ablation_with_an_unscored_domain_is_shown_not_an_error(open_page, monkeypatch):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/experiments/ablation":
            return httpx.Response(200, json=ABLATION)
        return empty_store(request)

    fake = ApiClient("http://fake.test", transport=httpx.MockTransport(handler))
    monkeypatch.setattr(ApiClient, "from_env", classmethod(lambda cls, environ=None: fake))
    app = open_page("experiments", fake.base_url)
    app.multiselect(key="ablate_1").set_value([0]).run()  # enables the button
    app.text_area(key="ablation_texts").set_value("x\nsome longer text")
    app = click(app, "Run the ablation")
    assert_clean(app)
    table = app.dataframe[0].value
    assert list(table["domain"]) == ["solo", "user"]
    assert table["nll before"].isna().tolist() == [True, False]


def _history(request: httpx.Request) -> httpx.Response:
    if request.url.path != "/v1/stats/training":
        return empty_store(request)
    points = [
        {
            "step": step,
            "tokens_seen": 64 * step,
            "layer": layer,
            "domain": domain,
            "tokens": 100,
            "saturation": min(1.0, 0.2 * layer + step / 10),
            "top1_agreement": 0.5,
            "load_cv": 1.0 / step,
            "max_vio": 1.0,
            "dead_experts": 0,
            "drop_rate": 0.1 / step,
            "router_entropy": 1.0,
            "loss": 5.0 / step,
        }
        for step in (1, 3, 10)
        for layer in (1, 3)
        for domain in ("", "code", "prose")
    ]
    body = {"model": "fake-glam", "num_experts": 4, "saturation_baseline": 0.5,
            "last_step": 10, "points": points}  # fmt: skip
    return httpx.Response(200, json=body)


def test_the_training_history_draws_each_curve_per_layer(open_page, monkeypatch):
    fake = ApiClient("http://fake.test", transport=httpx.MockTransport(_history))
    monkeypatch.setattr(ApiClient, "from_env", classmethod(lambda cls, environ=None: fake))
    app = open_page("training", fake.base_url)
    assert_clean(app)
    specs = chart_specs(app)
    assert len(specs) == 7  # six per-layer curves, saturation per domain
    first = chart_frames(charts(app)[0])
    overall = next(f for f in first if "value" in f.columns)
    assert sorted(set(overall["layer"])) == ["layer 1", "layer 3"]
    assert overall[overall["layer"] == "layer 1"]["value"].tolist() == pytest.approx(
        [0.3, 0.5, 1.0]
    )
    per_domain = next(f for f in chart_frames(charts(app)[-1]) if "value" in f.columns)
    assert sorted(set(per_domain["domain"])) == ["code", "prose"]
    assert set(per_domain["layer"]) == {"layer 3"}  # the last MoE layer by default
    assert "3 checkpoints from step 1 to 10" in app.caption[0].value
