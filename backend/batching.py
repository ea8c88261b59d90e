"""Dynamic batching: concurrent analyse requests share one forward pass.

Requests that queue up while the model is busy (or arrive within an optional `window`)
and ask for the same routing options (checkpoint, ablation, capacity factor, router
probs) are padded into one batch. Because a
group is one sequence and each sequence's capacity comes from its own valid tokens, every
request routes exactly as it would alone. Shapes are padded to buckets (powers of two in
rows and in length) so the number of compiled programs stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from glam.buckets import length_bucket
from glam.model import Glam, forward
from glam.trace import RoutingTrace

log = logging.getLogger("glamlab")


class BatcherStopped(RuntimeError):
    """The batcher's worker is not running: no request would be answered."""


@dataclasses.dataclass(frozen=True)
class RouteRequest:
    """How to run the model: requests with equal options can share a batch."""

    checkpoint: str = "final"
    ablate: tuple[tuple[int, tuple[int, ...]], ...] = ()
    capacity_factor: float | None = None
    router_probs: bool = False


def rows_bucket(rows: int) -> int:
    return 1 << math.ceil(math.log2(max(rows, 1)))


def run_batch(
    model: Glam, sequences: Sequence[Sequence[int]], options: RouteRequest
) -> RoutingTrace:
    """One padded forward pass over `sequences`; the trace keeps only their rows."""
    width = length_bucket(max(len(s) for s in sequences), model.config.max_len)
    rows = rows_bucket(len(sequences))
    tokens = np.zeros((rows, width), np.int32)
    mask = np.zeros((rows, width), bool)
    for row, ids in enumerate(sequences):
        tokens[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    _, trace = forward(
        model,
        tokens,
        mask,
        capture=True,
        router_probs=options.router_probs,
        ablate={layer: list(experts) for layer, experts in options.ablate} or None,
        capacity_factor=options.capacity_factor,
    )
    return trace.select(slice(0, len(sequences)))


@dataclasses.dataclass
class _Pending:
    sequences: list[list[int]]
    options: RouteRequest
    future: asyncio.Future


class Batcher:
    """Collects analyse requests and runs them in as few forward passes as possible."""

    def __init__(
        self,
        resolve: Callable[[str], Glam],
        *,
        window_s: float = 0.005,
        max_rows: int = 32,
        on_batch: Callable[[int, int], None] | None = None,
    ):
        self._resolve = resolve
        self._window = window_s
        self._max_rows = max_rows
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    @property
    def alive(self) -> bool:
        """Whether the worker runs, so that submitted requests will be answered."""
        return self._worker is not None and not self._worker.done()

    async def submit(self, sequences: list[list[int]], options: RouteRequest) -> RoutingTrace:
        """The trace of `sequences` (one row each), computed in some shared batch."""
        if not self.alive:  # queued, the request would wait forever
            raise BatcherStopped("the model's batch worker is not running")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(sequences, options, future))
        return await future

    async def _run(self) -> None:
        pending: list[_Pending] = []
        try:
            while True:
                pending = []
                await self._collect(pending)
                groups: dict[RouteRequest, list[_Pending]] = {}
                for item in pending:
                    groups.setdefault(item.options, []).append(item)
                for options, items in groups.items():
                    try:
                        await self._run_group(options, items)
                    except Exception as error:  # a bug in one batch must not end the worker
                        log.exception("batch of %d request(s) failed", len(items))
                        _fail(items, error)
        finally:
            # Ending (stopped, or by what no batch should raise): answer whoever still waits.
            while not self._queue.empty():
                pending.append(self._queue.get_nowait())
            _fail(pending, BatcherStopped("the model's batch worker stopped"))

    async def _collect(self, pending: list[_Pending]) -> None:
        """Append the next batch's requests to `pending` (kept there if cancelled meanwhile)."""
        loop = asyncio.get_running_loop()
        pending.append(await self._queue.get())
        deadline = loop.time() + self._window
        while sum(len(p.sequences) for p in pending) < self._max_rows:
            # Take what queued up while the model was busy; wait for more only within
            # the window (0 by default: an idle model never waits for company).
            if not self._queue.empty():
                pending.append(self._queue.get_nowait())
                continue
            timeout = deadline - loop.time()
            if timeout <= 0:
                break
            try:
                pending.append(await asyncio.wait_for(self._queue.get(), timeout))
            except TimeoutError:
                break

    def _run_in_slices(self, sequences: list[list[int]], options: RouteRequest) -> list:
        """Forward passes of at most max_rows sequences (one request may bring more)."""
        model = self._resolve(options.checkpoint)  # may load a checkpoint: off the loop
        return [
            run_batch(model, sequences[start : start + self._max_rows], options)
            for start in range(0, len(sequences), self._max_rows)
        ]

    async def _run_group(self, options: RouteRequest, items: list[_Pending]) -> None:
        sequences = [seq for item in items for seq in item.sequences]
        try:
            parts = await asyncio.to_thread(self._run_in_slices, sequences, options)
        except Exception as error:  # delivered to every waiting request
            _fail(items, error)
            return
        if self._on_batch:
            self._on_batch(len(items), len(sequences))
        # Row r of the group is row r % max_rows of part r // max_rows.
        rows = [(part, row) for part in parts for row in range(part.batch_size)]
        start = 0
        for item in items:
            mine = rows[start : start + len(item.sequences)]
            start += len(item.sequences)
            if not item.future.done():
                item.future.set_result(_gather(mine))


