"""Aggregate counts of one `RoutingTrace`, computed in numpy before anything is written.

`summarize` turns a trace (row b of the batch = one document) into one column frame per
aggregate family of `storage.schema_aggregates`: the keys and values of every row to add to
the `run_*` and `model_*` tables. Only rows with something to count are emitted. Counts are
over valid tokens (`trace.mask`); padding takes no part anywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from glam.trace import RoutingTrace
from storage.schema_aggregates import FAMILIES, POSITION_BUCKET, TOKEN_KINDS

Frame = dict[str, np.ndarray]

# Above this many possible keys, tallies sort the codes instead of allocating a dense array.
_DENSE_LIMIT = 1 << 22


def _tally(
    keys: Sequence[np.ndarray], sizes: Sequence[int], weights: Sequence[np.ndarray | None]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sum each of `weights` (None: count 1) per distinct key tuple.

    Returns the distinct key tuples (one array per key) that occur at least once, and the
    sums per weight. Keys are non-negative ints below their size.
    """
    code = np.zeros(len(keys[0]), dtype=np.int64)
    for key, size in zip(keys, sizes, strict=True):
        code = code * size + key.astype(np.int64)
    total = int(np.prod(np.asarray(sizes, dtype=np.float64)))
    if total <= _DENSE_LIMIT:
        hits = np.bincount(code, minlength=total)
        present = np.flatnonzero(hits)
        sums = [
            hits[present] if w is None else np.bincount(code, weights=w, minlength=total)[present]
            for w in weights
        ]
    else:
        present, inverse = np.unique(code, return_inverse=True)
        sums = [
            np.bincount(inverse).astype(np.int64) if w is None else np.bincount(inverse, weights=w)
            for w in weights
        ]
    decoded = np.unravel_index(present, tuple(sizes)) if len(present) else [present] * len(keys)
    return [np.asarray(k, dtype=np.int64) for k in decoded], sums


def _int(values: np.ndarray) -> np.ndarray:
    return np.rint(values).astype(np.int64)


