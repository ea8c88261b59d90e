"""The batcher's worker outlives any one batch's failure, and says when it is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from backend import batching
from backend.batching import Batcher, RouteRequest
from tests.storage.traces import random_trace

NO_ANSWER = "the worker ended without answering"


@pytest.fixture(autouse=True)
def fake_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forward passes without a model: a random trace with one row per sequence."""
    rng = np.random.default_rng(0)

    def run_batch(model: object, sequences: list[list[int]], options: RouteRequest):
        return random_trace(rng, batch=len(sequences), seq=max(len(s) for s in sequences))

    monkeypatch.setattr(batching, "run_batch", run_batch)


async def _answer(batcher: Batcher, sequences: list[list[int]]) -> object:
    """The request's trace or error; NO_ANSWER if the worker ends first (a dead worker ends
    the wait, so a request it would never answer cannot hang the test)."""
    request = asyncio.ensure_future(batcher.submit(sequences, RouteRequest()))
    await asyncio.wait({request, batcher._worker}, return_when=asyncio.FIRST_COMPLETED)
    if not request.done():
        request.cancel()
        return NO_ANSWER
    return request.exception() or request.result()


def _first_fails_then_second(
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[object, object, bool]:
    async def scenario() -> tuple[object, object, bool]:
        batcher = Batcher(lambda name: None, window_s=0.0, on_batch=on_batch)
        batcher.start()
        try:
            first = await _answer(batcher, [[1, 2, 3]])
            second = await _answer(batcher, [[1, 2], [3, 4, 5]])
            return first, second, batcher.alive
        finally:
            await batcher.stop()

    return asyncio.run(scenario())


def test_a_failure_after_the_forward_pass_fails_that_batch_only() -> None:
    calls: list[int] = []

    def on_batch(requests: int, rows: int) -> None:
        calls.append(rows)
        if len(calls) == 1:
            raise RuntimeError("metrics broke")

    first, second, alive = _first_fails_then_second(on_batch)
    assert isinstance(first, RuntimeError) and str(first) == "metrics broke"
    assert getattr(second, "batch_size", None) == 2
    assert alive


def test_a_failure_while_slicing_the_batch_fails_that_batch_only(monkeypatch) -> None:
    gather, calls = batching._gather, []

    def gather_once_broken(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise IndexError("bad slice")
        return gather(rows)

    monkeypatch.setattr(batching, "_gather", gather_once_broken)
    first, second, alive = _first_fails_then_second()
    assert isinstance(first, IndexError)
    assert getattr(second, "batch_size", None) == 2
    assert alive


def test_a_stopped_worker_refuses_requests_instead_of_queueing_them() -> None:
    async def scenario() -> tuple[bool, bool, object]:
        batcher = Batcher(lambda name: None, window_s=0.0)
        batcher.start()
        running = batcher.alive
        await batcher.stop()
        return running, batcher.alive, await _answer(batcher, [[1]])

    running, alive, answer = asyncio.run(scenario())
    assert running and not alive
    assert isinstance(answer, batching.BatcherStopped), answer


def test_readiness_fails_when_the_worker_is_gone(client) -> None:
    assert client.get("/readyz").json()["checks"]["batcher"] is True
    client.portal.call(client.app.state.glamlab.batcher.stop)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["batcher"] is False
    analysed = client.post("/v1/analyze", json={"texts": ["hello"], "store": False})
    assert analysed.status_code == 503, analysed.text
