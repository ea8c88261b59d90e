"""Every page in a real browser on wide models: the shipped glam-64e (64 experts, top-2) and
an imported 256-expert / top-8 model (a tiny random DeepSeek-V3-shaped checkpoint), each
served by its own `glamlab serve` with a few stored runs of several domains.

Screenshots go to $GLAMLAB_UI_ARTIFACTS (default /tmp) as ui-<model>-<page>.png.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_dashboard import CHART, PAGES, assert_no_errors, open_page
from tests.glam.families.tiny import write_tiny_checkpoint
from tests.ui import stack

TEXTS = {
    "code": ["def add(a, b):\n    return a + b", "for i in range(10):\n    print(i)"],
    "prose": ["The quick brown fox jumps over the lazy dog.", "It was a dark and stormy night."],
    "ja": ["日本語の文章です。", "十億円の予算。"],
}


@pytest.fixture(scope="module", params=["glam-64e", "imported-256e-top8"])
def wide_dashboard(request, browser, tmp_path_factory) -> Iterator[tuple[str, dict]]:
    root = tmp_path_factory.mktemp(request.param)
    env = stack._env(
        DATABASE_URL=f"sqlite:///{root / 'api.sqlite'}",
        GLAMLAB_AUTO_MIGRATE="true",
        GLAMLAB_ANALYZE_BUILTIN_ON_START="false",  # a few stored runs are enough to draw
    )
    for name in ("GLAMLAB_API_KEY", "GLAMLAB_CHECKPOINT", "GLAMLAB_EARLY_CHECKPOINT"):
        env.pop(name, None)
    if request.param != "glam-64e":  # no GLAMLAB_CHECKPOINT: the shipped model
        checkpoint = write_tiny_checkpoint(
            root / "deepseek", family="deepseek_v3", num_experts=256, top_k=8
        )
        env["GLAMLAB_CHECKPOINT"] = str(checkpoint)
    port = stack.free_port()
    api_url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--log-level",
             "warning"]  # fmt: skip
    with stack._process(serve, env, root / "api.log") as api:
        stack._wait_alive(api, lambda: stack._ready(f"{api_url}/readyz"), "the API",
                          root / "api.log")  # fmt: skip
        for domain, texts in TEXTS.items():
            body = {"texts": texts, "domain": domain, "store": True}
            httpx.post(f"{api_url}/v1/analyze", json=body, timeout=300).raise_for_status()
        card = httpx.get(f"{api_url}/v1/model", timeout=30).json()
        with stack.dashboard_process(api_url, root / "ui.log") as url:
            yield url, card


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_renders_on_a_wide_model(page, wide_dashboard, path):
    url, card = wide_dashboard
    assert (card["num_experts"], card["top_k"]) in ((64, 2), (256, 8))
    open_page(page, url, path)
    if path == "compare":
        page.get_by_role("tab", name="Domains").click()
    drawn = {"", "expert-profile", "load-balance", "specialisation"}
    if card["name"] == "glam-64e":
        drawn.add("training")  # it ships its probe traces; an imported model has none
    if path in drawn:
        page.wait_for_selector(CHART, timeout=60_000)
    assert_no_errors(page)
    name = "glam-64e" if card["num_experts"] == 64 else "256e-top8"
    page.screenshot(path=ARTIFACTS / f"ui-{name}-{path or 'overview'}.png", full_page=True)


def test_the_token_explorer_shows_k_choices_on_a_wide_model(page, wide_dashboard):
    url, card = wide_dashboard
    open_page(page, url, "token-explorer")
    page.get_by_label("Text").fill("def add(a, b): return a + b")
    page.get_by_role("button", name="Analyse").click()
    page.locator(".glam-token").first.wait_for(timeout=120_000)
    title = page.locator(".glam-token").first.get_attribute("title")
    assert f"top-{card['top_k']} e" in title and f"top-{card['top_k'] + 1} e" not in title
    assert_no_errors(page)
