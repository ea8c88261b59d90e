"""Random routing traces that obey the top-k routing contract, for storage tests and bench.

Padding positions hold poison (expert -1, NaN entropy and gates) so that any use of them by
storage shows up as a wrong number or an error.
"""

from __future__ import annotations

import numpy as np

from glam.trace import RoutingTrace


def random_trace(
    rng: np.random.Generator,
    *,
    batch: int,
    seq: int,
    moe_layers: tuple[int, ...] = (1, 3, 5),
    num_experts: int = 6,
    top_k: int = 2,
    vocab: int = 30,
    drop: float = 0.2,
    tokens: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> RoutingTrace:
    """A trace of `batch` documents of 1..seq valid tokens (some left-padded), imbalanced
    routing, an expert that layer 0 never chooses, and random capacity drops.

    `tokens` and `mask` may be given to route the same text again (another checkpoint).
    """
    n_layers = len(moe_layers)
    if mask is None:
        lengths = rng.integers(1, seq + 1, size=batch)
        lengths[0] = seq  # one full row: positions up to the last bucket
        mask = np.arange(seq)[None, :] < lengths[:, None]
        left = rng.random(batch) < 0.3
        mask[left] = mask[left][:, ::-1]
    if tokens is None:
        tokens = rng.integers(0, vocab, size=(batch, seq)).astype(np.int32)
    tokens = np.where(mask, tokens, 0).astype(np.int32)

    bias = rng.normal(0.0, 1.0, size=(n_layers, 1, 1, num_experts))
    logits = rng.normal(0.0, 1.5, size=(n_layers, batch, seq, num_experts)) + bias
    if num_experts > 1:  # a dead expert at the first MoE layer (a lone expert cannot be)
        logits[0, ..., num_experts - 1] = -np.inf
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    if num_experts >= top_k:  # k distinct experts, best first
        expert = np.argsort(-probs, axis=-1, kind="stable")[..., :top_k]
    else:  # E = 1, k = 2: the lone expert twice, as GLaM reports it
        expert = np.zeros((n_layers, batch, seq, top_k), dtype=np.int64)
    prob = np.take_along_axis(probs, expert, -1).astype(np.float32)
    kept = rng.random((n_layers, batch, seq, top_k)) > drop
    prob[..., 1:] *= num_experts > 1  # the model gives a repeated lone expert probability 0
    gate = prob / (prob.sum(-1, keepdims=True) + 1e-9) * kept
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(-1)

    valid = mask[None, :, :]
    nll = rng.gamma(2.0, 1.5, size=(batch, seq)).astype(np.float32)
    last = seq - 1 - np.argmax(mask[:, ::-1], axis=1)  # last valid position of each row
    nll[np.arange(batch), last] = np.nan
    # Each row's own losses, combined into the batch's as the model does: aux over the rows
    # with tokens, z token-weighted. Rows differ, so a batch-level value mixes domains.
    n_valid = mask.sum(-1).astype(np.float64)
    has_tokens = (n_valid > 0).astype(np.float64)
    group_aux = rng.uniform(1.0, 1.5, size=(n_layers, batch)) * has_tokens
    group_z = rng.uniform(2.0, 4.0, size=(n_layers, batch)) * has_tokens
    return RoutingTrace(
        moe_layers=np.asarray(moe_layers, dtype=np.int32),
        tokens=tokens,
        mask=mask,
        expert=np.where(valid[..., None], expert, -1).astype(np.int16),
        gate=np.where(valid[..., None], gate, np.nan).astype(np.float32),
        prob=np.where(valid[..., None], prob, np.nan).astype(np.float32),
        kept=kept & valid[..., None],
        entropy=np.where(valid, entropy, np.nan).astype(np.float32),
        aux_loss=(group_aux @ has_tokens / max(has_tokens.sum(), 1.0)).astype(np.float32),
        z_loss=(group_z @ n_valid / max(n_valid.sum(), 1.0)).astype(np.float32),
        nll=np.where(mask, nll, np.nan).astype(np.float32),
        predicted=np.where(mask, rng.integers(0, vocab, size=(batch, seq)), 0).astype(np.int32),
        group_aux_loss=group_aux.astype(np.float32),
        group_z_loss=group_z.astype(np.float32),
    )
