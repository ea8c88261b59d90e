"""The dashboard against an API whose reads need a key (GLAMLAB_API_KEY set on both sides).

With a key configured the API refuses every /v1 read without it, stored texts included; the
dashboard's client sends GLAMLAB_API_KEY on every request, so each page works as it does
against an open API, and without the key a page says which setting is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.ui import stack
from tests.ui.test_pages import assert_clean
from tests.ui.test_pages_offline import PAGES

KEY = "dashboard-key"


@pytest.fixture(scope="module")
def keyed_api(ui_model_dir, tmp_path_factory) -> Iterator[str]:
    """The API with a key (reads protected, the default), its built-in corpus analysed."""
    database = tmp_path_factory.mktemp("ui-keyed-db") / "api.sqlite"
    with stack.api_in_thread(ui_model_dir, f"sqlite:///{database}", api_key=KEY) as url:
        stack.wait_for_jobs(url, api_key=KEY)
        yield url


def test_the_api_refuses_the_dashboards_reads_without_the_key(keyed_api):
    # What the pages below rely on: without the key they would get nothing to show.
    for path in ("/v1/model", "/v1/runs", "/v1/stats/load"):
        assert httpx.get(f"{keyed_api}{path}", timeout=10).status_code == 401, path


@pytest.mark.parametrize("page", PAGES)
def test_every_page_reads_with_the_dashboards_key(open_page, keyed_api, page):
    app = open_page(page, keyed_api, api_key=KEY)
    assert_clean(app)


def test_the_overview_shows_what_it_read_with_the_key(open_page, keyed_api):
    metrics = {m.label: m.value for m in open_page("overview", keyed_api, api_key=KEY).metric}
    assert metrics["Model"] == "ui-glam" and metrics["Runs"] == "1"  # the built-in corpus job


def test_a_dashboard_without_the_key_says_to_set_it(open_page, keyed_api):
    app = open_page("overview", keyed_api)
    assert not app.exception
    assert app.error, "the overview showed no error without the key"
    message = app.error[0].value
    assert "(HTTP 401)" in message and "GLAMLAB_API_KEY" in message, message
