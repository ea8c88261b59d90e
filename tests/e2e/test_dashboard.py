"""The dashboard in a real browser, against the real API: pages, charts, tokens, escaping.

Screenshots of every page go to $GLAMLAB_UI_ARTIFACTS (default /tmp) as ui-<page>.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glam.corpus import read_corpus
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


def selectbox_text(page, label: str) -> str:
    return page.get_by_role("combobox", name=label).first.input_value()


def test_a_pasted_url_restores_the_view_and_the_url_follows_the_view(page, dashboard_url):
    open_page(page, dashboard_url, "expert-profile?profile_expert=2&profile_min=5")
    assert_no_errors(page)
    assert "expert 2" in selectbox_text(page, "Expert")
    assert page.get_by_label("Min. occurrences of a token", exact=True).input_value() == "5"
    page.reload()  # a reload is a pasted URL too
    page.wait_for_selector(IDLE, timeout=60_000)
    assert "expert 2" in selectbox_text(page, "Expert")
    # Changing the view rewrites the URL, so the link to share is the address bar's.
    page.get_by_label("Min. occurrences of a token", exact=True).fill("7")
    page.keyboard.press("Enter")
    page.wait_for_url("**profile_min=7**", timeout=30_000)
    assert "profile_expert=2" in page.url and "profile_layer=1" in page.url
    # A value the model does not have (a stale link) falls back to the page's default.
    open_page(page, dashboard_url, "specialisation?special_by=predicted&special_expert=99")
    assert_no_errors(page)
    page.get_by_role("tab", name="Vocabulary").click()
    checked = page.get_by_test_id("stRadio").filter(has_text="By").locator("input:checked")
    assert checked.evaluate("el => el.closest('label').innerText.trim()") == "predicted"
    assert "expert 0" in selectbox_text(page, "Expert")


def download_button(page, kind: str):
    """The first of the page's own download buttons for `kind` (not the chart toolbar's)."""
    return page.get_by_test_id("stDownloadButton").filter(has_text=kind).first.locator("button")


def test_charts_download_as_png_and_svg_and_tables_as_csv(page, dashboard_url):
    open_page(page, dashboard_url, "load-balance")
    page.wait_for_selector(CHART, timeout=30_000)
    with page.expect_download() as png:
        download_button(page, "PNG").click()
    assert png.value.suggested_filename == "load-heatmap.png"
    assert Path(png.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as svg:
        download_button(page, "SVG").click()
    assert Path(svg.value.path()).read_text().lstrip().startswith("<svg")
    with page.expect_download() as csv:
        download_button(page, "CSV").click()
    assert csv.value.suggested_filename == "balance.csv"
    header = Path(csv.value.path()).read_text().splitlines()[0]
    assert header.startswith("layer,CV,MaxVio")
    assert_no_errors(page)


def test_japanese_shows_as_characters_not_byte_pieces(page, dashboard_url):
    open_page(page, dashboard_url, "token-explorer")
    text = "日本語の文章、十億円。"
    analyse(page, text)
    shown = "".join(page.locator(".glam-token").all_inner_texts())
    assert "<0x" not in shown
    assert shown.replace("▁", " ").strip().endswith("十億円。")
    assert_no_errors(page)


def test_an_ablation_on_the_built_in_corpus_samples_every_domain(page, dashboard_url, corpus_path):
    open_page(page, dashboard_url, "experiments")
    picker = page.get_by_role("combobox", name="Layer 1: experts off")
    picker.fill("expert 0")  # the picker searches ids and the experts' domains
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Run the ablation").click()
    caption = page.get_by_text("built-in validation documents").first
    try:
        caption.wait_for(timeout=120_000)
    finally:
        page.screenshot(path=ARTIFACTS / "ui-experiments-ablation.png")
    domains = sorted({r.domain for r in read_corpus(corpus_path, "validation")})
    assert caption.inner_text().endswith(f"{len(domains)} domains: {', '.join(domains)}.")
    assert_no_errors(page)
    page.screenshot(path=ARTIFACTS / "ui-experiments-ablation.png")
