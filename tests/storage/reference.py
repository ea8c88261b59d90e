"""Every routing statistic computed directly from raw traces in numpy: the test oracle.

Written from DESIGN.md's definitions, token by token, without the storage package's
aggregation code, so that a mistake in either shows up as a disagreement.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from glam.trace import RoutingTrace


@dataclasses.dataclass
class Batch:
    """One forward pass as ingested: into which run, with which labels and texts."""

    run_id: int
    trace: RoutingTrace
    domains: list[str]
    texts: list[str]


@dataclasses.dataclass
class Selection:
    """The valid tokens of a scope, one entry per token; routing arrays are [T, layers] and
    the choices [T, layers, k]."""

    layers: list[int]
    domain: np.ndarray
    document: np.ndarray  # a key unique per (batch, row)
    position: np.ndarray
    token: np.ndarray
    predicted: np.ndarray
    nll: np.ndarray
    expert: np.ndarray
    kept: np.ndarray
    entropy: np.ndarray
    aux: np.ndarray
    z: np.ndarray
    pairs: np.ndarray  # [P, 2] indices of adjacent tokens of one document
    documents: dict[str, int]  # documents per domain


class Reference:
    def __init__(
        self,
        batches: Sequence[Batch],
        pooled: dict[int, bool],
        num_experts: int,
        vocab_size: int,
    ) -> None:
        self.batches = list(batches)
        self.pooled = pooled
        self.E = num_experts
        self.V = vocab_size
        self.moe_layers = [int(i) for i in self.batches[0].trace.moe_layers]
        self.k = self.batches[0].trace.top_k

    def select(
        self,
        runs: Sequence[int] | None = None,
        domains: Sequence[str] | None = None,
        layers: Sequence[int] | None = None,
    ) -> Selection:
        use_runs = {r for r, p in self.pooled.items() if p} if runs is None else set(runs)
        cols = [i for i, layer in enumerate(self.moe_layers) if layers is None or layer in layers]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in Selection.__annotations__}
        documents: dict[str, int] = {}
        offset = 0
        for n, batch in enumerate(self.batches):
            if batch.run_id not in use_runs:
                continue
            t = batch.trace
            keep_row = np.array([domains is None or d in domains for d in batch.domains])
            mask = t.mask & keep_row[:, None]
            for b in np.flatnonzero(keep_row):
                documents[batch.domains[b]] = documents.get(batch.domains[b], 0) + 1
            rows, pos = np.nonzero(mask)
            index = np.full(mask.shape, -1)
            index[rows, pos] = offset + np.arange(len(rows))
            adjacent = mask[:, :-1] & mask[:, 1:]
            pb, ps = np.nonzero(adjacent)
            parts["pairs"].append(np.stack([index[pb, ps], index[pb, ps + 1]], 1))
            offset += len(rows)
            parts["domain"].append(np.array(batch.domains, dtype=object)[rows])
            parts["document"].append(n * 10_000 + rows)
            parts["position"].append(pos)
            parts["token"].append(t.tokens[rows, pos])
            parts["predicted"].append(t.predicted[rows, pos])
            parts["nll"].append(t.nll[rows, pos].astype(np.float64))
            ex = t.expert[:, rows, pos].astype(np.int64)  # [L, T, k]
            parts["expert"].append(ex[cols].transpose(1, 0, 2))
            parts["kept"].append(t.kept[cols][:, rows, pos].transpose(1, 0, 2))
            parts["entropy"].append(t.entropy[cols][:, rows, pos].T.astype(np.float64))
            # Each token carries its own row's (its document's) losses, not the batch's.
            parts["aux"].append(t.group_aux_loss[cols][:, rows].T.astype(np.float64))
            parts["z"].append(t.group_z_loss[cols][:, rows].T.astype(np.float64))
        n_layers = len(cols)
        empty = {
            "domain": np.zeros(0, dtype=object),
            "pairs": np.zeros((0, 2), dtype=np.int64),
            "expert": np.zeros((0, n_layers, self.k), dtype=np.int64),
            "kept": np.zeros((0, n_layers, self.k), dtype=bool),
            "entropy": np.zeros((0, n_layers)),
            **{k: np.zeros((0, n_layers)) for k in ("aux", "z")},
        }
        arrays = {
            k: np.concatenate(v) if v else empty.get(k, np.zeros(0, dtype=np.int64))
            for k, v in parts.items()
            if k not in ("layers", "documents")
        }
        return Selection(layers=[self.moe_layers[i] for i in cols], documents=documents, **arrays)

    # -- statistics, each from its DESIGN.md definition ------------------------------------
    def load(self, s: Selection) -> dict[int, np.ndarray]:
        out = {}
        for j, layer in enumerate(s.layers):
            load = np.zeros(self.E, dtype=np.int64)
            for e in range(self.E):
                load[e] = np.sum((s.expert[:, j] == e) & s.kept[:, j])
            out[layer] = load
        return out

    def balance(self, s: Selection) -> dict[int, dict[str, float]]:
        out = {}
        for layer, load in self.load(s).items():
            load = load.astype(np.float64)
            mean = load.mean()
            share = load / load.sum()
            nz = share[share > 0]
            out[layer] = {
                "cv": np.sqrt(np.mean((load - mean) ** 2)) / mean,
                "max_violation": (load.max() - mean) / mean,
                "dead_experts": float(np.sum(load == 0)),
                "load_entropy": -np.sum(nz * np.log(nz)) / math.log(self.E),
            }
        return out

    def routing(self, s: Selection) -> dict[int, dict[str, float]]:
        return {
            layer: {
                "tokens": len(s.domain),
                "drop_rate": float(np.mean(~s.kept[:, j].astype(bool))),
                "drop_rate_by_rank": [
                    float(np.mean(~s.kept[:, j, r].astype(bool))) for r in range(self.k)
                ],
                "router_entropy": float(np.mean(s.entropy[:, j])),
                "aux_loss": float(np.mean(s.aux[:, j])),
                "z_loss": float(np.mean(s.z[:, j])),
            }
            for j, layer in enumerate(s.layers)
        }

    def drops_by_position(self, s: Selection, width: int) -> dict[tuple[int, int], tuple]:
        out = {}
        for j, layer in enumerate(s.layers):
            for b in np.unique(s.position // width):
                at = s.position // width == b
                out[(layer, int(b) * width)] = (
                    int(at.sum()),
                    float(np.mean(~s.kept[at, j].astype(bool))),
                    float(np.mean(~s.kept[at, j, 0].astype(bool))),
                )
        return out

    def domain_specialization(self, s: Selection) -> dict[tuple[int, str], np.ndarray]:
        out = {}
        for j, layer in enumerate(s.layers):
            for d in np.unique(s.domain):
                of_d = s.domain == d
                out[(layer, str(d))] = np.array(
                    [np.mean((s.expert[of_d, j] == e).any(-1)) for e in range(self.E)]
                )
        return out

    def vocab_specialization(
        self, s: Selection, expert: int, by: str, min_count: int, limit: int
    ) -> dict[int, list[tuple[int, int, int]]]:
        """{layer: [(token, N_x, N_x,e)]} best first."""
        x = s.token if by == "input" else s.predicted
        out = {}
        for j, layer in enumerate(s.layers):
            routed = (s.expert[:, j] == expert).any(-1)
            rows = []
            for token in np.unique(x):
                n_x = int(np.sum(x == token))
                n_xe = int(np.sum((x == token) & routed))
                if n_xe > 0 and n_x >= min_count:
                    rows.append((int(token), n_x, n_xe))
            rows.sort(key=lambda r: (-r[2] / r[1], -r[1], r[0]))
            out[layer] = rows[:limit]
        return out

    def token_experts(self, s: Selection, token: int, by: str) -> dict[int, tuple[int, list]]:
        """{layer: (N_x, [N_x,e for every expert])}."""
        x = s.token if by == "input" else s.predicted
        of_x = x == token
        return {
            layer: (
                int(of_x.sum()),
                [int(np.sum(of_x & (s.expert[:, j] == e).any(-1))) for e in range(self.E)],
            )
            for j, layer in enumerate(s.layers)
        }

    def coactivation(self, s: Selection) -> dict[int, np.ndarray]:
        """{layer: [E, E] N_ij/N_i} with NaN where N_i = 0."""
        out = {}
        for j, layer in enumerate(s.layers):
            ratio = np.full((self.E, self.E), np.nan)
            for i in range(self.E):
                has_i = (s.expert[:, j] == i).any(-1)
                if has_i.sum() == 0:
                    continue
                for other in range(self.E):
                    both = has_i & (s.expert[:, j] == other).any(-1) & (i != other)
                    ratio[i, other] = both.sum() / has_i.sum()
            out[layer] = ratio
        return out

    def consecutive(self, s: Selection) -> dict[int, tuple[int, float, float]]:
        out = {}
        a, b = s.pairs[:, 0], s.pairs[:, 1]
        for j, layer in enumerate(s.layers):
            same = s.expert[a, j, 0] == s.expert[b, j, 0]
            shared = [
                len(set(s.expert[p, j]) & set(s.expert[q, j])) > 0
                for p, q in zip(a, b, strict=True)
            ]
            out[layer] = (len(a), float(np.mean(same)), float(np.mean(shared)))
        return out

    def transitions(self, s: Selection) -> dict[tuple[int, int], np.ndarray]:
        out = {}
        for i, la in enumerate(s.layers):
            for j in range(i + 1, len(s.layers)):
                counts = np.zeros((self.E, self.E), dtype=np.int64)
                np.add.at(counts, (s.expert[:, i, 0], s.expert[:, j, 0]), 1)
                out[(la, s.layers[j])] = counts
        return out

    def domain_loss(self, s: Selection) -> dict[str, tuple[int, int, float]]:
        out = {}
        for d in np.unique(s.domain):
            nll = s.nll[s.domain == d]
            out[str(d)] = (
                s.documents[str(d)],
                len(nll),
                float(np.mean(nll[np.isfinite(nll)])),
            )
        return out


def saturation(
    a: RoutingTrace, b: RoutingTrace, domains: Sequence[str] | None, labels: Sequence[str]
) -> dict[int, tuple[int, float]]:
    """OLMoE eq. 5 between two traces of the same documents (same rows, same positions)."""
    rows = np.array([domains is None or d in domains for d in labels])
    valid = a.mask & b.mask & rows[:, None]
    out = {}
    for j, layer in enumerate(a.moe_layers):
        overlaps = [
            len(set(a.expert[j, r, p]) & set(b.expert[j, r, p])) / a.top_k
            for r, p in zip(*np.nonzero(valid), strict=True)
        ]
        out[int(layer)] = (len(overlaps), float(np.mean(overlaps)))
    return out
