"""DeepSeek-V3 (transformers `modeling_deepseek_v3.py`, 5.24.0).

Multi-head latent attention (glam.families.layers.MLAttention) with the interleaved
rotation on the `qk_rope_head_dim` part; softmax scale qk_head_dim^-0.5, times mscale^2
when a scaled RoPE sets `mscale_all_dim`. The first `first_k_dense_replace` layers are
dense; the others route with sigmoid scores, a choice-only `e_score_correction_bias`,
group-limited top-k (`n_group`, `topk_group`), `norm_topk_prob` (+1e-20) and
`routed_scaling_factor`, in float32 from the matmul on; `n_shared_experts` experts run as
one ungated SwiGLU of n_shared * moe_intermediate_size. Layers past `num_hidden_layers`
(the multi-token-prediction module) are not loaded, as transformers does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from glam.families.config import HFMoEConfig, TensorNames, first_key, heads, parse_rope, yarn_mscale

MODEL_TYPE = "deepseek_v3"
NAMES = TensorNames(shared="shared_experts")


def parse_config(hf: dict[str, Any], *, name: str) -> HFMoEConfig:
    num_heads, _ = heads(hf)
    d_model, num_layers = int(hf["hidden_size"]), int(hf["num_hidden_layers"])
    nope, rope_dim = int(hf.get("qk_nope_head_dim", 128)), int(hf.get("qk_rope_head_dim", 64))
    qk_head_dim = nope + rope_dim
    rope = parse_rope(hf, dim=rope_dim, default_theta=1e4)
    rope = dataclasses.replace(rope, interleave=bool(hf.get("rope_interleave", True)))
    scale = qk_head_dim**-0.5
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    if rope.kind != "default" and params.get("mscale_all_dim"):
        scale *= yarn_mscale(rope.factor, float(params["mscale_all_dim"])) ** 2
    first_dense = int(hf.get("first_k_dense_replace", 3))
    moe_ff = int(hf.get("moe_intermediate_size", 2048))
    q_lora_rank = hf.get("q_lora_rank", 1536)
    return HFMoEConfig(
        name=name,
        family=MODEL_TYPE,
        vocab_size=int(hf["vocab_size"]),
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_heads,  # MLA expands every head from the latent
        head_dim=qk_head_dim,
        max_len=int(hf.get("max_position_embeddings", 4096)),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope=rope,
        hidden_act=hf.get("hidden_act", "silu"),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attention="mla",
        o_bias=bool(hf.get("attention_bias", False)),
        attn_scale=scale,
        q_lora_rank=int(q_lora_rank) if q_lora_rank is not None else None,
        kv_lora_rank=int(hf.get("kv_lora_rank", 512)),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope_dim,
        v_head_dim=int(hf.get("v_head_dim", 128)),
        layer_kinds=tuple("moe" if i >= first_dense else "dense" for i in range(num_layers)),
        dense_ff=int(hf.get("intermediate_size", 18432)),
        expert_ff=moe_ff,
        shared_ff=moe_ff * int(hf.get("n_shared_experts") or 0),
        num_experts=int(first_key(hf, ("n_routed_experts", "num_local_experts"), 256)),
        top_k=int(hf.get("num_experts_per_tok", 8)),
        score="sigmoid",
        norm_topk_prob=bool(hf.get("norm_topk_prob", True)),
        norm_topk_eps=1e-20,
        routed_scaling_factor=float(hf.get("routed_scaling_factor", 2.5)),
        n_group=int(hf.get("n_group") or 1),
        topk_group=int(hf.get("topk_group") or 1),
        choice_bias=True,
        router_logits_f32=True,
        aux_loss="sequence_balance",
    )
