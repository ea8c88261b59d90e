"""Routing statistics of DESIGN.md "Metric definitions", each with its uniform baseline.

Every statistic but router saturation reads the aggregate tables only (see `storage.scope`
for which); saturation pairs the routes of two runs by primary key. k choices per token
(the model's top-k), E experts: every baseline takes its (E, k) form.
All functions take a `Scope` (model, runs, domains, layers) and return `storage.results`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.results import (
    Coactivation,
    ConsecutiveRouting,
    DomainLoss,
    DomainSpecialization,
    ExpertLoad,
    LayerBalance,
    LayerLoad,
    LayerRouting,
    LossChange,
    Measure,
    PositionDrops,
    Transitions,
)
from storage.rows import ratio
from storage.schema_aggregates import POSITION_BUCKET
from storage.scope import Resolved, Scope, resolve, total

__all__ = [
    "Scope",
    "ablation_effect",
    "balance",
    "coactivation",
    "consecutive_routing",
    "domain_loss",
    "domain_specialization",
    "drops_by_position",
    "expert_load",
    "router_saturation",
    "routing_summary",
    "token_experts",
    "transitions",
    "vocab_specialization",
]


def _per_layer(session: Session, res: Resolved, family: str, sums: Sequence[str]) -> dict:
    """{layer: {sum name: value}} over the scope (layers with no rows are absent)."""
    rows = session.execute(res.grouped(family, ["layer"], sums)).all()
    return {int(r.layer): {s: getattr(r, s) or 0 for s in sums} for r in rows}


def _expert_matrix(session: Session, res: Resolved) -> dict[int, np.ndarray]:
    """{layer: int64 [2, k, E]}: tokens choosing each expert at each rank ([0]) and of those
    the kept ones ([1]); zero for unseen experts."""
    out = {layer: np.zeros((2, res.top_k, res.num_experts), dtype=np.int64) for layer in res.layers}
    stmt = res.grouped("expert", ["layer", "rank", "expert"], ["chosen", "kept"])
    for row in session.execute(stmt):
        out[int(row.layer)][:, int(row.rank), int(row.expert)] = [int(row.chosen), int(row.kept)]
    return out


def expert_load(session: Session, scope: Scope) -> list[LayerLoad]:
    """Load (kept assignments, all ranks) and share of every expert, per MoE layer."""
    res = resolve(session, scope)
    base = 1.0 / res.num_experts
    layers = []
    for layer, (chosen, kept) in _expert_matrix(session, res).items():
        load = kept.sum(axis=0)
        total = int(load.sum())
        experts = tuple(
            ExpertLoad(
                expert=e,
                load=int(load[e]),
                share=Measure(ratio(load[e], total), base),
                chosen=tuple(int(c) for c in chosen[:, e]),
                kept=tuple(int(c) for c in kept[:, e]),
            )
            for e in range(res.num_experts)
        )
        layers.append(LayerLoad(layer=layer, total=total, experts=experts))
    return layers


def _normalised_entropy(share: np.ndarray) -> float:
    """H(share) / ln E; 1 for a lone expert, whose whole load is the uniform load (0/0)."""
    if len(share) == 1:
        return 1.0
    nz = share[share > 0]
    return float(-(nz * np.log(nz)).sum() / math.log(len(share)))


def balance(session: Session, scope: Scope) -> list[LayerBalance]:
    """CV, MaxVio, dead experts and normalised load entropy of the loads, per MoE layer."""
    res = resolve(session, scope)
    out = []
    for layer, (_, kept) in _expert_matrix(session, res).items():
        load = kept.sum(axis=0).astype(np.float64)
        total, mean = load.sum(), load.mean()
        share = load / total if total else None
        entropy = None
        if share is not None:
            entropy = _normalised_entropy(share)
        out.append(
            LayerBalance(
                layer=layer,
                total=int(total),
                cv=Measure(float(load.std() / mean) if total else None, 0.0),
                max_violation=Measure(float((load.max() - mean) / mean) if total else None, 0.0),
                dead_experts=Measure(float((load == 0).sum()) if total else None, 0.0),
                load_entropy=Measure(entropy, 1.0),
            )
        )
    return out


def routing_summary(session: Session, scope: Scope) -> list[LayerRouting]:
    """Drop rate (all ranks and per rank), router entropy, aux and z loss (token-weighted),
    per MoE layer.

    Each document's own aux and z losses count once per valid token of it, so a domain filter
    sees only the losses of that domain's documents.
    """
    res = resolve(session, scope)
    sums = _per_layer(session, res, "layer", ["tokens", "entropy_sum", "aux_sum", "z_sum"])
    choices = _expert_matrix(session, res)
    log_e = math.log(res.num_experts)
    out = []
    for layer in res.layers:
        s = sums.get(layer, defaultdict(int))
        n = int(s["tokens"])
        chosen, kept = choices[layer].sum(axis=2)  # [k] each
        dropped = chosen - kept
        out.append(
            LayerRouting(
                layer=layer,
                tokens=n,
                drop_rate=Measure(ratio(dropped.sum(), n * res.top_k), 0.0),
                drop_rate_by_rank=tuple(Measure(ratio(d, n), 0.0) for d in dropped),
                router_entropy=Measure(ratio(s["entropy_sum"], n), log_e),
                aux_loss=Measure(ratio(s["aux_sum"], n), 1.0),
                z_loss=Measure(ratio(s["z_sum"], n), log_e**2),
            )
        )
    return out


def drops_by_position(
    session: Session, scope: Scope, *, bucket_width: int = POSITION_BUCKET
) -> list[PositionDrops]:
    """Drop rates (all ranks, and top-1) by position bucket (do later tokens drop more?).

    `bucket_width` must be a multiple of the stored width, POSITION_BUCKET.
    """
    if bucket_width <= 0 or bucket_width % POSITION_BUCKET:
        raise ValueError(f"bucket_width must be a positive multiple of {POSITION_BUCKET}")
    res = resolve(session, scope)
    merged = bucket_width // POSITION_BUCKET
    t = res.table("position")
    bucket = t.c.bucket // merged if merged > 1 else t.c.bucket
    stmt = (
        select(
            t.c.layer,
            bucket.label("b"),
            total(t.c.tokens).label("tokens"),
            total(t.c.dropped).label("dropped"),
            total(t.c.dropped_top1).label("dropped_top1"),
        )
        .where(*res.where(t))
        .group_by(t.c.layer, bucket)
        .order_by(t.c.layer, bucket)
    )
    return [
        PositionDrops(
            layer=int(r.layer),
            start=int(r.b) * bucket_width,
            stop=(int(r.b) + 1) * bucket_width,
            tokens=int(r.tokens),
            drop_rate=Measure(ratio(r.dropped, r.tokens * res.top_k), 0.0),
            drop_rate_top1=Measure(ratio(r.dropped_top1, r.tokens), 0.0),
        )
        for r in session.execute(stmt)
    ]


def domain_specialization(session: Session, scope: Scope) -> list[DomainSpecialization]:
    """OLMoE eq. 7, N_{e,D}/N_D, per MoE layer and domain."""
    res = resolve(session, scope)
    tokens = {
        (int(r.layer), r.domain): int(r.tokens)
        for r in session.execute(res.grouped("layer", ["layer", "domain"], ["tokens"]))
    }
    counts: dict[tuple[int, str], np.ndarray] = {
        key: np.zeros(res.num_experts, dtype=np.int64) for key in tokens
    }
    for r in session.execute(res.grouped("expert", ["layer", "domain", "expert"], ["chosen"])):
        counts[(int(r.layer), r.domain)][int(r.expert)] = int(r.chosen)
    return [
        DomainSpecialization(
            layer=layer,
            domain=domain,
            tokens=n,
            counts=tuple(int(c) for c in counts[(layer, domain)]),
            shares=tuple(ratio(c, n) for c in counts[(layer, domain)]),
            baseline=res.top_k / res.num_experts,
        )
        for (layer, domain), n in sorted(tokens.items())
    ]


def _as_matrix(array: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(v) for v in row) for row in array)


def _row_ratios(array: np.ndarray, totals: np.ndarray) -> tuple[tuple[float | None, ...], ...]:
    return tuple(
        tuple(float(v) / float(t) if t else None for v in row)
        for row, t in zip(array, totals, strict=True)
    )


def coactivation(session: Session, scope: Scope) -> list[Coactivation]:
    """OLMoE eq. 6, N_{i,j}/N_i, per MoE layer."""
    res = resolve(session, scope)
    n_exp = res.num_experts
    if n_exp < 2:  # no pair of experts; the baseline (k-1)/(E-1) is 0/0
        raise ValueError(f"co-activation needs at least two experts; the model has {n_exp}")
    pairs = {layer: np.zeros((n_exp, n_exp), dtype=np.int64) for layer in res.layers}
    for r in session.execute(res.grouped("coactivation", ["layer", "expert_a", "expert_b"], ["n"])):
        matrix = pairs[int(r.layer)]
        matrix[int(r.expert_a), int(r.expert_b)] += int(r.n)
        matrix[int(r.expert_b), int(r.expert_a)] += int(r.n)
    choices = _expert_matrix(session, res)
    out = []
    for layer in res.layers:
        counts = choices[layer][0].sum(axis=0)
        out.append(
            Coactivation(
                layer=layer,
                counts=tuple(int(c) for c in counts),
                pairs=_as_matrix(pairs[layer]),
                ratios=_row_ratios(pairs[layer], counts),
                baseline=(res.top_k - 1) / (n_exp - 1),
            )
        )
    return out


def _disjoint_share(n_exp: int, k: int) -> float:
    """Chance that two uniform top-k sets share no expert, C(E-k,k)/C(E,k); 0 when E < 2k
    (too few experts for two disjoint sets; a lone expert's set is itself, both times)."""
    if n_exp < 2 * k:
        return 0.0
    return math.comb(n_exp - k, k) / math.comb(n_exp, k)


def consecutive_routing(session: Session, scope: Scope) -> list[ConsecutiveRouting]:
    """Adjacent tokens with the same top-1 and with intersecting top-k sets, per layer."""
    res = resolve(session, scope)
    n_exp = res.num_experts
    sums = _per_layer(session, res, "layer", ["pairs", "same_top1", "shared_topk"])
    disjoint = _disjoint_share(n_exp, res.top_k)
    out = []
    for layer in res.layers:
        s = sums.get(layer, defaultdict(int))
        out.append(
            ConsecutiveRouting(
                layer=layer,
                pairs=int(s["pairs"]),
                same_top1=Measure(ratio(s["same_top1"], s["pairs"]), 1.0 / n_exp),
                shared_topk=Measure(ratio(s["shared_topk"], s["pairs"]), 1.0 - disjoint),
            )
        )
    return out


def transitions(session: Session, scope: Scope) -> list[Transitions]:
    """Top-1 at MoE layer i against top-1 at every later MoE layer j (both in scope)."""
    res = resolve(session, scope)
    n_exp = res.num_experts
    stmt = res.grouped(
        "transition",
        ["layer_from", "layer_to", "expert_from", "expert_to"],
        ["n"],
        layer_columns=("layer_from", "layer_to"),
    )
    counts: dict[tuple[int, int], np.ndarray] = {
        (a, b): np.zeros((n_exp, n_exp), dtype=np.int64)
        for i, a in enumerate(res.layers)
        for b in res.layers[i + 1 :]
    }
    for r in session.execute(stmt):
        counts[(int(r.layer_from), int(r.layer_to))][int(r.expert_from), int(r.expert_to)] = int(
            r.n
        )
    return [
        Transitions(
            layer_from=a,
            layer_to=b,
            counts=_as_matrix(m),
            probabilities=_row_ratios(m, m.sum(axis=1)),
            baseline=1.0 / n_exp,
        )
        for (a, b), m in counts.items()
    ]


def domain_loss(session: Session, scope: Scope) -> list[DomainLoss]:
    """Mean next-token loss per domain (layers do not apply)."""
    res = resolve(session, scope)
    stmt = res.grouped("domain", ["domain"], ["documents", "tokens", "nll_sum", "nll_count"])
    return [
        DomainLoss(
            domain=r.domain,
            documents=int(r.documents),
            tokens=int(r.tokens),
            scored_tokens=int(r.nll_count),
            mean_nll=Measure(ratio(r.nll_sum, r.nll_count), math.log(res.vocab_size)),
        )
        for r in session.execute(stmt.order_by("domain"))
    ]


def ablation_effect(session: Session, base: Scope, changed: Scope) -> list[LossChange]:
    """Per-domain change in mean loss from the `base` scope to the `changed` (ablated) one."""
    before = {d.domain: d.mean_nll.value for d in domain_loss(session, base)}
    after = {d.domain: d.mean_nll.value for d in domain_loss(session, changed)}
    out = []
    for domain in sorted(before.keys() | after.keys()):
        b, a = before.get(domain), after.get(domain)
        out.append(
            LossChange(
                domain=domain,
                base=b,
                changed=a,
                delta=None if a is None or b is None else a - b,
            )
        )
    return out


# Statistics with modules of their own, exported here so that every statistic is found in
# one place: router saturation reads raw routes; vocabulary specialisation has two plans.
from storage.compare import router_saturation  # noqa: E402
from storage.vocabulary import token_experts, vocab_specialization  # noqa: E402
