"""The dashboard in a real browser, against the real API: pages, charts, tokens, escaping.

Screenshots of every page go to $GLAMLAB_UI_ARTIFACTS (default /tmp) as ui-<page>.png.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS
from ui.palette import expert_colours

# url path -> page title; "" is the overview (the default page).
PAGES = {
    "": "GLaM Routing Lab",
    "token-explorer": "Token explorer",
    "expert-profile": "Expert profile",
    "load-balance": "Load balance",
    "specialisation": "Specialisation",
    "compare": "Compare",
    "experiments": "Experiments",
    "jobs": "Jobs",
    "training": "Training history",
}
WITH_CHARTS = {"", "expert-profile", "load-balance", "specialisation", "compare", "training"}
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
CHART = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg"
XSS = "<img src=x onerror=alert(1)>"
EXPERTS = 4  # the test model's


def open_page(page, base_url: str, path: str) -> None:
    page.goto(f"{base_url}/{path}")
    page.wait_for_selector(IDLE, timeout=60_000)
    # The first session of a fresh server, opened at a page's URL, gets a "page not found"
    # notice (the pages are known once the app has run once); it makes the page inert.
    page.keyboard.press("Escape")


def assert_no_errors(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0
    errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
    assert errors == []


def analyse(page, text: str) -> None:
    page.get_by_label("Text").fill(text)
    page.get_by_role("button", name="Analyse").click()
    page.locator(".glam-token").first.wait_for(timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_loads_and_draws_its_charts(page, dashboard_url, path):
    open_page(page, dashboard_url, path)
    assert page.locator("h1").first.inner_text() == PAGES[path]
    if path == "compare":  # its first tab draws on demand; the domains tab at once
        page.get_by_role("tab", name="Domains").click()
    if path in WITH_CHARTS:
        page.wait_for_selector(CHART, timeout=30_000)  # Vega-Lite drew into the DOM
    assert_no_errors(page)
    page.screenshot(path=ARTIFACTS / f"ui-{path or 'overview'}.png")


def test_the_token_explorer_colours_a_typed_sentence(page, dashboard_url):
    open_page(page, dashboard_url, "token-explorer")
    analyse(page, "The quick brown fox jumps over the lazy dog.")
    assert_no_errors(page)
    tokens = page.locator(".glam-token")
    assert tokens.count() > 5
    palette = [hex_to_rgb(c) for c in expert_colours(EXPERTS)]
    for i in range(tokens.count()):
        expert = int(tokens.nth(i).get_attribute("data-expert"))
        background = tokens.nth(i).evaluate("el => getComputedStyle(el).backgroundColor")
        assert background == palette[expert]  # coloured by its top-1 expert
    page.wait_for_selector(CHART)  # the token x layer grid
    page.screenshot(path=ARTIFACTS / "ui-token-explorer-analysed.png")


def test_html_in_a_text_stays_text(page, dialogs, dashboard_url):
    open_page(page, dashboard_url, "token-explorer")
    analyse(page, f"Hello {XSS} world")
    page.wait_for_timeout(500)  # an injected onerror would fire by now
    assert dialogs == []
    text = page.locator(".glam-tokens").inner_text()
    assert XSS in text.replace("\u2581", " ")
    assert page.locator(".glam-tokens img, .glam-tokens script").count() == 0
    assert_no_errors(page)


def hex_to_rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"
