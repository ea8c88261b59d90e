"""Qwen3-MoE (transformers `modeling_qwen3_moe.py`, 5.24.0): GQA with an explicit
`head_dim`, q and k RMS-normalised per head before RoPE, biases on q/k/v/o with
`attention_bias`, a sliding window on every layer only with `use_sliding_window`; dense
layers from `mlp_only_layers` / `decoder_sparse_step`; softmax router as OLMoE's (the
class default `norm_topk_prob` is False, released checkpoints set it True), no shared
expert."""

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

MODEL_TYPE = "qwen3_moe"
NAMES = TensorNames()


def parse_config(hf: dict[str, Any], *, name: str) -> HFMoEConfig:
    num_heads, num_kv = heads(hf)
    d_model, num_layers = int(hf["hidden_size"]), int(hf["num_hidden_layers"])
    head_dim = int(hf.get("head_dim") or d_model // num_heads)
    num_experts = int(first_key(hf, ("num_local_experts", "num_experts"), 128))
    bias = bool(hf.get("attention_bias", False))
    window = hf.get("sliding_window") if hf.get("use_sliding_window", False) else None
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
        qkv_bias=bias,
        o_bias=bias,
        qk_norm="head",
        sliding_windows=(int(window),) * num_layers if window is not None else (),
        layer_kinds=qwen_layer_kinds(hf, num_experts),
        dense_ff=int(hf.get("intermediate_size", 6144)),
        expert_ff=int(hf.get("moe_intermediate_size", 768)),
        num_experts=num_experts,
        top_k=int(hf.get("num_experts_per_tok", 8)),
        score="softmax",
        norm_topk_prob=bool(hf.get("norm_topk_prob", False)),
        gate_in_model_dtype=True,
    )
