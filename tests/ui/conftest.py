"""Dashboard test fixtures: a live API with a tiny model, and AppTest runs of the dashboard."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.ui import stack

APP = stack.REPO / "ui" / "app.py"
PAGE_TIMEOUT_S = 90  # a page that analyses text waits for the model (compile on first use)


@pytest.fixture(scope="session")
def ui_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path) -> Path:
    return stack.shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path)


@pytest.fixture(scope="session")
def live_api(ui_model_dir, tmp_path_factory) -> Iterator[str]:
    """The API on a free port, its built-in corpus analysed, plus one seeded run."""
    database = tmp_path_factory.mktemp("ui-db") / "api.sqlite"
    with stack.api_in_thread(ui_model_dir, f"sqlite:///{database}") as url:
        stack.wait_for_jobs(url)
        stack.seed(url)
        yield url


def _fresh_caches() -> None:
    # AppTest runs the pages in this process: caches would leak between tests (and APIs).
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def open_page(monkeypatch) -> Iterator[Callable[..., AppTest]]:
    """open_page(page, api_url, api_key=None) -> an AppTest that has run `pages/<page>.py`
    against the API, the dashboard configured with that key (GLAMLAB_API_KEY) or none."""

    def open_(page: str, api_url: str, api_key: str | None = None) -> AppTest:
        monkeypatch.setenv("GLAMLAB_API_URL", api_url)
        if api_key is None:
            monkeypatch.delenv("GLAMLAB_API_KEY", raising=False)
        else:
            monkeypatch.setenv("GLAMLAB_API_KEY", api_key)
        _fresh_caches()
        app = AppTest.from_file(str(APP), default_timeout=PAGE_TIMEOUT_S)
        app.run()
        if page != "overview":
            app.switch_page(f"pages/{page}.py").run()
        return app

    yield open_
    _fresh_caches()
