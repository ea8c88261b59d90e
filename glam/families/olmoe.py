"""OLMoE (transformers `modeling_olmoe.py`, 5.24.0): GQA with RoPE, q and k RMS-normalised
over the whole projection before the head split, then optionally clipped (`clip_qkv`);
every layer MoE; softmax router, top-k renormalised only with `norm_topk_prob` (False in
OLMoE-1B-7B), the weights cast to the model dtype."""

from __future__ import annotations

from typing import Any

from glam.families.config import HFMoEConfig, TensorNames, first_key, heads, parse_rope

MODEL_TYPE = "olmoe"
NAMES = TensorNames()


def parse_config(hf: dict[str, Any], *, name: str) -> HFMoEConfig:
    num_heads, num_kv = heads(hf)
    d_model, num_layers = int(hf["hidden_size"]), int(hf["num_hidden_layers"])
    head_dim = int(hf.get("head_dim") or d_model // num_heads)
    bias = bool(hf.get("attention_bias", False))
    clip = hf.get("clip_qkv")
    return HFMoEConfig(
        name=name,
        family=MODEL_TYPE,
        vocab_size=int(hf["vocab_size"]),
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv,
        head_dim=head_dim,
        max_len=int(hf.get("max_position_embeddings", 4096)),
        norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        rope=parse_rope(hf, dim=head_dim, default_theta=1e4),
        hidden_act=hf.get("hidden_act", "silu"),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        qkv_bias=bias,
        o_bias=bias,
        qk_norm="full",
        clip_qkv=float(clip) if clip is not None else None,
        layer_kinds=("moe",) * num_layers,
        expert_ff=int(hf.get("intermediate_size", 2048)),
        num_experts=int(first_key(hf, ("num_experts", "num_local_experts"), 64)),
        top_k=int(hf.get("num_experts_per_tok", 8)),
        score="softmax",
        norm_topk_prob=bool(hf.get("norm_topk_prob", False)),
        gate_in_model_dtype=True,
    )
