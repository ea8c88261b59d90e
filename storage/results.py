"""Typed results of the storage queries: frozen dataclasses of plain values, no ORM objects.

Every statistic comes with the value it would take under uniform routing (`baseline`), the
reference the MoE papers compare against. A value is None where it is undefined (nothing
was counted); counts are always given so callers can weigh or re-derive ratios.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

Matrix = tuple[tuple[int, ...], ...]
RatioMatrix = tuple[tuple[float | None, ...], ...]

_frozen = dataclasses.dataclass(frozen=True, slots=True)


@_frozen
class Measure:
    """A statistic and its value under uniform routing."""

    value: float | None
    baseline: float | None


@_frozen
class ExpertLoad:
    """Kept assignments of one expert (all k ranks) and its share of the layer's load."""

    expert: int
    load: int  # kept assignments at any rank
    share: Measure  # load / sum of loads; baseline 1/E
    chosen: tuple[int, ...]  # [k] tokens choosing the expert at each rank (kept or not)
    kept: tuple[int, ...]  # [k] of those, kept


@_frozen
class LayerLoad:
    layer: int
    total: int
    experts: tuple[ExpertLoad, ...]  # all E experts, in id order


@_frozen
class LayerBalance:
    """Load-balance summary of one MoE layer, over loads = kept assignments."""

    layer: int
    total: int
    cv: Measure  # std/mean (population std); baseline 0
    max_violation: Measure  # (max - mean)/mean; baseline 0
    dead_experts: Measure  # experts with no load; baseline 0
    load_entropy: Measure  # H(share)/ln E; baseline 1


@_frozen
class LayerRouting:
    """Per-layer token-weighted routing statistics."""

    layer: int
    tokens: int
    drop_rate: Measure  # share of the valid tokens' assignments (all ranks) dropped; baseline 0
    # [k] share of valid tokens whose choice of each rank was dropped; baseline 0
    drop_rate_by_rank: tuple[Measure, ...]
    router_entropy: Measure  # mean per-token router entropy (nats); baseline ln E
    aux_loss: Measure  # token-weighted mean; baseline 1 (perfect balance)
    z_loss: Measure  # token-weighted mean; baseline (ln E)^2 (all logits equal at 0)


@_frozen
class PositionDrops:
    """Drops among the valid tokens at positions [start, stop) of their documents."""

    layer: int
    start: int
    stop: int
    tokens: int
    drop_rate: Measure  # share of the assignments (all ranks) dropped
    drop_rate_top1: Measure  # share of the tokens whose top-1 choice was dropped


@_frozen
class DomainSpecialization:
    """OLMoE eq. 7: share of the domain's tokens that have each expert in their top-k."""

    layer: int
    domain: str
    tokens: int  # N_D
    counts: tuple[int, ...]  # N_{e,D} for every expert
    shares: tuple[float | None, ...]  # N_{e,D} / N_D
    baseline: float  # k/E


@_frozen
class TokenShare:
    token_id: int
    piece: str | None
    count: int  # N_x: occurrences of the token
    with_expert: int  # N_{x,e}: of those, with the expert in their top-k
    share: float  # N_{x,e} / N_x


@_frozen
class VocabSpecialization:
    """OLMoE eq. 8 for one expert at one layer: the tokens it specialises in, best first."""

    layer: int
    expert: int
    by: str  # "input" or "predicted"
    min_count: int
    baseline: float  # k/E
    tokens: tuple[TokenShare, ...]


@_frozen
class TokenExperts:
    """OLMoE eq. 8 read the other way: where one token goes, N_{x,e}/N_x for every expert."""

    layer: int
    token_id: int
    piece: str | None
    by: str  # "input" or "predicted"
    count: int  # N_x
    with_expert: tuple[int, ...]  # N_{x,e} for every expert
    shares: tuple[float | None, ...]
    baseline: float  # k/E


@_frozen
class Coactivation:
    """OLMoE eq. 6: N_{i,j}/N_i, the share of tokens routed to i that also go to j."""

    layer: int
    counts: tuple[int, ...]  # N_i: tokens with i in their top-k
    pairs: Matrix  # N_{i,j} (symmetric, zero diagonal)
    ratios: RatioMatrix  # row i: N_{i,j}/N_i; None where N_i = 0
    baseline: float  # (k-1)/(E-1)


