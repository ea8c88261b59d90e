"""Attention of the imported families: rotary embedding, grouped-query attention (Mixtral,
OLMoE, Qwen2-MoE, Qwen3-MoE) and DeepSeek-V3's multi-head latent attention.

Scores in the activation dtype, softmax in float32 and cast back (transformers' eager
path); positions are the query positions `q_pos` (0..S-1 of the padded batch, as
transformers' default position ids). With a KV cache (glam.generate), keys and values are
written at q_pos and the queries attend over the whole cache.

Shape-suffix names: b batch, s query positions, t key positions, d model, n query heads,
m key/value heads, h head dim, r latent rank.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from glam.families.config import HFMoEConfig, RopeSpec
from glam.families.layers import Linear, RMSNorm

KVCache = tuple[jax.Array, jax.Array]


def rope_cos_sin(
    rope: RopeSpec, positions_s: jax.Array, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array]:
    """cos and sin [s, dim/2] of each position's rotary angles (float32, then `dtype`)."""
    inv_freq = jnp.asarray(rope.inv_freq())
    angles = positions_s.astype(jnp.float32)[:, None] * inv_freq[None, :]
    cos = jnp.cos(angles) * rope.attention_factor
    sin = jnp.sin(angles) * rope.attention_factor
    return cos.astype(dtype), sin.astype(dtype)


