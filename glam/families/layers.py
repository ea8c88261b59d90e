"""Building blocks of the imported families: linear maps, norms, SwiGLU MLPs, the router and
the dropless expert block (attention is in glam/families/attention.py).

Parameters keep the checkpoint's names and orientation (`weight` is [out, in], as
`nn.Linear` stores it; fused experts are [e, 2f, d] and [e, d, f]) so that loading is a
rename without transposes, and they keep the checkpoint's dtype: activations run in the
embedding's dtype, norms and softmaxes in float32, as transformers does.

Shape-suffix names: b batch, s positions, t tokens (b * s), d model, f FFN hidden,
e experts, k choices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from glam.families.config import HFMoEConfig
from glam.families.router import Routing, route
from glam.layers import RouteOptions

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