def _fail(items: Sequence[_Pending], error: BaseException) -> None:
    """Deliver `error` to every request of `items` not answered yet."""
    for item in items:
        if not item.future.done():
            item.future.set_exception(error)


def _gather(rows: list[tuple[RoutingTrace, int]]) -> RoutingTrace:
    """One request's rows, from one part (the usual case) or spread over several."""
    parts = {id(part): part for part, _ in rows}
    if len(parts) == 1:
        (part,) = parts.values()
        return part.select([row for _, row in rows])
    return concatenate([part.select([row]) for part, row in rows])


def concatenate(traces: list[RoutingTrace]) -> RoutingTrace:
    """Stack traces of one sequence each along the batch, padding to the longest."""
    width = max(t.seq_len for t in traces)

    def pad(array: np.ndarray, axis: int, value: object) -> np.ndarray:
        widths = [(0, 0)] * array.ndim
        widths[axis] = (0, width - array.shape[axis])
        return np.pad(array, widths, constant_values=value)

    per_token = {"expert": 0, "gate": 0.0, "prob": 0.0, "kept": False, "entropy": 0.0}
    fields: dict[str, Any] = {
        name: np.concatenate([pad(getattr(t, name), 2, v) for t in traces], axis=1)
        for name, v in per_token.items()
    }
    fields["tokens"] = np.concatenate([pad(t.tokens, 1, 0) for t in traces])
    fields["mask"] = np.concatenate([pad(t.mask, 1, False) for t in traces])
    fields["nll"] = np.concatenate([pad(t.nll, 1, np.nan) for t in traces])
    fields["predicted"] = np.concatenate([pad(t.predicted, 1, 0) for t in traces])
    if all(t.router_probs is not None for t in traces):
        fields["router_probs"] = np.concatenate([pad(t.router_probs, 2, 0.0) for t in traces], 1)
    fields["group_aux_loss"] = np.concatenate([t.group_aux_loss for t in traces], axis=1)
    fields["group_z_loss"] = np.concatenate([t.group_z_loss for t in traces], axis=1)
    merged = RoutingTrace(
        moe_layers=traces[0].moe_layers,
        aux_loss=traces[0].aux_loss,
        z_loss=traces[0].z_loss,
        **fields,
    )
    return merged.select(slice(None))  # recomputes aux/z loss over all the rows


def freeze_ablation(ablate: dict[Any, Sequence[int]] | None) -> tuple:
    """A hashable, order-independent form of {layer: [experts]}."""
    if not ablate:
        return ()
    return tuple(sorted((int(k), tuple(sorted({int(e) for e in v}))) for k, v in ablate.items()))
