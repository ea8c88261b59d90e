"""Building blocks of the imported families: norms, rotary embedding, attention (GQA and
DeepSeek's MLA), SwiGLU MLPs, the dropless expert block.

Parameters keep the checkpoint's names and orientation (`weight` is [out, in], as
`nn.Linear` stores it; fused experts are [e, 2f, d] and [e, d, f]) so that loading is a
rename without transposes, and they keep the checkpoint's dtype: activations run in the
embedding's dtype, norms and softmaxes in float32, as transformers does.

Shape-suffix names: b batch, s query positions, t key positions, d model, f FFN hidden,
n query heads, m key/value heads, h head dim, e experts, k choices, r rank, v vocabulary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glam.families.config import HFMoEConfig, RopeSpec
from glam.families.router import Routing, route
from glam.layers import RouteOptions

KVCache = tuple[jax.Array, jax.Array]

_ACTIVATIONS = {
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # torch's default GELU is exact
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}


def activation(name: str):
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"hidden_act {name!r} is not supported (supported: {', '.join(_ACTIVATIONS)})"
        ) from None


def _empty(shape: tuple[int, ...]) -> nnx.Param:
    # Placeholders: every parameter is replaced by the checkpoint's tensor when loading.
    return nnx.Param(jnp.zeros(shape, jnp.float32))


class Linear(nnx.Module):
    """y = x W^T (+ b), W [out, in] as the checkpoint stores it."""

    def __init__(self, d_in: int, d_out: int, *, bias: bool = False):
        self.weight = _empty((d_out, d_in))
        self.bias = _empty((d_out,)) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jnp.einsum("...i,oi->...o", x, self.weight[...].astype(x.dtype))
        return y if self.bias is None else y + self.bias[...].astype(x.dtype)


class RMSNorm(nnx.Module):
    """transformers' RMSNorm: normalised in float32, cast back, then times w (not 1 + w)."""

    def __init__(self, dim: int, *, eps: float):
        self.weight = _empty((dim,))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return self.weight[...].astype(x.dtype) * normed.astype(x.dtype)


def rope_cos_sin(
    rope: RopeSpec, positions_s: jax.Array, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array]:
    """cos and sin [s, dim/2] of each position's rotary angles (float32, then `dtype`)."""
    inv_freq = jnp.asarray(np.asarray(rope.inv_freq(), np.float32))
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


class MLP(nnx.Module):
    """SwiGLU MLP: down(act(gate(x)) * up(x)); dense layers and shared experts."""

    def __init__(self, d_model: int, d_ff: int, *, act: str):
        self.gate_proj = Linear(d_model, d_ff)
        self.up_proj = Linear(d_model, d_ff)
        self.down_proj = Linear(d_ff, d_model)
        self.act = act

    def __call__(self, x_bsd: jax.Array) -> jax.Array:
        return self.down_proj(activation(self.act)(self.gate_proj(x_bsd)) * self.up_proj(x_bsd))


_GROUPED = jax.lax.RaggedDotDimensionNumbers(
    dot_dimension_numbers=(([1], [2]), ([], [])),  # x [rows, in] . W [e, out, in]
    lhs_ragged_dimensions=[0],
    rhs_group_dimensions=[0],
)


class Experts(nnx.Module):
    """E SwiGLU experts, dropless: each token's k assignments are sorted by expert and run
    as one grouped matmul (`ragged_dot`), so compute is k/E of running every expert."""

    def __init__(self, num_experts: int, d_model: int, d_ff: int, *, act: str):
        self.gate_up_proj = _empty((num_experts, 2 * d_ff, d_model))  # gate rows, then up
        self.down_proj = _empty((num_experts, d_model, d_ff))
        self.act = act

    def __call__(self, x_td: jax.Array, expert_tk: jax.Array, weight_tk: jax.Array) -> jax.Array:
        num_tokens, top_k = expert_tk.shape
        num_experts = self.gate_up_proj.shape[0]
        flat = expert_tk.reshape(-1)
        order = jnp.argsort(flat, stable=True)
        token = order // top_k
        sizes = jnp.bincount(flat, length=num_experts).astype(jnp.int32)
        dtype = x_td.dtype
        hidden = jax.lax.ragged_dot_general(
            x_td[token], self.gate_up_proj[...].astype(dtype), sizes, _GROUPED
        )
        gate, up = jnp.split(hidden, 2, axis=-1)
        out = jax.lax.ragged_dot_general(
            activation(self.act)(gate) * up, self.down_proj[...].astype(dtype), sizes, _GROUPED
        )
        # transformers multiplies in the promoted dtype (float32 weights stay float32), then
        # casts each contribution to the activation dtype before summing.
        out = (out * weight_tk.reshape(-1)[order][:, None]).astype(dtype)
        return jnp.zeros((num_tokens, x_td.shape[-1]), dtype).at[token].add(out)


