"""Corpus ingest on a writer thread, overlapped with the model's next forward pass.

The model releases the GIL while it computes and the drivers release it while the database
works, so writing batch n while batch n+1 is computed hides most of the ingest time:

    with BackgroundIngest(engine, model_name="glam-tiny", source="job") as writer:
        for tokens, mask, texts, domains in batches:
            _, trace = forward(model, tokens, mask, capture=True)
            writer.submit(trace, texts, domains)
    run_id = writer.run_id

With `atomic=True` (default) the whole run is one transaction, committed when the block
ends without error: readers never see half a corpus. Its aggregates are summed over all
batches in memory and written once at the end, in that transaction. `atomic=False` commits
every batch, for long jobs that must survive a restart (and not hold SQLite's write lock).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from glam.trace import RoutingTrace
from storage.aggregates import AggregateBuffer
from storage.ingest import add_documents, create_run, write_aggregates
from storage.schema import RunSource

_STOP = object()


class BackgroundIngest:
    """Writes submitted forward passes into one new run, on a thread of its own."""

    def __init__(
        self,
        engine: Engine,
        *,
        model_name: str,
        source: RunSource = "job",
        parameters: Mapping[str, Any] | None = None,
        label: str | None = None,
        atomic: bool = True,
        max_pending: int = 2,
    ) -> None:
        self._engine = engine
        self._run_args = {
            "model_name": model_name,
            "source": source,
            "parameters": parameters,
            "label": label,
        }
        self._atomic = atomic
        # Bounded: a slow database slows the producer down instead of filling memory.
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._abort = False
        self.run_id: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._work, name="storage-ingest", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:  # the run could not even be created
            self._queue.put(_STOP)
            self._thread.join()
            self._raise()

    def _work(self) -> None:
        try:
            with Session(self._engine) as session:
                self.run_id = create_run(session, **self._run_args)
                if not self._atomic:
                    session.commit()
                self._ready.set()
                # One transaction: sum the aggregates of all batches and write them once.
                buffer = AggregateBuffer() if self._atomic else None
                while (item := self._queue.get()) is not _STOP:
                    if not self._abort:  # after close(abort=True), drop what is queued
                        add_documents(session, self.run_id, buffer=buffer, **item)
                        if not self._atomic:
                            session.commit()
                if self._abort:
                    session.rollback()
                else:
                    if buffer is not None:
                        write_aggregates(session, self.run_id, buffer.frames())
                    session.commit()
        except BaseException as error:  # handed to the producer thread by _raise
            self._error = error
            self._ready.set()
            while self._queue.get() is not _STOP:  # unblock the producer until it stops
                pass

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError("background ingest failed") from self._error

    def submit(
        self, trace: RoutingTrace, texts: Sequence[str], domains: Sequence[str] | str
    ) -> None:
        """Queue one forward pass; blocks while `max_pending` are waiting to be written."""
        self._raise()
        self._queue.put({"trace": trace, "texts": texts, "domains": domains})

    def close(self, *, abort: bool = False) -> int:
        """Wait for the writes, commit (or roll back with `abort`), return the run id."""
        self._abort = abort
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()
        assert self.run_id is not None
        return self.run_id

    def __enter__(self) -> BackgroundIngest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(abort=exc_type is not None)
