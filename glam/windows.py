"""Documents longer than the model's context: one rule, used by corpus jobs and experiments.

A document of n > max_len tokens is routed as overlapping windows of at most max_len tokens.
Each window after the first starts `overlap` tokens before the previous one ended and reports
only the tokens past that end, so every token is reported exactly once and every token after
the first window has at least `overlap` tokens of context (a quarter of the window by
default; a token's routing depends on its context through attention). A position's next-token
loss and prediction (of the token after it) come from the window that reports that next
token, so no prediction is lost at a window boundary.

`stitch` puts the reported parts back together as one [1, n] trace with positions 0..n-1 of
the document. Routing itself is the window's: capacity is counted per window (a window is
one group), and the per-sequence aux and z losses of the document are the means of its
windows', weighted by the tokens each reports.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from glam.trace import RoutingTrace


@dataclasses.dataclass(frozen=True)
class Window:
    start: int  # first document token in the window
    stop: int  # one past its last
    reports_from: int  # first document token whose routing this window reports


def default_overlap(max_len: int) -> int:
    return max_len // 4


def plan(n_tokens: int, max_len: int, overlap: int | None = None) -> list[Window]:
    """The windows of a document of `n_tokens` tokens (one window when it fits)."""
    if max_len < 1:
        raise ValueError("max_len must be at least 1")
    overlap = default_overlap(max_len) if overlap is None else overlap
    if not 0 <= overlap < max_len:
        raise ValueError(f"overlap must be in [0, max_len), got {overlap}")
    windows = [Window(0, min(n_tokens, max_len), 0)]
    while windows[-1].stop < n_tokens:
        end = windows[-1].stop
        start = end - overlap
        windows.append(Window(start, min(start + max_len, n_tokens), end))
    return windows


def split(ids: list[int], max_len: int, overlap: int | None = None) -> list[list[int]]:
    """The token ids of each window of `ids`, in order."""
    return [ids[w.start : w.stop] for w in plan(len(ids), max_len, overlap)]


def plan_documents(
    documents: list[list[int]], max_len: int
) -> tuple[list[list[Window]], list[list[int]]]:
    """Each document's windows, and the token ids of all windows in order (to run in
    batches of any size; `stitch_documents` takes their one-row traces in the same order)."""
    plans = [plan(len(ids), max_len) for ids in documents]
    sequences = [
        ids[w.start : w.stop] for ids, windows in zip(documents, plans, strict=True)
        for w in windows
    ]  # fmt: skip
    return plans, sequences


def stitch_documents(rows: list[RoutingTrace], plans: list[list[Window]]) -> list[RoutingTrace]:
    """Every document's [1, n] trace from the one-row traces of all windows, in order."""
    if len(rows) != sum(len(p) for p in plans):
        raise ValueError(f"{len(rows)} window traces for {sum(len(p) for p in plans)} windows")
    out, first = [], 0
    for windows in plans:
        out.append(stitch(rows[first : first + len(windows)], windows))
        first += len(windows)
    return out


def rows_of(trace: RoutingTrace) -> list[RoutingTrace]:
    """A batch trace as one-row traces."""
    return [trace.select([row]) for row in range(trace.batch_size)]


