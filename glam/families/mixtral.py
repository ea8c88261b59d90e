"""Mixtral (transformers `modeling_mixtral.py`, 5.24.0): GQA with RoPE (theta 1e6 unless
set), an optional sliding window on every layer, every layer MoE; softmax router whose
top-k is always renormalised and kept in float32. Hub checkpoints name the experts
`block_sparse_moe.experts.{j}.w1/w3/w2` (gate, up, down)."""

from __future__ import annotations

from typing import Any

from glam.families.config import HFMoEConfig, TensorNames, first_key, heads, parse_rope

MODEL_TYPE = "mixtral"
NAMES = TensorNames(moe="block_sparse_moe", gate_up_down=("w1", "w3", "w2"))


def parse_config(hf: dict[str, Any], *, name: str) -> HFMoEConfig:
    num_heads, num_kv = heads(hf)
    d_model, num_layers = int(hf["hidden_size"]), int(hf["num_hidden_layers"])
    head_dim = int(hf.get("head_dim") or d_model // num_heads)
    window = hf.get("sliding_window")
    return HFMoEConfig(
        name=name,
        family=MODEL_TYPE,
        vocab_size=int(hf["vocab_size"]),
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv,
        head_dim=head_dim,
        max_len=int(hf.get("max_position_embeddings", 4096 * 32)),
        norm_eps=float(hf.get("rms_norm_eps", 1e-5)),
        rope=parse_rope(hf, dim=head_dim, default_theta=1e6),
        hidden_act=hf.get("hidden_act", "silu"),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        sliding_windows=(int(window),) * num_layers if window is not None else (),
        layer_kinds=("moe",) * num_layers,
        expert_ff=int(hf.get("intermediate_size", 14336)),
        num_experts=int(first_key(hf, ("num_local_experts", "num_experts"), 8)),
        top_k=int(hf.get("num_experts_per_tok", 2)),
        score="softmax",
        norm_topk_prob=True,  # no flag: Mixtral always renormalises its top-k
    )
