"""GLaM building blocks: RMSNorm, relative-position attention, dense FFNs, the MoE layer.

Shape-suffix names: b batch, s query positions, t key positions, d model, f FFN hidden,
n heads, h head dim, e experts, k relative-position buckets. No projection has a bias.
Sharding is declared where each parameter is created (logical axis names, mapped to the
mesh in glam/sharding.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from glam import routing
from glam.trace import RoutingCapture


@dataclasses.dataclass(frozen=True)
class CapturePolicy:
    """What a forward pass records. Data, not code: modules ask it whether to sow, so a
    pass with capture off traces no capture work at all."""

    routing: bool = False
    router_probs: bool = False

    def maybe_sow_routing(self, module: nnx.Module, record: dict[str, jax.Array]) -> None:
        if self.routing:
            module.sow(RoutingCapture, "routing", record)


NO_CAPTURE = CapturePolicy()


def _param(rngs: nnx.Rngs, shape: tuple[int, ...], std: float, axes: tuple) -> nnx.Param:
    init = jax.nn.initializers.normal(stddev=std)
    return nnx.Param(init(rngs.params(), shape, jnp.float32), out_sharding=axes)


class RMSNorm(nnx.Module):
    """Root-mean-square norm with a learned scale and no bias."""

    def __init__(self, dim: int, *, eps: float):
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32), out_sharding=(None,))
        self.eps = eps

    def __call__(self, x_bsd: jax.Array) -> jax.Array:
        variance = jnp.mean(jnp.square(x_bsd), axis=-1, keepdims=True)
        return x_bsd * jax.lax.rsqrt(variance + self.eps) * self.scale[...]


def relative_position_bucket(
    relative_position: jax.Array, *, num_buckets: int, max_distance: int
) -> jax.Array:
    """T5's causal bucketing of (key - query) offsets: exact below num_buckets/2, then
    logarithmic up to max_distance; keys after the query share bucket 0 (they are masked)."""
    distance = jnp.maximum(-relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact) / math.log(
        max_distance / max_exact
    )
    large = max_exact + (log_ratio * (num_buckets - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return jnp.where(is_small, distance, large)


class Attention(nnx.Module):
    """Causal multi-head attention with a per-layer bucketed relative position bias."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        head_dim: int,
        *,
        num_buckets: int,
        max_distance: int,
        rngs: nnx.Rngs,
    ):
        std = d_model**-0.5
        self.q_dnh = _param(rngs, (d_model, num_heads, head_dim), std, ("embed", "heads", None))
        self.k_dnh = _param(rngs, (d_model, num_heads, head_dim), std, ("embed", "heads", None))
        self.v_dnh = _param(rngs, (d_model, num_heads, head_dim), std, ("embed", "heads", None))
        out_std = (num_heads * head_dim) ** -0.5
        self.o_nhd = _param(rngs, (num_heads, head_dim, d_model), out_std, ("heads", None, "embed"))
        self.rel_bias_kn = _param(rngs, (num_buckets, num_heads), 0.1, (None, "heads"))
        self.num_buckets = num_buckets
        self.max_distance = max_distance

    def position_bias(self, q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
        """[n, s, t] additive bias from query positions [s] and key positions [t]."""
        bucket_st = relative_position_bucket(
            k_pos[None, :] - q_pos[:, None],
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return jnp.transpose(self.rel_bias_kn[...][bucket_st], (2, 0, 1))

    def __call__(
        self,
        x_bsd: jax.Array,
        *,
        q_pos: jax.Array,
        key_mask_bt: jax.Array,
        cache: tuple[jax.Array, jax.Array] | None = None,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
        """Attend from x [b, s, d] sitting at positions q_pos [s] (consecutive).

        Without `cache`, keys are x itself and key_mask_bt is [b, s]. With `cache` = (k, v)
        of shape [b, t, n, h], indexed by absolute position, x's keys and values are
        written at q_pos first and the queries attend over the whole cache (key_mask_bt is
        [b, t]); the updated cache is returned for the next incremental step.
        """
        q_bsnh = jnp.einsum("bsd,dnh->bsnh", x_bsd, self.q_dnh[...])
        k_bsnh = jnp.einsum("bsd,dnh->bsnh", x_bsd, self.k_dnh[...])
        v_bsnh = jnp.einsum("bsd,dnh->bsnh", x_bsd, self.v_dnh[...])
        if cache is None:
            keys, values, k_pos, new_cache = k_bsnh, v_bsnh, q_pos, None
        else:
            start = (0, q_pos[0], 0, 0)
            keys = jax.lax.dynamic_update_slice(cache[0], k_bsnh.astype(cache[0].dtype), start)
            values = jax.lax.dynamic_update_slice(cache[1], v_bsnh.astype(cache[1].dtype), start)
            k_pos = jnp.arange(keys.shape[1])
            new_cache = (keys, values)
        head_dim = q_bsnh.shape[-1]
        logits_bnst = jnp.einsum("bsnh,btnh->bnst", q_bsnh, keys) * head_dim**-0.5
        # The causal mask is folded into the bias, which is shared by the batch; only the
        # key mask is applied per sequence.
        causal_st = k_pos[None, :] <= q_pos[:, None]
        bias_nst = jnp.where(causal_st[None], self.position_bias(q_pos, k_pos), -1e30)
        logits_bnst = jnp.where(key_mask_bt[:, None, None, :], logits_bnst + bias_nst, -1e30)
        weights_bnst = jax.nn.softmax(logits_bnst, axis=-1)
        out_bsnh = jnp.einsum("bnst,btnh->bsnh", weights_bnst, values)
        out_bsd = jnp.einsum("bsnh,nhd->bsd", out_bsnh, self.o_nhd[...])
        return out_bsd, new_cache


class GegluFFN(nnx.Module):
    """Dense FFN of the non-MoE layers: gated GELU."""

    def __init__(self, d_model: int, d_ff: int, *, rngs: nnx.Rngs):
        self.gate_df = _param(rngs, (d_model, d_ff), d_model**-0.5, ("embed", "mlp"))
        self.up_df = _param(rngs, (d_model, d_ff), d_model**-0.5, ("embed", "mlp"))
        self.down_fd = _param(rngs, (d_ff, d_model), d_ff**-0.5, ("mlp", "embed"))

    def __call__(self, x_bsd: jax.Array) -> jax.Array:
        gate_bsf = jax.nn.gelu(x_bsd @ self.gate_df[...])
        return (gate_bsf * (x_bsd @ self.up_df[...])) @ self.down_fd[...]


class GeluFFN(nnx.Module):
    """Plain two-matrix GELU FFN: what each expert is, and the dense-equivalent's FFN."""

    def __init__(self, d_model: int, d_ff: int, *, rngs: nnx.Rngs):
        self.up_df = _param(rngs, (d_model, d_ff), d_model**-0.5, ("embed", "mlp"))
        self.down_fd = _param(rngs, (d_ff, d_model), d_ff**-0.5, ("mlp", "embed"))

    def __call__(self, x_bsd: jax.Array) -> jax.Array:
        return jax.nn.gelu(x_bsd @ self.up_df[...]) @ self.down_fd[...]


class RouterStats(NamedTuple):
    """What an MoE layer reports on every call, capture or not (training needs it)."""

    aux_loss: jax.Array  # [] load-balancing loss
    z_loss: jax.Array  # [] router z-loss
    drop_rate: jax.Array  # [] share of valid tokens' assignments (both ranks) dropped


@dataclasses.dataclass(frozen=True)
class RouteOptions:
    """Per-call routing inputs of the MoE layers (static: they shape the program).

    Capacities come from `capacity_factor` inside the program (training), or arrive as an
    input, one per sequence (`capacity_b`, inference): then `buffer_capacity` is the static
    buffer size and the factor is unused, so any factor reuses the programs compiled for its
    buffer size.
    """

    capacity_factor: float | None  # None: never drop
    capture: CapturePolicy = NO_CAPTURE
    buffer_capacity: int | None = None  # slots per expert when capacities are an input


NEVER_DROP = RouteOptions(capacity_factor=None)


class MoE(nnx.Module):
    """Top-2 mixture of non-gated GELU experts with a float32 linear router."""

    def __init__(self, d_model: int, d_ff: int, num_experts: int, *, rngs: nnx.Rngs):
        self.router_de = _param(rngs, (d_model, num_experts), d_model**-0.5, ("embed", None))
        self.up_edf = _param(rngs, (num_experts, d_model, d_ff), d_model**-0.5,
                             ("expert", "embed", "mlp"))  # fmt: skip
        self.down_efd = _param(rngs, (num_experts, d_ff, d_model), d_ff**-0.5,
                               ("expert", "mlp", "embed"))  # fmt: skip
        self.num_experts = num_experts

    def __call__(
        self,
        x_bsd: jax.Array,
        *,
        mask_bs: jax.Array,
        ablated_e: jax.Array | None,
        options: RouteOptions,
        capacity_b: jax.Array | None = None,
    ) -> tuple[jax.Array, RouterStats]:
        """The layer output [b, s, d] and its router statistics (one group per sequence).
        `ablated_e` [e] bool switches experts off for this call; `capacity_b` [b] int gives
        each sequence's capacity (with `options.buffer_capacity`)."""
        logits_bse = jnp.einsum(
            "bsd,de->bse", x_bsd.astype(jnp.float32), self.router_de[...].astype(jnp.float32)
        )
        if ablated_e is not None:
            logits_bse = jnp.where(ablated_e, -jnp.inf, logits_bse)
        if capacity_b is not None:
            if options.buffer_capacity is None:
                raise ValueError("capacity_b needs options.buffer_capacity")
            buffer_capacity = options.buffer_capacity
        else:
            # Buffers are sized for the padded length; each sequence's own capacity comes
            # from its valid tokens, so padding never changes what is dropped.
            buffer_capacity = routing.expert_capacity(
                group_size=x_bsd.shape[1],
                num_experts=self.num_experts,
                capacity_factor=options.capacity_factor,
            )
            capacity_b = routing.group_capacity(
                jnp.sum(mask_bs, axis=1),
                num_experts=self.num_experts,
                capacity_factor=options.capacity_factor,
                max_group_size=x_bsd.shape[1],
            )
        gating = routing.top2_gating(logits_bse, capacity=capacity_b, mask=mask_bs)
        buffer_end = routing.dispatch(x_bsd, gating, buffer_capacity)
        hidden_enf = jax.nn.gelu(jnp.einsum("end,edf->enf", buffer_end, self.up_edf[...]))
        out_end = jnp.einsum("enf,efd->end", hidden_enf, self.down_efd[...])
        y_bsd = routing.combine(out_end, gating, buffer_capacity)

        record = {
            "expert": gating.expert.astype(jnp.int16),
            "gate": gating.gate,
            "prob": gating.prob,
            "kept": gating.kept,
            "entropy": gating.entropy,
            "aux_loss": gating.aux_loss,
            "z_loss": gating.z_loss,
            "group_aux_loss": gating.group_aux_loss,
            "group_z_loss": gating.group_z_loss,
        }
        if options.capture.router_probs:
            record["router_probs"] = gating.probs
        options.capture.maybe_sow_routing(self, record)
        valid_assignments = jnp.maximum(2.0 * jnp.sum(mask_bs), 1.0)
        dropped = jnp.sum(mask_bs[..., None] & ~gating.kept)
        return y_bsd, RouterStats(gating.aux_loss, gating.z_loss, dropped / valid_assignments)
