"""What docker compose runs, outside containers: the very commands, against PostgreSQL.

`glamlab db upgrade`, then `glamlab serve` with the shipped model on a fresh PostgreSQL
database, then `glamlab ui` against that API; then the smoke flow: analyse, statistics, a
dashboard page in the browser. Mandatory in CI; elsewhere skipped without PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from glam.checkpoint import SHIPPED_MODEL
from tests.e2e.test_dashboard import assert_no_errors, open_page
from tests.ui import stack

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVER = os.environ.get("GLAMLAB_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    import psycopg

    name = f"glamlab_compose_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is mandatory in CI: {error}")
        pytest.skip(f"no PostgreSQL at {SERVER}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{SERVER}/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _run(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with stack._process([str(BIN / argv[0]), *argv[1:]], env, log) as process:
        yield process


def _compose_command(service: str) -> list[list[str]]:
    """The service's command as compose runs it (sh -c 'a && exec b' -> [a, b])."""
    command = COMPOSE[service]["command"]
    if command[:2] == ["sh", "-c"]:
        return [part.replace("exec ", "").split() for part in command[2].split("&&")]
    return [command]


def test_the_compose_commands_bring_up_a_working_stack(database_url, browser, page, tmp_path):
    api_port, ui_port = stack.free_port(), stack.free_port()
    env = stack._env(DATABASE_URL=database_url)
    env.pop("GLAMLAB_API_KEY", None)
    env.pop("GLAMLAB_CHECKPOINT", None)  # the shipped model, as in the api image

    upgrade, serve = _compose_command("api")
    assert upgrade == ["glamlab", "db", "upgrade"]
    done = subprocess.run([str(BIN / "glamlab"), *upgrade[1:]], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    serve = [a if a != "8000" else str(api_port) for a in serve]
    serve = [a if a != "0.0.0.0" else "127.0.0.1" for a in serve]
    (ui_command,) = _compose_command("ui")
    ui_command = [a if a != "8501" else str(ui_port) for a in ui_command]
    ui_command = [a if a != "0.0.0.0" else "127.0.0.1" for a in ui_command]
    api_url = f"http://127.0.0.1:{api_port}"

    with _run(serve, env, tmp_path / "api.log") as api:
        stack._wait_alive(api, lambda: stack._ready(f"{api_url}/readyz"), "the API",
                          tmp_path / "api.log")  # fmt: skip
        with _run(ui_command, {**env, "GLAMLAB_API_URL": api_url}, tmp_path / "ui.log") as ui:
            dashboard = f"http://127.0.0.1:{ui_port}"
            stack._wait_alive(ui, lambda: stack._ready(f"{dashboard}/_stcore/health"),
                              "the dashboard", tmp_path / "ui.log")  # fmt: skip
            with httpx.Client(base_url=api_url, timeout=60) as client:
                card = client.get("/v1/model").json()
                assert card["name"] == SHIPPED_MODEL and card["num_experts"] == 64
                analysed = client.post(
                    "/v1/analyze", json={"texts": ["def main():\n    pass"], "domain": "smoke"}
                ).json()
                assert analysed["run_id"] is not None
                load = client.get("/v1/stats/load", params={"run_id": analysed["run_id"]}).json()
                tokens = analysed["documents"][0]["n_tokens"]
                assert [layer["routing"]["tokens"] for layer in load] == [tokens] * 3
                jobs = client.get("/v1/jobs").json()  # the built-in corpus, queued on start
                assert jobs and jobs[-1]["corpus"] == "builtin"
            open_page(page, dashboard, "")
            assert_no_errors(page)
            assert SHIPPED_MODEL in page.inner_text("body")