def stitch(rows: list[RoutingTrace], windows: list[Window]) -> RoutingTrace:
    """One document's trace [1, n] from the traces of its windows (`rows[i]`: window i's
    one-row trace, its first `stop - start` positions valid)."""
    if len(rows) != len(windows) or not rows:
        raise ValueError("one trace per window, at least one")
    if len(rows) == 1:
        return _trim(rows[0], windows[0].stop - windows[0].start)
    pieces = {name: [] for name in _PER_TOKEN}
    following = {name: [] for name in _NEXT_TOKEN}
    weights = []
    for index, (row, window) in enumerate(zip(rows, windows, strict=True)):
        length = window.stop - window.start
        row = _trim(row, length)
        reported = slice(window.reports_from - window.start, length)
        for name in _PER_TOKEN:
            array = getattr(row, name)
            pieces[name].append(array[..., reported, :] if array.ndim == 4 else
                                array[..., reported])  # fmt: skip
        # Position t predicts token t + 1: this window reports the predictions of the
        # tokens it reports, i.e. positions from reports_from - 1 (the previous window's
        # last position, where that window had no next token).
        first = max(reported.start - 1, 0)
        last = length if index + 1 == len(rows) else length - 1  # the document's end: NaN
        for name in _NEXT_TOKEN:
            following[name].append(getattr(row, name)[:, first:last])
        weights.append(length - reported.start)
    joined = {name: np.concatenate(parts, axis=-2 if parts[0].ndim == 4 else -1)
              for name, parts in pieces.items()}  # fmt: skip
    share = np.asarray(weights, np.float64) / sum(weights)
    group_aux = group_z = None
    if all(r.group_aux_loss is not None and r.group_z_loss is not None for r in rows):
        group_aux = sum(w * r.group_aux_loss for w, r in zip(share, rows, strict=True))
        group_z = sum(w * r.group_z_loss for w, r in zip(share, rows, strict=True))
        group_aux, group_z = group_aux.astype(np.float32), group_z.astype(np.float32)
    return dataclasses.replace(
        rows[0],
        **joined,
        router_probs=None,
        **{name: np.concatenate(parts, axis=-1) for name, parts in following.items()},
        aux_loss=np.asarray(sum(w * r.aux_loss for w, r in zip(share, rows, strict=True)),
                            np.float32),
        z_loss=np.asarray(sum(w * r.z_loss for w, r in zip(share, rows, strict=True)),
                          np.float32),
        group_aux_loss=group_aux,
        group_z_loss=group_z,
    )  # fmt: skip


def stack(traces: list[RoutingTrace]) -> RoutingTrace:
    """One-row traces of different lengths as one batch [B, max n], padded (mask False)."""
    if not traces:
        raise ValueError("nothing to stack")
    width = max(t.seq_len for t in traces)
    padded = [_pad(t, width) for t in traces]
    fields = {
        name: np.concatenate([getattr(t, name) for t in padded], axis=1 if name in _LAYERED else 0)
        for name in (*_PER_TOKEN, *_NEXT_TOKEN)
    }
    has_groups = all(t.group_aux_loss is not None and t.group_z_loss is not None for t in traces)
    merged = dataclasses.replace(
        padded[0],
        **fields,
        router_probs=None,
        aux_loss=np.mean([t.aux_loss for t in traces], axis=0).astype(np.float32),
        z_loss=np.mean([t.z_loss for t in traces], axis=0).astype(np.float32),
        group_aux_loss=np.concatenate([t.group_aux_loss for t in traces], axis=1)
        if has_groups
        else None,
        group_z_loss=np.concatenate([t.group_z_loss for t in traces], axis=1)
        if has_groups
        else None,
    )
    # With each row's own losses, the batch's are their means as RoutingTrace.select has them.
    return merged.select(slice(None)) if has_groups else merged


# Fields per token position: of the token there, and of the prediction made there (of the
# next token), which stitch takes from another window. router_probs is dropped.
_PER_TOKEN = ("tokens", "mask", "expert", "gate", "prob", "kept", "entropy")
_NEXT_TOKEN = ("nll", "predicted")
_LAYERED = ("expert", "gate", "prob", "kept", "entropy")


def _trim(trace: RoutingTrace, length: int) -> RoutingTrace:
    """A one-row trace cut to its first `length` positions."""
    fields = {}
    for name in (*_PER_TOKEN, *_NEXT_TOKEN):
        array = getattr(trace, name)
        fields[name] = array[..., :length, :] if array.ndim == 4 else array[..., :length]
    return dataclasses.replace(trace, router_probs=None, **fields)


def _pad(trace: RoutingTrace, width: int) -> RoutingTrace:
    extra = width - trace.seq_len
    if not extra:
        return trace
    fields = {}
    for name in (*_PER_TOKEN, *_NEXT_TOKEN):
        array = getattr(trace, name)
        widths = [(0, 0)] * array.ndim
        widths[-2 if array.ndim == 4 else -1] = (0, extra)
        fill = np.nan if name == "nll" else 0
        fields[name] = np.pad(array, widths, constant_values=fill)
    return dataclasses.replace(trace, router_probs=None, **fields)
