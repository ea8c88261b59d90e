"""`HFMoEConfig`: one imported Hugging Face MoE checkpoint's shapes and routing, any family.

Each family module (glam/families/<family>.py) reads its config.json into this one frozen,
hashable dataclass (it is static data of the compiled program, as `GlamConfig` is). The
attributes that `glam.model.forward` and the service read are those of `GlamConfig`:
`name`, `vocab_size`, `num_layers`, `num_experts`, `top_k`, `moe_layers`, `capacity_factor`
(always None: these families are dropless), `max_len`, `is_moe`, `preset`, `to_dict()`,
`replace(**kw)`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Literal

import numpy as np

ScoreFunction = Literal["softmax", "sigmoid"]
AuxLoss = Literal["load_balancing", "sequence_balance"]
QKNorm = Literal["full", "head"]


@dataclasses.dataclass(frozen=True)
class RopeSpec:
    """Rotary embedding as transformers' `rope_parameters` define it (default, linear, yarn)."""

    theta: float
    dim: int  # rotary dimensions (head_dim; DeepSeek-V3: qk_rope_head_dim)
    kind: Literal["default", "linear", "yarn"] = "default"
    factor: float = 1.0
    # yarn only: transformers' `_compute_yarn_parameters` inputs
    original_max_position_embeddings: int | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    truncate: bool = True
    attention_factor: float = 1.0  # multiplies cos and sin (yarn's mscale ratio)
    interleave: bool = False  # DeepSeek: rotate adjacent pairs, output de-interleaved

    def inv_freq(self) -> np.ndarray:
        """Inverse frequencies [dim/2] of the rotary pairs, in float32 with transformers'
        own operations (`compute_default_rope_parameters` and the linear / yarn variants)."""
        base = np.float32(self.theta) ** (np.arange(0, self.dim, 2, dtype=np.float32) / self.dim)
        inv_freq = (np.float32(1.0) / base).astype(np.float32)
        if self.kind == "default":
            return inv_freq
        if self.kind == "linear":
            return (inv_freq / np.float32(self.factor)).astype(np.float32)
        # yarn: interpolate the low frequencies, keep the high ones, ramp in between.
        original = self.original_max_position_embeddings

        def correction_dim(rotations: float) -> float:
            return (self.dim * math.log(original / (rotations * 2 * math.pi))) / (
                2 * math.log(self.theta)
            )

        low, high = correction_dim(self.beta_fast), correction_dim(self.beta_slow)
        if self.truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, self.dim - 1)
        if low == high:
            high += 0.001  # transformers' guard against a zero-width ramp
        ramp = np.clip((np.arange(self.dim // 2, dtype=np.float32) - low) / (high - low), 0, 1)
        interpolation = np.float32(1.0) / (np.float32(self.factor) * base)
        extrapolation_factor = np.float32(1.0) - ramp.astype(np.float32)
        mixed = interpolation * (1 - extrapolation_factor) + inv_freq * extrapolation_factor
        return mixed.astype(np.float32)


def yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    """YaRN's magnitude correction (transformers' `get_mscale` / `yarn_get_mscale`)."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def parse_rope(hf: dict[str, Any], *, dim: int, default_theta: float) -> RopeSpec:
    """RopeSpec from config.json: `rope_parameters` (transformers 5.x) or the legacy
    `rope_theta` + `rope_scaling`, standardised as `standardize_rope_params` does."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    kind = params.get("rope_type", params.get("type", "default"))
    theta = float(params.get("rope_theta", hf.get("rope_theta", default_theta)))
    if kind == "default":
        return RopeSpec(theta=theta, dim=dim)
    if kind == "linear":
        return RopeSpec(theta=theta, dim=dim, kind="linear", factor=float(params["factor"]))
    if kind == "yarn":
        original = params.get("original_max_position_embeddings") or hf.get(
            "original_max_position_embeddings", hf["max_position_embeddings"]
        )
        factor = params.get("factor") or hf["max_position_embeddings"] / original
        attention_factor = params.get("attention_factor")
        if attention_factor is None:
            mscale, mscale_all_dim = params.get("mscale"), params.get("mscale_all_dim")
            if mscale and mscale_all_dim:
                attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
            else:
                attention_factor = yarn_mscale(factor)
        return RopeSpec(
            theta=theta,
            dim=dim,
            kind="yarn",
            factor=float(factor),
            original_max_position_embeddings=int(original),
            beta_fast=float(params.get("beta_fast") or 32),
            beta_slow=float(params.get("beta_slow") or 1),
            truncate=bool(params.get("truncate", True)),
            attention_factor=float(attention_factor),
        )
    raise ValueError(f"rope type {kind!r} is not supported (supported: default, linear, yarn)")


@dataclasses.dataclass(frozen=True)
class HFMoEConfig:
    """An imported MoE decoder: attention, layer plan, experts and router, family-neutral."""

    name: str
    family: str  # config.json's model_type
    vocab_size: int
    d_model: int  # hidden_size
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int  # query/key head dim (MLA: qk_nope_head_dim + qk_rope_head_dim)
    max_len: int  # max_position_embeddings
    norm_eps: float  # rms_norm_eps
    rope: RopeSpec
    hidden_act: str = "silu"
    tie_embeddings: bool = False
    # -- attention ---------------------------------------------------------------------------
    attention: Literal["gqa", "mla"] = "gqa"
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: QKNorm | None = None  # OLMoE: over the whole projection; Qwen3: per head
    clip_qkv: float | None = None
    sliding_windows: tuple[int | None, ...] = ()  # per layer; () = none anywhere
    attn_scale: float | None = None  # softmax scale; None: head_dim**-0.5
    # MLA (DeepSeek-V3) shapes
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # -- layer plan and FFNs -----------------------------------------------------------------
    layer_kinds: tuple[str, ...] = ()  # "moe" or "dense", one per layer
    dense_ff: int = 0  # intermediate_size of the dense layers
    expert_ff: int = 0  # each routed expert's hidden size
    shared_ff: int = 0  # shared expert's hidden size; 0: none
    shared_gate: bool = False  # Qwen2-MoE: a per-token sigmoid gate on the shared expert
    # -- router --------------------------------------------------------------------------------
    num_experts: int = 0
    top_k: int = 2
    score: ScoreFunction = "softmax"
    norm_topk_prob: bool = False
    norm_topk_eps: float = 0.0  # DeepSeek-V3 adds 1e-20 to the top-k sum
    routed_scaling_factor: float = 1.0
    n_group: int = 1  # group-limited selection: keep topk_group of n_group expert groups
    topk_group: int = 1
    choice_bias: bool = False  # DeepSeek-V3's e_score_correction_bias (choice only)
    router_logits_f32: bool = False  # the router matmul itself in float32 (DeepSeek-V3)
    # Mixtral and DeepSeek combine with float32 weights; OLMoE / Qwen cast them to the
    # model dtype first (which the trace's gate then records).
    gate_in_model_dtype: bool = False
    aux_loss: AuxLoss = "load_balancing"
    capacity_factor: float | None = None  # dropless, always
    preset: str | None = None
    source: str = "{}"  # config.json as read, for the model card

    def __post_init__(self) -> None:
        if len(self.layer_kinds) != self.num_layers:
            raise ValueError("layer_kinds must name every layer")
        if self.sliding_windows and len(self.sliding_windows) != self.num_layers:
            raise ValueError("sliding_windows must give every layer (or be empty)")
        if self.num_experts and not 0 < self.top_k <= self.num_experts:
            raise ValueError(f"top_k {self.top_k} must be in [1, {self.num_experts}]")
        if self.num_experts % self.n_group:
            raise ValueError(f"{self.num_experts} experts do not split into {self.n_group} groups")

    def ffn_kind(self, layer: int) -> str:
        return self.layer_kinds[layer]

    @property
    def moe_layers(self) -> tuple[int, ...]:
        return tuple(i for i, kind in enumerate(self.layer_kinds) if kind == "moe")

    @property
    def is_moe(self) -> bool:
        return bool(self.moe_layers)

    def window(self, layer: int) -> int | None:
        return self.sliding_windows[layer] if self.sliding_windows else None

    def replace(self, **overrides: Any) -> HFMoEConfig:
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["source"] = json.loads(self.source)
        return data


@dataclasses.dataclass(frozen=True)
class TensorNames:
    """How a family names its MoE tensors in the per-expert (Hub) layout. The fused layout
    that transformers 5.x writes with `save_original_format=False` is the same for every
    family: `model.layers.{i}.mlp.experts.gate_up_proj` [e, 2f, d] (gate rows first) and
    `.experts.down_proj` [e, d, f]; router `mlp.gate.weight`."""

    moe: str = "mlp"  # Mixtral's Hub checkpoints: "block_sparse_moe"
    gate_up_down: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")  # Mixtral w1 w3 w2
    shared: str | None = None  # "shared_expert" (Qwen2-MoE), "shared_experts" (DeepSeek-V3)


def heads(hf: dict[str, Any]) -> tuple[int, int]:
    """(query heads, key/value heads); a missing or null kv count means plain MHA."""
    num_heads = int(hf["num_attention_heads"])
    return num_heads, int(hf.get("num_key_value_heads") or num_heads)


def qwen_layer_kinds(hf: dict[str, Any], num_experts: int) -> tuple[str, ...]:
    """Qwen-MoE's layer plan: MoE unless listed in `mlp_only_layers`, every
    `decoder_sparse_step`-th layer (counting from 1)."""
    dense = set(hf.get("mlp_only_layers") or [])
    step = int(hf.get("decoder_sparse_step", 1))
    return tuple(
        "moe" if i not in dense and num_experts > 0 and (i + 1) % step == 0 else "dense"
        for i in range(int(hf["num_hidden_layers"]))
    )


def first_key(hf: dict[str, Any], keys: tuple[str, ...], default: Any) -> Any:
    """The first of `keys` that config.json sets: a field and its `attribute_map` alias
    (transformers writes whichever the config class declares, e.g. Qwen3-MoE 5.x writes
    `num_local_experts` where the Hub's checkpoints say `num_experts`)."""
    for key in keys:
        if hf.get(key) is not None:
            return hf[key]
    return default
