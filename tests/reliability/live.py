"""Live servers for the load and fault tests: `glamlab serve`, PostgreSQL databases, clients.

- `serve`: the real `glamlab serve` process (as `tests.ui.stack.api_process` runs it), with
  extra settings in its environment, yielding the process too, so a test can SIGKILL it.
- `fresh_database`: an empty database on the shared PostgreSQL server, dropped afterwards.
- `PrivatePostgres`: a PostgreSQL instance of the test's own (initdb in a temporary
  directory), which a test may stop and start without disturbing anyone else's server.
- `Tally`, `clients`: what concurrent client threads saw (status codes, latencies per
  kind); `poll_until`: bounded waits that return how long they took; `warm_up`: compile the
  model's batch shapes before anything is timed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.ui import stack

IN_CI = os.environ.get("CI") == "true"
SHARED_PG = os.environ.get("GLAMLAB_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
PG_BIN = Path(os.environ.get("GLAMLAB_PG_BIN", "/usr/lib/postgresql/15/bin"))


def unavailable(message: str) -> NoReturn:
    """Skip a test whose infrastructure is missing, except in CI, where it is mandatory."""
    if IN_CI:
        pytest.fail(f"{message} (mandatory in CI)")
    pytest.skip(message)


# --- the API as a process ------------------------------------------------------------------


@dataclasses.dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path


@contextlib.contextmanager
def serve(model_dir: Path, database_url: str, log: Path, **settings: str) -> Iterator[Server]:
    """`glamlab serve` on a free port; `settings` become GLAMLAB_<NAME> variables."""
    port = stack.free_port()
    env = stack._env(
        DATABASE_URL=database_url,
        GLAMLAB_AUTO_MIGRATE="true",
        GLAMLAB_CHECKPOINT=str(model_dir / "final"),
        GLAMLAB_EARLY_CHECKPOINT=str(model_dir / "early"),
        **{f"GLAMLAB_{name.upper()}": value for name, value in settings.items()},
    )
    env.pop("GLAMLAB_API_KEY", None)
    command = [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)]
    with stack._process([*command, "--log-level", "warning"], env, log) as process:
        url = f"http://127.0.0.1:{port}"
        stack._wait_alive(process, lambda: stack._ready(f"{url}/readyz"), "the API", log)
        yield Server(url, process, log)


# --- PostgreSQL ----------------------------------------------------------------------------


def _psycopg_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new database on the shared server (SQLAlchemy URL); dropped, connections and all."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(f"{SHARED_PG}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable(f"no PostgreSQL at {SHARED_PG}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _psycopg_url(f"{SHARED_PG}/{name}")
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a port of its own.

    PostgreSQL refuses to run as root: as root, it runs as the `postgres` OS user (runuser);
    otherwise as the current user. Its data and socket directories live in a temporary
    directory that user owns; `close` stops the server and removes them.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="glamlab-pg-"))
        self.data = self.root / "data"
        self.port = stack.free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    @staticmethod
    def missing() -> str | None:
        """Why a private instance cannot be made here, or None."""
        if not (PG_BIN / "initdb").exists():
            return f"no PostgreSQL binaries in {PG_BIN} (set GLAMLAB_PG_BIN)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root, and no runuser to run PostgreSQL as the postgres user"
        return None

    def _as_postgres(self, *argv: str, timeout: float = 60) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_user, *argv], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def init(self) -> None:
        # fsync off: the test kills the server, not the machine, so data reaches the OS either
        # way, and the cluster is thrown away after the test.
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # not running (any more) is fine
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private instance (skips outside CI, fails in CI, if none can be made)."""
    missing = PrivatePostgres.missing()
    if missing:
        unavailable(missing)
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


# --- clients -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    """count, p50, p99 and max of latencies given in seconds, as milliseconds."""
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 1),
        "p99_ms": round(percentile(values, 99) * 1000, 1),
        "max_ms": round(max(values, default=0.0) * 1000, 1),
    }


class Tally:
    """Status codes and latencies per request kind, from many client threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.failures: list[str] = []  # the first few unexpected answers, for the message

    def add(self, kind: str, status: int, seconds: float, detail: str = "") -> None:
        with self._lock:
            self.latencies[kind].append(seconds)
            self.statuses[kind][status] += 1
            if not 200 <= status < 300 and len(self.failures) < 10:
                self.failures.append(f"{kind}: {status} {detail[:300]}")

    def count(self, predicate: Callable[[int], bool] = lambda _status: True) -> int:
        with self._lock:
            return sum(
                n for codes in self.statuses.values() for s, n in codes.items() if predicate(s)
            )

    def codes(self) -> dict[str, dict[int, int]]:
        with self._lock:
            return {kind: dict(codes) for kind, codes in self.statuses.items()}


@contextlib.contextmanager
def clients(n: int, worker: Callable[[int, threading.Event], None]) -> Iterator[threading.Event]:
    """`n` client threads running `worker(index, stop)` until the block ends (or one fails).

    Yields the stop event: it is set when the block ends or when a worker raised; the
    first worker exception is re-raised when the block ends.
    """
    stop = threading.Event()
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            worker(index, stop)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    try:
        yield stop
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a client thread did not stop"


def since(started: float) -> float:
    return time.perf_counter() - started


def poll_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> float:
    """Call `check` until it is true; returns the seconds it took. TimeoutError after `timeout`."""
    started = time.perf_counter()
    while since(started) < timeout:
        if check():
            return since(started)
        time.sleep(every)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")


def warm_up(url: str, text: str, rows: tuple[int, ...] = (1, 2, 4, 8)) -> None:
    """Compile the forward passes of batches of `rows` texts like `text` before measuring:
    the first batch of each shape compiles for about a second, which is not what a test of
    the database's faults is about."""
    for n in rows:
        body = {"texts": [text] * n, "domain": "warm-up", "store": False}
        httpx.post(f"{url}/v1/analyze", json=body, timeout=120).raise_for_status()