def _token_losses(trace: RoutingTrace, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The aux and z loss each valid token counts with, [L*T] layer-major.

    A token counts with its own row's losses: a batch holds documents of several domains, and
    the batch's loss would give them all the same mix. A trace without per-row losses (older
    traces) has only the batch's to give.
    """
    if trace.group_aux_loss is not None and trace.group_z_loss is not None:
        aux, z = trace.group_aux_loss[:, rows], trace.group_z_loss[:, rows]  # [L, T]
    else:
        ones = np.ones((1, len(rows)))
        aux, z = trace.aux_loss[:, None] * ones, trace.z_loss[:, None] * ones
    return aux.astype(np.float64).ravel(), z.astype(np.float64).ravel()


def summarize(
    trace: RoutingTrace, domain_of_row: np.ndarray, domain_names: Sequence[str], num_experts: int
) -> dict[str, Frame]:
    """Aggregate frames of `trace`, keyed like `storage.schema_aggregates.FAMILIES`.

    `domain_of_row[b]` is the index into `domain_names` of document b's domain. Domain columns
    hold the names; layer columns hold absolute layer indices (`trace.moe_layers`).
    """
    n_layers, n_dom, n_exp = trace.num_layers, len(domain_names), num_experts
    names = np.asarray(list(domain_names), dtype=object)
    layers = np.asarray(trace.moe_layers, dtype=np.int64)
    rows, cols = np.nonzero(trace.mask)  # valid tokens, document-major
    n_tok = len(rows)
    dom = np.asarray(domain_of_row, dtype=np.int64)[rows]
    k = trace.top_k
    expert = trace.expert[:, rows, cols, :].astype(np.int64)  # [L, T, k]
    dropped = ~trace.kept[:, rows, cols, :]  # [L, T, k]
    layer_ord = np.repeat(np.arange(n_layers), n_tok)  # [L*T], layer-major like .ravel()
    dom_l = np.tile(dom, n_layers)
    frames: dict[str, Frame] = {}

    # expert: tokens choosing each expert at each rank, and how many of those were kept
    (lo, do, ex, ra), (chosen, kept) = _tally(
        [
            np.repeat(layer_ord, k),
            np.repeat(dom_l, k),
            expert.ravel(),
            np.tile(np.arange(k), n_layers * n_tok),
        ],
        [n_layers, n_dom, n_exp, k],
        [None, (~dropped).ravel()],
    )
    frames["expert"] = {
        "layer": layers[lo],
        "domain": names[do],
        "expert": ex,
        "rank": ra,
        "chosen": chosen,
        "kept": _int(kept),
    }

    # layer: token counts, entropy and losses, agreement of adjacent tokens
    entropy = trace.entropy[:, rows, cols].astype(np.float64).ravel()
    aux_tok, z_tok = _token_losses(trace, rows)
    (lo, do), (tokens, ent, aux, z) = _tally(
        [layer_ord, dom_l], [n_layers, n_dom], [None, entropy, aux_tok, z_tok]
    )
    pair_b, pair_s = np.nonzero(trace.mask[:, :-1] & trace.mask[:, 1:])
    a = trace.expert[:, pair_b, pair_s, :].astype(np.int64)  # [L, P, k]
    b = trace.expert[:, pair_b, pair_s + 1, :].astype(np.int64)
    same = a[..., 0] == b[..., 0]
    shared = (a[..., :, None] == b[..., None, :]).any(axis=(-2, -1))
    pair_layer = np.repeat(np.arange(n_layers), len(pair_b))
    pair_dom = np.tile(np.asarray(domain_of_row, dtype=np.int64)[pair_b], n_layers)
    pair_counts = np.zeros((3, n_layers, n_dom), dtype=np.int64)
    (pl, pd), (n_pairs, n_same, n_shared) = _tally(
        [pair_layer, pair_dom], [n_layers, n_dom], [None, same.ravel(), shared.ravel()]
    )
    pair_counts[:, pl, pd] = [n_pairs, _int(n_same), _int(n_shared)]
    frames["layer"] = {
        "layer": layers[lo],
        "domain": names[do],
        "tokens": tokens,
        "entropy_sum": ent,
        "aux_sum": aux,
        "z_sum": z,
        "pairs": pair_counts[0, lo, do],
        "same_top1": pair_counts[1, lo, do],
        "shared_topk": pair_counts[2, lo, do],
    }

    # position: tokens, dropped assignments and dropped top-1 choices per position bucket
    bucket = np.tile(cols // POSITION_BUCKET, n_layers)
    n_buckets = trace.seq_len // POSITION_BUCKET + 1
    (lo, do, bu), (tokens, drops, drops_top1) = _tally(
        [layer_ord, dom_l, bucket],
        [n_layers, n_dom, n_buckets],
        [None, dropped.sum(axis=-1).ravel(), dropped[..., 0].ravel()],
    )
    frames["position"] = {
        "layer": layers[lo],
        "domain": names[do],
        "bucket": bu,
        "tokens": tokens,
        "dropped": _int(drops),
        "dropped_top1": _int(drops_top1),
    }

    # coactivation: every unordered pair of a token's k choices (distinct experts)
    first, second = np.triu_indices(k, k=1)
    lower = np.minimum(expert[..., first], expert[..., second]).ravel()  # [L*T*pairs]
    upper = np.maximum(expert[..., first], expert[..., second]).ravel()
    n_pairs_tok = len(first)
    (lo, do, ea, eb), (n,) = _tally(
        [np.repeat(layer_ord, n_pairs_tok), np.repeat(dom_l, n_pairs_tok), lower, upper],
        [n_layers, n_dom, n_exp, n_exp],
        [None],
    )
    frames["coactivation"] = {
        "layer": layers[lo],
        "domain": names[do],
        "expert_a": ea,
        "expert_b": eb,
        "n": n,
    }

    # transition: top-1 at every earlier MoE layer against top-1 at every later one
    src, dst = np.triu_indices(n_layers, k=1)
    top1 = expert[..., 0]  # [L, T]
    (pi, do, ef, et), (n,) = _tally(
        [np.repeat(np.arange(len(src)), n_tok), np.tile(dom, len(src)),
         top1[src].ravel(), top1[dst].ravel()],
        [max(len(src), 1), n_dom, n_exp, n_exp],
        [None],
    )  # fmt: skip
    frames["transition"] = {
        "layer_from": layers[src][pi],
        "layer_to": layers[dst][pi],
        "domain": names[do],
        "expert_from": ef,
        "expert_to": et,
        "n": n,
    }

    # vocab_expert and vocab: N_{x,e} and N_x, by input token and by predicted token
    by_kind = {
        TOKEN_KINDS["input"]: trace.tokens[rows, cols].astype(np.int64),
        TOKEN_KINDS["predicted"]: trace.predicted[rows, cols].astype(np.int64),
    }
    n_vocab = int(max((int(t.max()) for t in by_kind.values() if len(t)), default=0)) + 1
    # one entry per (kind, layer, token, rank), in that nesting order
    per_kind = n_layers * n_tok * k
    kinds = np.repeat(np.arange(len(by_kind)), per_kind)
    kinds = np.asarray(list(by_kind), dtype=np.int64)[kinds]
    token = np.concatenate([np.repeat(np.tile(t, n_layers), k) for t in by_kind.values()])
    chosen = np.tile(expert.ravel(), len(by_kind))
    layer_choice = np.tile(np.repeat(layer_ord, k), len(by_kind))
    dom_choice = np.tile(np.repeat(dom_l, k), len(by_kind))
    (lo, ki, ex, do, to), (n,) = _tally(
        [layer_choice, kinds, chosen, dom_choice, token],
        [n_layers, len(by_kind), n_exp, n_dom, n_vocab],
        [None],
    )  # fmt: skip
    frames["vocab_expert"] = {
        "layer": layers[lo],
        "kind": ki,
        "expert": ex,
        "domain": names[do],
        "token_id": to,
        "n": n,
    }
    (ki, to, do), (n,) = _tally(
        [np.repeat(np.arange(len(by_kind)), n_tok), np.concatenate(list(by_kind.values())),
         np.tile(dom, len(by_kind))],
        [len(by_kind), n_vocab, n_dom],
        [None],
    )  # fmt: skip
    frames["vocab"] = {"kind": ki, "token_id": to, "domain": names[do], "n": n}
    (lo, ki, ex, to), (n,) = _tally(
        [layer_choice, kinds, chosen, token],
        [n_layers, len(by_kind), n_exp, n_vocab],
        [None],
    )
    frames["vocab_expert_totals"] = {
        "layer": layers[lo],
        "kind": ki,
        "expert": ex,
        "token_id": to,
        "n": n,
    }
    (ki, to), (n,) = _tally(
        [np.repeat(np.arange(len(by_kind)), n_tok), np.concatenate(list(by_kind.values()))],
        [len(by_kind), n_vocab],
        [None],
    )
    frames["vocab_totals"] = {"kind": ki, "token_id": to, "n": n}

    # domain: documents, tokens, and next-token losses where there is a next token
    nll = trace.nll[rows, cols].astype(np.float64)
    finite = np.isfinite(nll)
    doc_dom = np.asarray(domain_of_row, dtype=np.int64)
    documents = np.bincount(doc_dom, minlength=n_dom)
    tokens = np.bincount(dom, minlength=n_dom)
    nll_sum = np.bincount(dom[finite], weights=nll[finite], minlength=n_dom)
    nll_count = np.bincount(dom[finite], minlength=n_dom)
    (do,) = np.nonzero(documents)
    frames["domain"] = {
        "domain": names[do],
        "documents": documents[do],
        "tokens": tokens[do],
        "nll_sum": nll_sum[do],
        "nll_count": nll_count[do],
    }
    return frames


def merge(frames: Sequence[Frame], keys: Sequence[str]) -> Frame:
    """One frame with the values of rows of equal keys summed."""
    columns = {name: np.concatenate([f[name] for f in frames]) for name in frames[0]}
    if not len(columns[keys[0]]):
        return columns
    code = np.zeros(len(columns[keys[0]]), dtype=np.int64)
    for key in keys:
        distinct, index = np.unique(columns[key], return_inverse=True)
        code = code * len(distinct) + index.ravel()
    _, group = np.unique(code, return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1
    first = np.zeros(n_groups, dtype=np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    out = {}
    for name, values in columns.items():
        if name in keys:
            out[name] = values[first]
        else:
            sums = np.bincount(group, weights=values, minlength=n_groups)
            out[name] = np.rint(sums).astype(np.int64) if values.dtype.kind in "iu" else sums
    return out


class AggregateBuffer:
    """Aggregate frames of several forward passes, summed, to be written once.

    A corpus job that writes a run in one transaction can add each batch's aggregates here
    and write them at the end: rows shared by batches (frequent tokens, every expert)
    are then written once instead of once per batch.
    """

    # Merge after this many batches, so memory holds about one batch's frames per family.
    _MERGE_EVERY = 8

    def __init__(self) -> None:
        self._frames: dict[str, list[Frame]] = defaultdict(list)

    def add(self, frames: Mapping[str, Frame]) -> None:
        for name, frame in frames.items():
            pending = self._frames[name]
            pending.append(frame)
            if len(pending) >= self._MERGE_EVERY:
                self._frames[name] = [merge(pending, FAMILIES[name].keys)]

    def frames(self) -> dict[str, Frame]:
        """The summed frames; empties the buffer."""
        out = {name: merge(f, FAMILIES[name].keys) for name, f in self._frames.items()}
        self._frames.clear()
        return out
