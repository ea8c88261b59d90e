"""A live stack for the dashboard's tests: a tiny model, the API, the dashboard, seeded data.

The AppTest tests run the API in a thread of the test process (`api_in_thread`); the browser
tests run `glamlab serve` and `streamlit run` as real processes (`api_process`,
`dashboard_process`). Both get a model directory from `build_model_dir`: two checkpoints
(final, early) of a 4-layer, 4-expert GLaM with MoE layers 1 and 3, and the built-in corpus
beside them, which the API analyses on its first start.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90  # JAX import and compile on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_model_dirs: dict[Path, Path] = {}


def shared_model_dir(tmp_path_factory, small_config, tokenizer, corpus_path: Path) -> Path:
    """One model directory per test session, shared by the AppTest and the browser tests."""
    base = tmp_path_factory.getbasetemp()
    if base not in _model_dirs:
        root = tmp_path_factory.mktemp("ui-model")
        _model_dirs[base] = build_model_dir(root, small_config, tokenizer, corpus_path)
    return _model_dirs[base]


def build_model_dir(root: Path, small_config, tokenizer, corpus_path: Path) -> Path:
    """final + early checkpoints and the built-in corpus, as the shipped model lays them out."""
    from glam import checkpoint, probes
    from glam.corpus import read_corpus
    from glam.model import build

    cfg = small_config.replace(name="ui-glam", num_layers=4, max_len=64)
    checkpoint.save(root / "final", build(cfg, seed=0), tokenizer,
                    {"step": 100, "tokens_seen": 6400})  # fmt: skip
    checkpoint.save(root / "early", build(cfg, seed=1), tokenizer,
                    {"step": 3, "tokens_seen": 192})  # fmt: skip
    with corpus_path.open("rb") as src, gzip.open(root / "corpus.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    # Its routing over training: the two checkpoints route a probe set, as `glam probe` does.
    probe = probes.probe_set(read_corpus(corpus_path), tokenizer, tokens_per_domain=48,
                             seq_len=16)  # fmt: skip
    probes.record_checkpoints([root / "early", root / "final"], probe, root / probes.TRACES_FILE)
    return root


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def _ready(url: str) -> bool:
    return httpx.get(url, timeout=2).status_code == 200


def wait_for_jobs(
    api_url: str, timeout: float = START_TIMEOUT_S, api_key: str | None = None
) -> None:
    """Until every job (the built-in corpus analysis of the first start) has finished."""
    headers = {"X-API-Key": api_key} if api_key else {}

    def finished() -> bool:
        response = httpx.get(f"{api_url}/v1/jobs", headers=headers, timeout=5)
        if response.status_code == 401:  # not worth waiting for: the test forgot the key
            raise RuntimeError(f"GET /v1/jobs needs the API key: {response.text}")
        jobs = response.json()
        return bool(jobs) and all(j["status"] in ("done", "failed", "cancelled") for j in jobs)

    wait_until(finished, timeout, "the built-in corpus analysis")


def seed(api_url: str) -> None:
    """A second stored run (so runs can be compared) of texts in a domain of their own."""
    texts = ["def add(a, b):\n    return a + b", "The quick brown fox jumps over the lazy dog."]
    body = {"texts": texts, "domain": "seeded", "store": True}
    httpx.post(f"{api_url}/v1/analyze", json=body, timeout=120).raise_for_status()


def app_settings(model_dir: Path, database_url: str, **overrides: object):
    """The service's Settings for a model directory of `build_model_dir`'s layout."""
    from backend.settings import Settings

    return Settings(
        database_url=database_url,
        auto_migrate=True,
        checkpoint=model_dir / "final",
        early_checkpoint=model_dir / "early",
        **overrides,
    )


@contextlib.contextmanager
def api_in_thread(model_dir: Path, database_url: str, **overrides: object) -> Iterator[str]:
    """The API served by uvicorn in a thread of this process (Settings `overrides`, e.g. an
    api_key); yields its base URL."""
    import uvicorn

    from backend.app import create_app

    settings = app_settings(model_dir, database_url, **overrides)
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(f"{url}/readyz"), START_TIMEOUT_S, "the API")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1", **extra)
    return env


@contextlib.contextmanager
def api_process(
    model_dir: Path, database_url: str, log: Path, port: int, api_key: str | None = None
) -> Iterator[str]:
    """`glamlab serve` (the same entry point, run as a module) on `port`; no key unless given."""
    env = _env(
        DATABASE_URL=database_url,
        GLAMLAB_AUTO_MIGRATE="true",
        GLAMLAB_CHECKPOINT=str(model_dir / "final"),
        GLAMLAB_EARLY_CHECKPOINT=str(model_dir / "early"),
    )
    env.pop("GLAMLAB_API_KEY", None)
    if api_key is not None:
        env["GLAMLAB_API_KEY"] = api_key
    command = [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)]
    with _process([*command, "--log-level", "warning"], env, log) as process:
        url = f"http://127.0.0.1:{port}"
        _wait_alive(process, lambda: _ready(f"{url}/readyz"), "the API", log)
        yield url


@contextlib.contextmanager
def dashboard_process(api_url: str, log: Path, api_key: str | None = None) -> Iterator[str]:
    """The dashboard as `glamlab ui` starts it (ui.cli's streamlit command) on a free port;
    it sends `api_key` (GLAMLAB_API_KEY) when given."""
    from ui.cli import streamlit_command

    port = free_port()
    env = _env(GLAMLAB_API_URL=api_url)
    env.pop("GLAMLAB_API_KEY", None)
    if api_key is not None:
        env["GLAMLAB_API_KEY"] = api_key
    with _process(streamlit_command(port, "127.0.0.1"), env, log) as process:
        url = f"http://127.0.0.1:{port}"
        _wait_alive(process, lambda: _ready(f"{url}/_stcore/health"), "the dashboard", log)
        yield url


def _wait_alive(process: subprocess.Popen, check: Callable[[], bool], what: str, log: Path):
    def alive_and_ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        return check()

    wait_until(alive_and_ready, START_TIMEOUT_S, what)
