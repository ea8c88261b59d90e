"""Browser-test fixtures: the real stack (`glamlab serve` + the dashboard).

Chromium itself (`browser`, `page`, `dialogs`) comes from tests/conftest.py, shared with the
reliability suite's escaping test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ui import stack

ARTIFACTS = Path(os.environ.get("GLAMLAB_UI_ARTIFACTS", "/tmp"))


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