@_frozen
class ConsecutiveRouting:
    """Mixtral table 5: adjacent tokens of a document routed alike."""

    layer: int
    pairs: int
    same_top1: Measure  # baseline 1/E
    shared_topk: Measure  # top-k sets intersect; baseline 1 - C(E-k,k)/C(E,k)


@_frozen
class Transitions:
    """Counts of (top-1 at MoE layer `layer_from`, top-1 at MoE layer `layer_to`)."""

    layer_from: int
    layer_to: int
    counts: Matrix  # [from expert][to expert]
    probabilities: RatioMatrix  # row-normalised; None where the row is empty
    baseline: float  # 1/E


@_frozen
class Saturation:
    """OLMoE eq. 5: mean over matched tokens of |topk_A ∩ topk_B| / k."""

    layer: int
    tokens: int
    saturation: Measure  # baseline k/E


@_frozen
class DomainLoss:
    """Mean next-token loss of a domain, over tokens that have a next token."""

    domain: str
    documents: int
    tokens: int
    scored_tokens: int
    mean_nll: Measure  # baseline ln V (a uniform prediction)


@_frozen
class LossChange:
    """Per-domain change of the mean loss from base runs to intervention runs."""

    domain: str
    base: float | None
    changed: float | None
    delta: float | None


@_frozen
class ModelInfo:
    id: int
    name: str
    preset: str | None
    num_experts: int
    top_k: int
    vocab_size: int
    moe_layers: tuple[int, ...] | None
    checkpoint_sha256: str | None
    config: dict[str, Any]


@_frozen
class RunInfo:
    id: int
    model: str
    source: str
    parameters: dict[str, Any]
    pooled: bool
    label: str | None
    n_documents: int
    n_tokens: int
    created_at: dt.datetime
    domains: tuple[str, ...]


@_frozen
class StoredRequest:
    """What a request with an idempotency key stored: its run and documents, in order."""

    run_id: int
    parameters: dict[str, Any]
    document_ids: tuple[int, ...]
    text_sha256: tuple[str, ...]
    domains: tuple[str, ...]


@_frozen
class DocumentInfo:
    id: int
    run_id: int
    ordinal: int
    domain: str
    text: str
    n_tokens: int
    mean_nll: float | None


@_frozen
class RouteInfo:
    layer: int
    experts: tuple[int, ...]  # [k] in rank order
    gates: tuple[float, ...]
    probs: tuple[float, ...]
    kept: tuple[bool, ...]
    entropy: float


@_frozen
class TokenInfo:
    position: int
    token_id: int
    piece: str | None
    nll: float | None
    predicted: int
    predicted_piece: str | None
    routes: tuple[RouteInfo, ...]  # one per MoE layer, in layer order


@_frozen
class DocumentTokens:
    document: DocumentInfo
    tokens: tuple[TokenInfo, ...]


@_frozen
class TrainingPoint:
    """A model's probe-set routing at one training step, MoE layer and domain ('' = all).

    saturation: mean over tokens of |top-2 at this step ∩ top-2 at the last| / 2 (OLMoE
    eq. 5; uniform baseline 2/E). load_cv, max_vio, dead_experts: of the kept assignments.
    drop_rate: share of the assignments (both ranks) dropped. router_entropy: nats, mean
    over tokens. loss: mean next-token loss of the probe tokens, nats.
    """

    step: int
    tokens_seen: int
    layer: int
    domain: str
    tokens: int
    saturation: float | None
    top1_agreement: float | None
    load_cv: float | None
    max_vio: float | None
    dead_experts: int
    drop_rate: float | None
    router_entropy: float | None
    loss: float | None


@_frozen
class TrainingHistory:
    """A model's probe-set routing over its training steps (see TrainingPoint)."""

    model: str
    num_experts: int
    saturation_baseline: float  # k/E: two uniformly random top-k sets
    last_step: int | None  # the step saturation is measured against
    points: tuple[TrainingPoint, ...]
