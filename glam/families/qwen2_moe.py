"""Qwen2-MoE (transformers `modeling_qwen2_moe.py`, 5.24.0): GQA with RoPE and q/k/v
biases (`qkv_bias`, o_proj never), sliding windows on the layers `layer_types` marks;
dense layers from `mlp_only_layers` / `decoder_sparse_step`; softmax router as OLMoE's,
plus one shared SwiGLU expert scaled per token by sigmoid(shared_expert_gate(x))."""

from __future__ import annotations

from typing import Any

from glam.families.config import (
    HFMoEConfig,
    TensorNames,
    first_key,
    heads,
    parse_rope,
    qwen_layer_kinds,
)

MODEL_TYPE = "qwen2_moe"
NAMES = TensorNames(shared="shared_expert")


def _windows(hf: dict[str, Any], num_layers: int) -> tuple[int | None, ...]:
    if not hf.get("use_sliding_window", False):
        return ()
    window = int(hf["sliding_window"])
    kinds = hf.get("layer_types") or [
        "sliding_attention"
        if (i + 1) % 2 and i < hf.get("max_window_layers", 28)
        else "full_attention"
        for i in range(num_layers)
    ]
    return tuple(window if kind == "sliding_attention" else None for kind in kinds)


def parse_config(hf: dict[str, Any], *, name: str) -> HFMoEConfig:
    num_heads, num_kv = heads(hf)
    d_model, num_layers = int(hf["hidden_size"]), int(hf["num_hidden_layers"])
    head_dim = int(hf.get("head_dim") or d_model // num_heads)
    num_experts = int(first_key(hf, ("num_experts", "num_local_experts"), 60))
    return HFMoEConfig(
        name=name,
        family=MODEL_TYPE,
        vocab_size=int(hf["vocab_size"]),
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv,
        head_dim=head_dim,
        max_len=int(hf.get("max_position_embeddings", 32768)),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope=parse_rope(hf, dim=head_dim, default_theta=1e4),
        hidden_act=hf.get("hidden_act", "silu"),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=bool(hf.get("qkv_bias", True)),
        sliding_windows=_windows(hf, num_layers),
        layer_kinds=qwen_layer_kinds(hf, num_experts),
        dense_ff=int(hf.get("intermediate_size", 5632)),
        expert_ff=int(hf.get("moe_intermediate_size", 1408)),
        shared_ff=int(hf.get("shared_expert_intermediate_size", 5632)),
        shared_gate=True,
        num_experts=num_experts,
        top_k=int(hf.get("num_experts_per_tok", 4)),
        score="softmax",
        norm_topk_prob=bool(hf.get("norm_topk_prob", False)),
        gate_in_model_dtype=True,
    )
