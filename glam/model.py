"""The GLaM decoder and its public forward pass.

    model = build(GlamConfig.preset("glam-tiny"))
    logits, trace = forward(model, tokens_bs, capture=True, ablate={1: [3]})

`forward` compiles once per (shape, capacity factor, capture policy) and reuses the program;
ablation masks are inputs, so switching experts off never recompiles.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glam import routing
from glam.config import GlamConfig
from glam.layers import (
    NEVER_DROP,
    NO_CAPTURE,
    Attention,
    CapturePolicy,
    GegluFFN,
    GeluFFN,
    MoE,
    RMSNorm,
    RouteOptions,
    RouterStats,
    _param,
)
from glam.trace import RoutingCapture, RoutingTrace

KVCache = tuple[jax.Array, jax.Array]


class Block(nnx.Module):
    """Pre-norm Transformer block: attention, then a GEGLU, GELU or MoE FFN."""

    def __init__(self, cfg: GlamConfig, layer: int, *, rngs: nnx.Rngs):
        self.attn_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(
            cfg.d_model,
            cfg.num_heads,
            cfg.head_dim,
            num_buckets=cfg.rel_pos_buckets,
            max_distance=cfg.rel_pos_max_distance,
            rngs=rngs,
        )
        self.ffn_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.kind = cfg.ffn_kind(layer)
        if self.kind == "moe":
            self.ffn = MoE(cfg.d_model, cfg.d_ff, cfg.num_experts, rngs=rngs)
        elif self.kind == "gelu":
            self.ffn = GeluFFN(cfg.d_model, cfg.moe_dense_hidden, rngs=rngs)
        else:
            self.ffn = GegluFFN(cfg.d_model, cfg.d_ff, rngs=rngs)

    def __call__(
        self,
        x_bsd: jax.Array,
        *,
        q_pos: jax.Array,
        mask_bs: jax.Array,
        key_mask_bt: jax.Array,
        ablated_e: jax.Array | None,
        options: RouteOptions,
        cache: KVCache | None = None,
        capacity_b: jax.Array | None = None,
    ) -> tuple[jax.Array, RouterStats | None, KVCache | None]:
        attn_bsd, cache = self.attn(
            self.attn_norm(x_bsd), q_pos=q_pos, key_mask_bt=key_mask_bt, cache=cache
        )
        x_bsd = x_bsd + attn_bsd
        normed_bsd = self.ffn_norm(x_bsd)
        if self.kind == "moe":
            ffn_bsd, stats = self.ffn(
                normed_bsd, mask_bs=mask_bs, ablated_e=ablated_e, options=options,
                capacity_b=capacity_b,
            )  # fmt: skip
            return x_bsd + ffn_bsd, stats, cache
        return x_bsd + self.ffn(normed_bsd), None, cache


class Glam(nnx.Module):
    """Decoder-only GLaM with tied input embedding and output softmax."""

    def __init__(self, cfg: GlamConfig, *, rngs: nnx.Rngs):
        self.config = cfg
        self.embed_vd = _param(rngs, (cfg.vocab_size, cfg.d_model), cfg.d_model**-0.5,
                               ("vocab", "embed"))  # fmt: skip
        self.blocks = nnx.List([Block(cfg, i, rngs=rngs) for i in range(cfg.num_layers)])
        self.final_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.mesh: jax.sharding.Mesh | None = None  # set by glam.sharding.shard_model

    def __call__(
        self, tokens_bs: jax.Array, **kwargs: Any
    ) -> tuple[jax.Array, RouterStats, list[KVCache] | None]:
        """Logits [b, s, v], router statistics and KV caches: `features` then the tied
        output softmax."""
        x_bsd, router, caches = self.features(tokens_bs, **kwargs)
        return jnp.einsum("bsd,vd->bsv", x_bsd, self.embed_vd[...]), router, caches

    def features(
        self,
        tokens_bs: jax.Array,
        *,
        mask_bs: jax.Array,
        ablated_le: jax.Array | None = None,
        options: RouteOptions = NEVER_DROP,
        q_pos: jax.Array | None = None,
        key_mask_bt: jax.Array | None = None,
        caches: Sequence[KVCache] | None = None,
        capacity_b: jax.Array | None = None,
    ) -> tuple[jax.Array, RouterStats, list[KVCache] | None]:
        """Final-norm hidden states [b, s, d] (the softmax's input), router statistics
        stacked over the L MoE layers ([L] each) and the updated KV caches.

        `ablated_le` [L, e] bool switches experts off per MoE layer. Incremental decoding
        passes `caches` (one (k, v) per layer), the new tokens' positions `q_pos` and the
        cache's key mask `key_mask_bt`. `capacity_b` [b] gives each sequence's expert
        capacity (see `RouteOptions`).
        """
        x_bsd = self.embed_vd[...][tokens_bs] * math.sqrt(self.config.d_model)
        if q_pos is None:
            q_pos = jnp.arange(tokens_bs.shape[1])
        if key_mask_bt is None:
            key_mask_bt = mask_bs
        stats, new_caches = [], []
        for index, block in enumerate(self.blocks):
            x_bsd, layer_stats, cache = block(
                x_bsd,
                q_pos=q_pos,
                mask_bs=mask_bs,
                key_mask_bt=key_mask_bt,
                ablated_e=(
                    ablated_le[len(stats)]
                    if ablated_le is not None and block.kind == "moe"
                    else None
                ),
                options=options,
                cache=None if caches is None else caches[index],
                capacity_b=capacity_b,
            )
            new_caches.append(cache)
            if layer_stats is not None:
                stats.append(layer_stats)
        x_bsd = self.final_norm(x_bsd)
        if stats:
            router = RouterStats(*(jnp.stack(field) for field in zip(*stats, strict=True)))
        else:
            router = RouterStats(*(jnp.zeros((0,), jnp.float32) for _ in RouterStats._fields))
        return x_bsd, router, new_caches if caches is not None else None


def build(cfg: GlamConfig, seed: int = 0) -> Glam:
    """A freshly initialised model (parameters on the default device)."""
    with nnx.use_eager_sharding(False):
        return Glam(cfg, rngs=nnx.Rngs(params=seed))


def argmax_last(x: jax.Array, block: int = 128) -> jax.Array:
    """argmax over the last axis (first maximum wins), as int32.

    XLA's CPU argmax over a large vocabulary is a slow variadic reduce (~13x slower than a
    max); taking the best block of `block` entries first and then the best entry inside
    it needs only plain max reductions and one small argmax.
    """
    size = x.shape[-1]
    if size <= block:
        return jnp.argmax(x, axis=-1).astype(jnp.int32)
    pad = -size % block
    if pad:
        x = jnp.concatenate([x, jnp.full((*x.shape[:-1], pad), -jnp.inf, x.dtype)], axis=-1)
    blocks = x.reshape(*x.shape[:-1], -1, block)
    best_block = jnp.argmax(jnp.max(blocks, axis=-1), axis=-1)
    inside = jnp.take_along_axis(blocks, best_block[..., None, None], axis=-2)[..., 0, :]
    return (best_block * block + jnp.argmax(inside, axis=-1)).astype(jnp.int32)


def next_token_stats(
    logits_bsv: jax.Array, tokens_bs: jax.Array, mask_bs: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Per-position next-token loss (NaN where there is no valid next token) and argmax."""
    logits_bsv = logits_bsv.astype(jnp.float32)
    next_tokens = jnp.concatenate([tokens_bs[:, 1:], tokens_bs[:, -1:]], axis=1)
    has_next = jnp.concatenate(
        [mask_bs[:, :-1] & mask_bs[:, 1:], jnp.zeros_like(mask_bs[:, :1])], axis=1
    )
    target = jnp.take_along_axis(logits_bsv, next_tokens[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits_bsv, axis=-1) - target
    return jnp.where(has_next, nll, jnp.nan), argmax_last(logits_bsv)


def _collect_routing(
    model: Glam, captured: Any, tokens_bs: jax.Array, options: RouteOptions
) -> dict[str, jax.Array]:
    """Stack the per-layer records sown by the MoE layers into [L, ...] arrays."""
    records = []
    for index, block in enumerate(model.blocks):
        if block.kind == "moe":
            (record,) = captured["blocks"][index]["ffn"]["routing"].get_value()
            records.append(record)
    if records:
        return {name: jnp.stack([r[name] for r in records]) for name in records[0]}
    # A dense model routes nothing: the same fields with zero MoE layers.
    batch, seq = tokens_bs.shape
    k = model.config.top_k
    empty = {
        "expert": jnp.zeros((0, batch, seq, k), jnp.int16),
        "gate": jnp.zeros((0, batch, seq, k), jnp.float32),
        "prob": jnp.zeros((0, batch, seq, k), jnp.float32),
        "kept": jnp.zeros((0, batch, seq, k), bool),
        "entropy": jnp.zeros((0, batch, seq), jnp.float32),
        "aux_loss": jnp.zeros((0,), jnp.float32),
        "z_loss": jnp.zeros((0,), jnp.float32),
        "group_aux_loss": jnp.zeros((0, batch), jnp.float32),
        "group_z_loss": jnp.zeros((0, batch), jnp.float32),
    }
    if options.capture.router_probs:
        empty["router_probs"] = jnp.zeros((0, batch, seq, 0), jnp.float32)
    return empty


@functools.partial(jax.jit, static_argnames=("graphdef", "options"))
def _forward_compiled(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    tokens_bs: jax.Array,
    mask_bs: jax.Array,
    ablated_le: jax.Array,
    capacity_b: jax.Array,
    *,
    options: RouteOptions,
) -> tuple[jax.Array, dict[str, jax.Array] | None]:
    model = nnx.merge(graphdef, state)

    def call(module: Glam, tokens: jax.Array) -> Any:
        return module(
            tokens, mask_bs=mask_bs, ablated_le=ablated_le, options=options,
            capacity_b=capacity_b,
        )  # fmt: skip

    if not options.capture.routing:
        return call(model, tokens_bs)[0], None
    (logits_bsv, _, _), captured = nnx.capture(call, RoutingCapture)(model, tokens_bs)
    record = _collect_routing(model, captured, tokens_bs, options)
    record["nll"], record["predicted"] = next_token_stats(logits_bsv, tokens_bs, mask_bs)
    return logits_bsv, record


def ablation_mask(cfg: Any, ablate: Mapping[int, Sequence[int]] | None) -> np.ndarray:
    """[L, E] bool mask of switched-off experts from {moe layer index: [expert ids]}."""
    moe_layers = cfg.moe_layers
    mask = np.zeros((len(moe_layers), max(cfg.num_experts, 1)), dtype=bool)
    for layer, experts in (ablate or {}).items():
        layer = int(layer)
        if layer not in moe_layers:
            raise ValueError(f"layer {layer} is not an MoE layer; MoE layers are {moe_layers}")
        for expert in experts:
            if not 0 <= int(expert) < cfg.num_experts:
                raise ValueError(
                    f"expert {expert} does not exist in layer {layer} "
                    f"(experts are 0..{cfg.num_experts - 1})"
                )
            mask[moe_layers.index(layer), int(expert)] = True
        if cfg.num_experts - mask[moe_layers.index(layer)].sum() < cfg.top_k:
            raise ValueError(
                f"layer {layer}: top-{cfg.top_k} routing needs at least {cfg.top_k} experts left on"
            )
    return mask


def _pad_batch(array: np.ndarray, multiple: int) -> np.ndarray:
    extra = -array.shape[0] % multiple
    if not extra:
        return array
    return np.concatenate([array, np.zeros((extra, *array.shape[1:]), array.dtype)])


def forward(
    model: Glam,
    tokens: np.ndarray | jax.Array,
    mask: np.ndarray | jax.Array | None = None,
    *,
    capture: bool = False,
    router_probs: bool = False,
    ablate: Mapping[int, Sequence[int]] | None = None,
    capacity_factor: float | None = None,
) -> tuple[jax.Array, RoutingTrace | None]:
    """Run the model on `tokens` [B, S] (int) with `mask` [B, S] (True = valid).

    Returns logits [B, S, V] and, with `capture=True`, the `RoutingTrace` of the pass.
    `ablate` maps MoE layer index -> experts switched off; `capacity_factor` overrides the
    config's for this call (`math.inf`: never drop).
    """
    cfg = model.config
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [batch, seq], got shape {tokens.shape}")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be integers, got {tokens.dtype}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= cfg.vocab_size):
        raise ValueError(f"token ids must be in [0, {cfg.vocab_size})")
    tokens = tokens.astype(np.int32)
    mask = np.ones(tokens.shape, bool) if mask is None else np.asarray(mask).astype(bool)
    if mask.shape != tokens.shape:
        raise ValueError(f"mask shape {mask.shape} differs from tokens shape {tokens.shape}")
    ablated = ablation_mask(cfg, ablate)
    factor = cfg.capacity_factor if capacity_factor is None else capacity_factor
    if factor is not None and math.isinf(factor):
        factor = None
    if factor is not None and factor <= 0:
        raise ValueError("capacity_factor must be positive")
    # Each sequence's capacity is an input and only the buffer size is static, so the
    # factors clients ask for share compiled programs (at most log2(S) + 1 per shape).
    capacity_b = routing.sequence_capacities(
        mask.sum(axis=1), num_experts=max(cfg.num_experts, 1), capacity_factor=factor
    )
    options = RouteOptions(
        capacity_factor=None,
        capture=CapturePolicy(routing=True, router_probs=router_probs) if capture else NO_CAPTURE,
        buffer_capacity=routing.buffer_capacity(capacity_b, tokens.shape[1]),
    )
    batch = tokens.shape[0]
    graphdef, state = nnx.split(model)
    if model.mesh is None:
        logits, record = _forward_compiled(
            graphdef, state, tokens, mask, ablated, capacity_b, options=options
        )
    else:
        from glam.sharding import run_sharded

        data_size = model.mesh.shape["data"]
        logits, record = run_sharded(
            model.mesh,
            functools.partial(_forward_compiled, graphdef, options=options),
            state,
            _pad_batch(tokens, data_size),
            _pad_batch(mask, data_size),
            ablated,
            _pad_batch(capacity_b, data_size),
        )
        logits = logits[:batch]
        if record is not None:
            record = {
                k: v
                if k in ("aux_loss", "z_loss")
                else (v[:batch] if k in _PER_ROW else v[:, :batch])
                for k, v in record.items()
            }
    if record is None:
        return logits, None
    return logits, _to_trace(cfg, tokens, mask, record)


_PER_ROW = ("nll", "predicted")  # [B, S]; every other per-token field is [L, B, ...]


def _to_trace(
    cfg: GlamConfig, tokens: np.ndarray, mask: np.ndarray, record: dict[str, jax.Array]
) -> RoutingTrace:
    host = jax.device_get(record)
    return RoutingTrace(
        moe_layers=np.asarray(cfg.moe_layers, np.int32),
        tokens=tokens,
        mask=mask,
        expert=host["expert"].astype(np.int16),
        gate=host["gate"].astype(np.float32),
        prob=host["prob"].astype(np.float32),
        kept=host["kept"].astype(bool),
        entropy=host["entropy"].astype(np.float32),
        aux_loss=host["aux_loss"].astype(np.float32),
        z_loss=host["z_loss"].astype(np.float32),
        nll=host["nll"].astype(np.float32),
        predicted=host["predicted"].astype(np.int32),
        router_probs=host.get("router_probs"),
        group_aux_loss=host["group_aux_loss"].astype(np.float32),
        group_z_loss=host["group_z_loss"].astype(np.float32),
    )