class Router(nnx.Module):
    """The linear router [e, d] (and DeepSeek's choice-only bias [e])."""

    def __init__(self, cfg: HFMoEConfig):
        self.weight = _empty((cfg.num_experts, cfg.d_model))
        self.e_score_correction_bias = _empty((cfg.num_experts,)) if cfg.choice_bias else None
        self.logits_f32 = cfg.router_logits_f32

    def logits(self, x_bsd: jax.Array) -> jax.Array:
        if self.logits_f32:
            return jnp.einsum("bsd,ed->bse", x_bsd.astype(jnp.float32),
                              self.weight[...].astype(jnp.float32))  # fmt: skip
        return jnp.einsum("bsd,ed->bse", x_bsd, self.weight[...].astype(x_bsd.dtype))


class SparseMoE(nnx.Module):
    """Router, routed experts and optional shared expert(s): one MoE layer of any family."""

    def __init__(self, cfg: HFMoEConfig):
        self.gate = Router(cfg)
        self.experts = Experts(cfg.num_experts, cfg.d_model, cfg.expert_ff, act=cfg.hidden_act)
        self.shared = MLP(cfg.d_model, cfg.shared_ff, act=cfg.hidden_act) if cfg.shared_ff else None
        self.shared_gate = Linear(cfg.d_model, 1) if cfg.shared_gate else None
        self.cfg = cfg

    def __call__(
        self, x_bsd: jax.Array, *, mask_bs: jax.Array, ablated_e: jax.Array | None,
        options: RouteOptions,
    ) -> tuple[jax.Array, Routing]:  # fmt: skip
        bias = self.gate.e_score_correction_bias
        routing = route(
            self.gate.logits(x_bsd), self.cfg, mask_bs=mask_bs, ablated_e=ablated_e,
            choice_bias_e=None if bias is None else bias[...],
        )  # fmt: skip
        gate = routing.gate
        if self.cfg.gate_in_model_dtype:
            gate = gate.astype(x_bsd.dtype).astype(jnp.float32)
            routing = routing._replace(gate=gate)
        b, s, d = x_bsd.shape
        combine = gate.astype(x_bsd.dtype) if self.cfg.gate_in_model_dtype else gate
        y_bsd = self.experts(
            x_bsd.reshape(b * s, d), routing.expert.reshape(b * s, -1),
            combine.reshape(b * s, -1),
        ).reshape(b, s, d)  # fmt: skip
        if self.shared is not None:
            shared = self.shared(x_bsd)
            if self.shared_gate is not None:
                shared = jax.nn.sigmoid(self.shared_gate(x_bsd)) * shared
            y_bsd = y_bsd + shared
        record = {
            "expert": routing.expert.astype(jnp.int16),
            "gate": routing.gate,
            "prob": routing.prob,
            "kept": jnp.ones(routing.expert.shape, bool),
            "entropy": routing.entropy,
            "aux_loss": routing.aux_loss,
            "z_loss": routing.z_loss,
            "group_aux_loss": routing.group_aux_loss,
            "group_z_loss": routing.group_z_loss,
        }
        if options.capture.router_probs:
            record["router_probs"] = routing.probs
        options.capture.maybe_sow_routing(self, record)
        return y_bsd, routing
