"""Planner statistics and dead rows of the tables that ingest rewrites, kept fresh.

Every ingest adds to the `model_*` aggregate rows in place (INSERT ... ON CONFLICT DO
UPDATE), so on PostgreSQL each run leaves a dead version of every row it touched, and the
planner's statistics describe the tables as they were at the last ANALYZE. Autovacuum
normally takes care of both, but it may be off (it is, on the machines this project is
tested on) or behind a burst of corpus jobs; then the vocabulary statistic read 4 heap pages
per row, and with statistics of near-empty tables the planner picked nested loops over
whole tables (seconds instead of milliseconds). So the writers call `StatisticsKeeper.wrote`
and, once enough rows have been written since the last pass, the keeper vacuums the
aggregate tables and analyses the large ones itself, on a thread of its own.

SQLite needs none of this: it rewrites rows in place and its planner uses the indexes
without statistics.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine, text

from glam.trace import RoutingTrace
from storage.schema import Base

log = logging.getLogger(__name__)

# Tables updated in place as runs are written (aggregate increments, a run's counts, a job's
# progress): VACUUM (ANALYZE) them.
UPDATED_IN_PLACE = (
    "runs",
    "jobs",
    *(name for name in Base.metadata.tables if name.startswith("model_")),
)
# Tables only appended to (and deleted from with their run): ANALYZE is enough.
APPENDED = (
    "documents",
    "tokens",
    "routes",
    "route_choices",
    *(name for name in Base.metadata.tables if name.startswith("run_")),
)


def route_rows(trace: RoutingTrace) -> int:
    """Rows a trace adds to `routes`: one per valid token per MoE layer."""
    return int(trace.mask.sum()) * trace.num_layers


def refresh_statistics(engine: Engine) -> float:
    """One maintenance pass; returns its duration in seconds (0 where there is nothing to do)."""
    if engine.dialect.name != "postgresql":
        return 0.0
    start = time.perf_counter()
    # VACUUM cannot run inside a transaction block.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM (ANALYZE) {', '.join(UPDATED_IN_PLACE)}"))
        connection.execute(text(f"ANALYZE {', '.join(APPENDED)}"))
    return time.perf_counter() - start


class StatisticsKeeper:
    """Counts route rows as writers report them; refreshes statistics every `every_rows`.

    `background=True` (the service) runs the pass on a daemon thread, at most one at a time,
    so no request waits for it; `background=False` runs it in the caller (benchmarks, tests).
    The first pass comes after `first_rows`: statistics of empty tables are the most wrong.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        every_rows: int = 1_000_000,
        first_rows: int = 50_000,
        background: bool = True,
    ) -> None:
        self._engine = engine
        self._every = every_rows
        self._due = first_rows
        self._background = background
        self._lock = threading.Lock()
        self._running = False
        self.written = 0
        self.passes = 0

    @property
    def active(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def wrote(self, route_rows: int) -> None:
        """Report `route_rows` rows committed; may start a maintenance pass."""
        if not self.active:
            return
        with self._lock:
            self.written += route_rows
            if self.written < self._due or self._running:
                return
            self._running = True
            self._due = self.written + self._every
        if self._background:
            threading.Thread(target=self._pass, name="statistics-keeper", daemon=True).start()
        else:
            self._pass()

    def _pass(self) -> None:
        try:
            seconds = refresh_statistics(self._engine)
            self.passes += 1
            log.info("vacuumed and analysed the routing tables in %.2f s", seconds)
        except Exception:  # a failed pass only leaves statistics as they were
            log.exception("statistics refresh failed")
        finally:
            with self._lock:
                self._running = False
