"""A small real model directory (final + early checkpoints + built-in corpus) and clients."""

from __future__ import annotations

import contextlib
import gzip
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings
from glam import checkpoint
from glam.model import build
from storage import db


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, small_config, tokenizer, corpus_path) -> Path:
    root = tmp_path_factory.mktemp("models")
    cfg = small_config.replace(name="test-glam", max_len=64)
    checkpoint.save(root / "final", build(cfg, seed=0), tokenizer, {"step": 100})
    checkpoint.save(root / "early", build(cfg, seed=1), tokenizer, {"step": 3})
    with corpus_path.open("rb") as src, gzip.open(root / "corpus.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    return root


@pytest.fixture
def database_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    db.upgrade(url)
    return url


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A migrated PostgreSQL schema of its own (mandatory in CI, skipped elsewhere without a
    server), dropped afterwards."""
    from tests.storage.conftest import PG_URL, require_postgres

    require_postgres()
    schema = f"glam_api_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(PG_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    db.upgrade(url)
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def make_client(model_dir, database_url) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a TestClient with the lifespan running."""
    clients: list[TestClient] = []

    def make(**overrides) -> TestClient:
        settings = Settings(
            database_url=overrides.pop("database_url", database_url),
            checkpoint=overrides.pop("checkpoint", model_dir / "final"),
            early_checkpoint=overrides.pop("early_checkpoint", model_dir / "early"),
            analyze_builtin_on_start=overrides.pop("analyze_builtin_on_start", False),
            **overrides,
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        with contextlib.suppress(Exception):  # a test may have shut one down already
            client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