def apply_rope(
    x_bsnh: jax.Array, cos_sh: jax.Array, sin_sh: jax.Array, *, interleave: bool
) -> jax.Array:
    """Rotate the last axis. Half-split pairs (i, i + h/2) as `rotate_half` does; with
    `interleave`, adjacent pairs (2i, 2i+1), the output laid out evens first, then odds
    (transformers' `apply_rotary_pos_emb_interleave`)."""
    cos, sin = cos_sh[None, :, None, :], sin_sh[None, :, None, :]
    if interleave:
        x1, x2 = x_bsnh[..., 0::2], x_bsnh[..., 1::2]
    else:
        half = x_bsnh.shape[-1] // 2
        x1, x2 = x_bsnh[..., :half], x_bsnh[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def attend(
    q_bsnh: jax.Array,
    k_btmh: jax.Array,
    v_btmh: jax.Array,
    *,
    q_pos: jax.Array,
    key_mask_bt: jax.Array,
    scale: float,
    window: int | None,
) -> jax.Array:
    """Causal (optionally sliding-window) softmax attention, GQA by head groups: scores in
    the activation dtype, softmax in float32 and cast back (transformers' eager path)."""
    num_heads, num_kv = q_bsnh.shape[2], k_btmh.shape[2]
    group = num_heads // num_kv
    q_bsmgh = q_bsnh.reshape(*q_bsnh.shape[:2], num_kv, group, q_bsnh.shape[-1])
    logits = jnp.einsum("bsmgh,btmh->bmgst", q_bsmgh, k_btmh) * scale
    k_pos = jnp.arange(k_btmh.shape[1])
    allowed_st = k_pos[None, :] <= q_pos[:, None]
    if window is not None:
        allowed_st &= k_pos[None, :] > q_pos[:, None] - window
    allowed = allowed_st[None, None, None] & key_mask_bt[:, None, None, None, :]
    logits = jnp.where(allowed, logits.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(logits, axis=-1).astype(v_btmh.dtype)
    out = jnp.einsum("bmgst,btmh->bsmgh", weights, v_btmh)
    return out.reshape(*out.shape[:2], num_heads, v_btmh.shape[-1])


def _write_cache(
    cache: KVCache | None, k_bsmh: jax.Array, v_bsmh: jax.Array, q_pos: jax.Array
) -> tuple[jax.Array, jax.Array, KVCache | None]:
    """Keys and values to attend over: x's own, or the cache's with x's written at q_pos.

    The cache is what glam.generate allocates, [b, t, num_heads, head_dim] for keys and
    values alike: key/value heads fill its first m heads and its first h dims (MLA's value
    head may be narrower than its query/key head), the rest stays unused.
    """
    if cache is None:
        return k_bsmh, v_bsmh, None
    start = (0, q_pos[0], 0, 0)
    keys = jax.lax.dynamic_update_slice(cache[0], k_bsmh.astype(cache[0].dtype), start)
    values = jax.lax.dynamic_update_slice(cache[1], v_bsmh.astype(cache[1].dtype), start)
    heads, k_dim, v_dim = k_bsmh.shape[2], k_bsmh.shape[3], v_bsmh.shape[3]
    return (
        keys[:, :, :heads, :k_dim].astype(k_bsmh.dtype),
        values[:, :, :heads, :v_dim].astype(v_bsmh.dtype),
        (keys, values),
    )


class Attention(nnx.Module):
    """Grouped-query attention with RoPE: Mixtral, OLMoE (q/k norm over the whole
    projection, clip_qkv), Qwen2-MoE (q/k/v biases), Qwen3-MoE (per-head q/k norm)."""

    def __init__(self, cfg: HFMoEConfig, layer: int):
        d, n, m, h = cfg.d_model, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = Linear(d, n * h, bias=cfg.qkv_bias)
        self.k_proj = Linear(d, m * h, bias=cfg.qkv_bias)
        self.v_proj = Linear(d, m * h, bias=cfg.qkv_bias)
        self.o_proj = Linear(n * h, d, bias=cfg.o_bias)
        if cfg.qk_norm == "full":
            self.q_norm = RMSNorm(n * h, eps=cfg.norm_eps)
            # transformers sizes it (hidden / heads) * kv_heads, whatever head_dim says
            self.k_norm = RMSNorm(cfg.d_model // n * m, eps=cfg.norm_eps)
        elif cfg.qk_norm == "head":
            self.q_norm = RMSNorm(h, eps=cfg.norm_eps)
            self.k_norm = RMSNorm(h, eps=cfg.norm_eps)
        self.qk_norm = cfg.qk_norm
        self.clip_qkv = cfg.clip_qkv
        self.num_heads, self.num_kv_heads, self.head_dim = n, m, h
        self.rope = cfg.rope
        self.scale = cfg.attn_scale if cfg.attn_scale is not None else h**-0.5
        self.window = cfg.window(layer)

    def __call__(
        self, x_bsd: jax.Array, *, q_pos: jax.Array, key_mask_bt: jax.Array,
        cache: KVCache | None = None,
    ) -> tuple[jax.Array, KVCache | None]:  # fmt: skip
        q, k, v = self.q_proj(x_bsd), self.k_proj(x_bsd), self.v_proj(x_bsd)
        if self.qk_norm == "full":
            q, k = self.q_norm(q), self.k_norm(k)
        if self.clip_qkv is not None:
            q, k, v = (jnp.clip(a, -self.clip_qkv, self.clip_qkv) for a in (q, k, v))
        b, s = x_bsd.shape[:2]
        q_bsnh = q.reshape(b, s, self.num_heads, self.head_dim)
        k_bsmh = k.reshape(b, s, self.num_kv_heads, self.head_dim)
        v_bsmh = v.reshape(b, s, self.num_kv_heads, self.head_dim)
        if self.qk_norm == "head":
            q_bsnh, k_bsmh = self.q_norm(q_bsnh), self.k_norm(k_bsmh)
        cos, sin = rope_cos_sin(self.rope, q_pos, x_bsd.dtype)
        q_bsnh = apply_rope(q_bsnh, cos, sin, interleave=False)
        k_bsmh = apply_rope(k_bsmh, cos, sin, interleave=False)
        keys, values, new_cache = _write_cache(cache, k_bsmh, v_bsmh, q_pos)
        out_bsnh = attend(q_bsnh, keys, values, q_pos=q_pos, key_mask_bt=key_mask_bt,
                          scale=self.scale, window=self.window)  # fmt: skip
        return self.o_proj(out_bsnh.reshape(b, s, -1)), new_cache


class MLAttention(nnx.Module):
    """DeepSeek-V3's multi-head latent attention: queries through an optional low-rank
    bottleneck, keys and values from one compressed latent plus a single shared rotary key
    head; each head's query/key is [nope | rope]."""

    def __init__(self, cfg: HFMoEConfig, layer: int):
        d, n = cfg.d_model, cfg.num_heads
        qk_dim = cfg.qk_nope_head_dim + cfg.qk_rope_head_dim
        if cfg.q_lora_rank is None:
            self.q_proj = Linear(d, n * qk_dim)
        else:
            self.q_a_proj = Linear(d, cfg.q_lora_rank, bias=cfg.o_bias)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank, eps=1e-6)  # fixed eps, as upstream
            self.q_b_proj = Linear(cfg.q_lora_rank, n * qk_dim)
        # DeepSeek's attention_bias (`o_bias` here) covers q_a, kv_a and o.
        self.kv_a_proj_with_mqa = Linear(d, cfg.kv_lora_rank + cfg.qk_rope_head_dim,
                                         bias=cfg.o_bias)  # fmt: skip
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank, eps=1e-6)
        self.kv_b_proj = Linear(cfg.kv_lora_rank, n * (cfg.qk_nope_head_dim + cfg.v_head_dim))
        self.o_proj = Linear(n * cfg.v_head_dim, d, bias=cfg.o_bias)
        self.low_rank_q = cfg.q_lora_rank is not None
        self.num_heads = n
        self.nope, self.rope_dim, self.v_dim = (
            cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        )  # fmt: skip
        self.kv_lora_rank = cfg.kv_lora_rank
        self.rope = cfg.rope
        self.scale = cfg.attn_scale if cfg.attn_scale is not None else qk_dim**-0.5
        self.window = cfg.window(layer)

    def __call__(
        self, x_bsd: jax.Array, *, q_pos: jax.Array, key_mask_bt: jax.Array,
        cache: KVCache | None = None,
    ) -> tuple[jax.Array, KVCache | None]:  # fmt: skip
        b, s = x_bsd.shape[:2]
        if self.low_rank_q:
            q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x_bsd)))
        else:
            q = self.q_proj(x_bsd)
        q_bsnh = q.reshape(b, s, self.num_heads, self.nope + self.rope_dim)
        q_nope, q_rot = q_bsnh[..., : self.nope], q_bsnh[..., self.nope :]
        compressed = self.kv_a_proj_with_mqa(x_bsd)
        latent_bsr = self.kv_a_layernorm(compressed[..., : self.kv_lora_rank])
        k_rot_bs1h = compressed[..., self.kv_lora_rank :][:, :, None, :]
        cos, sin = rope_cos_sin(self.rope, q_pos, x_bsd.dtype)
        q_rot = apply_rope(q_rot, cos, sin, interleave=self.rope.interleave)
        k_rot_bs1h = apply_rope(k_rot_bs1h, cos, sin, interleave=self.rope.interleave)
        kv = self.kv_b_proj(latent_bsr).reshape(b, s, self.num_heads, self.nope + self.v_dim)
        k_nope, v_bsnh = kv[..., : self.nope], kv[..., self.nope :]
        k_bsnh = jnp.concatenate(
            [k_nope, jnp.broadcast_to(k_rot_bs1h, (b, s, self.num_heads, self.rope_dim))], -1
        )
        q_bsnh = jnp.concatenate([q_nope, q_rot], axis=-1)
        keys, values, new_cache = _write_cache(cache, k_bsnh, v_bsnh, q_pos)
        out_bsnh = attend(q_bsnh, keys, values, q_pos=q_pos, key_mask_bt=key_mask_bt,
                          scale=self.scale, window=self.window)  # fmt: skip
        return self.o_proj(out_bsnh.reshape(b, s, -1)), new_cache
