"""Causal experiments, computed on the fly from paired forward passes of the same texts.

Ablation: the same texts with and without some experts switched off: per-domain change
in mean next-token loss, and where the tokens that used a switched-off expert went.
Saturation (OLMoE eq. 5): the same texts under two checkpoints: per layer, the mean over
tokens of |topk_A ∩ topk_B| / k (baseline k/E).

Both accumulate over batches, so any number of texts can be compared in slices.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np

from glam.trace import RoutingTrace


class _HasDomain(Protocol):
    domain: str


R = TypeVar("R", bound=_HasDomain)


@dataclasses.dataclass(frozen=True)
class DomainEffect:
    domain: str
    tokens: int  # tokens with a next token (scored)
    base_nll: float | None  # None when no token of the domain was scored
    ablated_nll: float | None
    delta: float | None


@dataclasses.dataclass(frozen=True)
class Rerouting:
    layer: int
    affected_tokens: int  # tokens whose top-2 held a switched-off expert
    changed_top1: float  # share of all valid tokens whose top-1 changed
    new_experts: list[float]  # where affected tokens' new top-2 assignments went, by expert


class AblationEffect:
    """Sums over batches of (base, ablated) traces of the same texts."""

    def __init__(self, num_experts: int, ablate: dict[int, list[int]]):
        self.num_experts, self.ablate = num_experts, ablate
        self._loss = collections.defaultdict(lambda: np.zeros(3))  # base, ablated, tokens
        self._affected = collections.Counter()
        self._changed = collections.Counter()
        self._valid = collections.Counter()
        self._new = collections.defaultdict(lambda: np.zeros(num_experts))

    def add(self, base: RoutingTrace, ablated: RoutingTrace, domains: list[str]) -> None:
        for row, domain in enumerate(domains):
            scored = ~np.isnan(base.nll[row])
            self._loss[domain] += (
                base.nll[row][scored].sum(),
                ablated.nll[row][scored].sum(),
                scored.sum(),
            )
        for index, layer in enumerate(base.moe_layers.tolist()):
            before, after = base.expert[index], ablated.expert[index]
            affected = base.mask & np.isin(before, self.ablate.get(layer, [])).any(-1)
            self._affected[layer] += int(affected.sum())
            self._changed[layer] += int((before[..., 0] != after[..., 0])[base.mask].sum())
            self._valid[layer] += int(base.mask.sum())
            self._new[layer] += np.bincount(after[affected].ravel(), minlength=self.num_experts)

    def domains(self) -> list[DomainEffect]:
        out = []
        for domain, (base, ablated, n) in sorted(self._loss.items()):
            if not n:
                out.append(DomainEffect(domain, 0, None, None, None))
                continue
            out.append(DomainEffect(domain, int(n), base / n, ablated / n, (ablated - base) / n))
        return out

    def rerouting(self) -> list[Rerouting]:
        return [
            Rerouting(
                layer=layer,
                affected_tokens=self._affected[layer],
                changed_top1=self._changed[layer] / max(self._valid[layer], 1),
                new_experts=(self._new[layer] / max(self._new[layer].sum(), 1)).round(6).tolist(),
            )
            for layer in sorted(self._valid)
        ]


@dataclasses.dataclass(frozen=True)
class LayerSaturation:
    layer: int
    tokens: int
    saturation: float
    baseline: float  # k/E


class Saturation:
    """Sums over batches of (checkpoint A, checkpoint B) traces of the same texts."""

    def __init__(self, num_experts: int, top_k: int):
        self.num_experts, self.top_k = num_experts, top_k
        self._overlap = collections.Counter()
        self._tokens = collections.Counter()

    def add(self, a: RoutingTrace, b: RoutingTrace) -> None:
        for index, layer in enumerate(a.moe_layers.tolist()):
            topk_a, topk_b = a.expert[index][a.mask], b.expert[index][a.mask]  # [tokens, k]
            shared = (topk_a[:, :, None] == topk_b[:, None, :]).any(-1).sum()
            self._overlap[layer] += int(shared)
            self._tokens[layer] += int(topk_a.shape[0])

    def layers(self) -> list[LayerSaturation]:
        return [
            LayerSaturation(
                layer=layer,
                tokens=n,
                saturation=self._overlap[layer] / (self.top_k * n) if n else 0.0,
                baseline=self.top_k / self.num_experts,
            )
            for layer, n in sorted(self._tokens.items())
        ]


def stratified(
    records: Sequence[R], per_domain: int, domains: Sequence[str] | None = None
) -> list[R]:
    """A sample of the built-in corpus that means what it says: the first `per_domain`
    records of every domain (or of `domains`), in corpus order. An unknown domain is a
    ValueError naming the known ones."""
    known = list(dict.fromkeys(r.domain for r in records))
    wanted = known if domains is None else list(dict.fromkeys(domains))
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise ValueError(f"no built-in documents of {unknown}; domains are {known}")
    taken: collections.Counter[str] = collections.Counter()
    sample = []
    for record in records:
        if record.domain in wanted and taken[record.domain] < per_domain:
            taken[record.domain] += 1
            sample.append(record)
    return sample
