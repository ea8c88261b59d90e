"""Browser-test fixtures: the real stack (`glamlab serve` + the dashboard) and Chromium.

Chromium comes from Debian (`apt-get install -y chromium`), driven by the `playwright`
package. Without it the browser tests are skipped, except in CI (CI=true), where they are
mandatory and fail instead.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui import stack

CHROMIUM = Path(os.environ.get("GLAMLAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("GLAMLAB_UI_ARTIFACTS", "/tmp"))


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests are mandatory in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def dashboard_url(browser, tmp_path_factory, small_config, tokenizer, corpus_path) -> Iterator[str]:
    """API and dashboard as real processes on free ports; the built-in corpus analysed."""
    root = tmp_path_factory.mktemp("e2e")
    model_dir = stack.shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path)
    api_port = stack.free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    database = f"sqlite:///{root / 'api.sqlite'}"
    # The dashboard starts first: it needs only the API's address, and is up sooner.
    with (
        stack.dashboard_process(api_url, root / "ui.log") as url,
        stack.api_process(model_dir, database, root / "api.log", api_port),
    ):
        stack.wait_for_jobs(api_url)
        yield url


@pytest.fixture
def page(browser):
    """A fresh tab with its own cookies, so its own dashboard session."""
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    yield context.new_page()
    context.close()


@pytest.fixture
def dialogs(page) -> list[str]:
    """Messages of every JavaScript dialog the tab opens (dismissed at once)."""
    messages: list[str] = []
    page.on("dialog", lambda dialog: (messages.append(dialog.message), dialog.dismiss()))
    return messages
