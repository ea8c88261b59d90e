"""Validation loss per domain: mean next-token loss and perplexity, with routing health.

Each validation document is encoded, followed by EOS (as in training), and cut into
windows of `seq_len` tokens; every token after a window's first is predicted. Losses are
token-weighted means.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from glam.corpus import VALIDATION, Record
from glam.model import Glam, forward
from glam.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class DomainLoss:
    domain: str
    tokens: int  # predicted tokens
    loss: float  # mean next-token loss, nats
    perplexity: float


@dataclasses.dataclass(frozen=True)
class EvalResult:
    domains: tuple[DomainLoss, ...]
    overall: DomainLoss
    drop_rate: float  # share of valid assignments (both ranks) dropped
    aux_loss: float  # token-weighted mean over batches, mean over MoE layers
    # [MoE layer][domain][expert] share of the domain's top-1 choices (specialisation).
    top1_share: dict[int, dict[str, list[float]]]

    def to_dict(self) -> dict:
        return {
            "overall": dataclasses.asdict(self.overall),
            "domains": {d.domain: dataclasses.asdict(d) for d in self.domains},
            "drop_rate": self.drop_rate,
            "aux_loss": self.aux_loss,
            "top1_share": {str(k): v for k, v in self.top1_share.items()},
        }


def _windows(ids: list[int], seq_len: int) -> list[list[int]]:
    return [ids[i : i + seq_len] for i in range(0, len(ids), seq_len) if len(ids[i:]) > 1]


def evaluate(
    model: Glam,
    tokenizer: Tokenizer,
    records: Sequence[Record],
    *,
    seq_len: int = 256,
    batch_size: int = 16,
    split: str | None = VALIDATION,
) -> EvalResult:
    """Evaluate on `records` (only those of `split`, unless it is None)."""
    chosen = [r for r in records if split is None or r.split == split]
    if not chosen:
        raise ValueError(f"no documents in split {split!r} to evaluate")
    cfg = model.config
    encoded = tokenizer.encode_batch([r.text for r in chosen])
    windows = [
        (record.domain, window)
        for record, ids in zip(chosen, encoded, strict=True)
        for window in _windows([*ids, tokenizer.eos_id], seq_len)
    ]
    windows.sort(key=lambda item: len(item[1]))  # similar lengths share a batch
    nll_sum: dict[str, float] = collections.defaultdict(float)
    count: dict[str, int] = collections.defaultdict(int)
    experts = max(cfg.num_experts, 1)
    top1 = {layer: collections.defaultdict(lambda: np.zeros(experts)) for layer in cfg.moe_layers}
    dropped = assignments = 0.0
    aux_weighted = aux_tokens = 0.0
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        # Pad to a multiple of 32 so only a handful of shapes ever compile.
        width = 32 * math.ceil(max(len(w) for _, w in chunk) / 32)
        tokens = np.zeros((len(chunk), width), np.int32)
        mask = np.zeros((len(chunk), width), bool)
        for row, (_, window) in enumerate(chunk):
            tokens[row, : len(window)] = window
            mask[row, : len(window)] = True
        _, trace = forward(model, tokens, mask, capture=True)
        for row, (domain, window) in enumerate(chunk):
            losses = trace.nll[row, : len(window) - 1]
            nll_sum[domain] += float(losses.sum())
            count[domain] += losses.size
            for index, layer in enumerate(cfg.moe_layers):
                chosen_experts = trace.expert[index, row, : len(window), 0]
                top1[layer][domain] += np.bincount(chosen_experts, minlength=experts)
        valid = trace.mask[None, ..., None]
        dropped += float((valid & ~trace.kept).sum())
        assignments += float(trace.mask.sum()) * trace.num_layers * trace.top_k
        if trace.num_layers:
            aux_weighted += float(trace.aux_loss.mean()) * trace.mask.sum()
            aux_tokens += trace.mask.sum()

    def summary(domain: str, total: float, n: int) -> DomainLoss:
        loss = total / max(n, 1)
        return DomainLoss(domain=domain, tokens=n, loss=loss, perplexity=math.exp(loss))

    domains = tuple(summary(d, nll_sum[d], count[d]) for d in sorted(nll_sum))
    overall = summary("overall", sum(nll_sum.values()), sum(count.values()))
    shares = {
        layer: {d: (c / max(c.sum(), 1)).round(4).tolist() for d, c in sorted(per.items())}
        for layer, per in top1.items()
    }
    return EvalResult(
        domains=domains,
        overall=overall,
        drop_rate=dropped / max(assignments, 1.0) if cfg.is_moe else 0.0,
        aux_loss=aux_weighted / max(aux_tokens, 1.0),
        top1_share=shares,
    )
