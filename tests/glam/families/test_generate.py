"""glam.generate runs imported models unchanged (its KV cache holds GQA's key/value heads
and MLA's expanded keys and values): greedy continuations equal transformers' own."""

from __future__ import annotations

import pytest

import glam
from glam.generate import generate
from tests.glam.families import reference as ref

torch = ref.torch
SHAPE = dict(vocab_size=40, hidden_size=16, intermediate_size=16, num_hidden_layers=2,
             num_attention_heads=4, max_position_embeddings=64)  # fmt: skip


@pytest.mark.parametrize(
    ("config", "model", "overrides"),
    [
        ("MixtralConfig", "MixtralForCausalLM",
         dict(num_key_value_heads=2, num_local_experts=4, sliding_window=3)),
        ("Qwen3MoeConfig", "Qwen3MoeForCausalLM",
         dict(num_key_value_heads=2, head_dim=8, num_experts=8, num_experts_per_tok=3,
              moe_intermediate_size=12)),
        ("DeepseekV3Config", "DeepseekV3ForCausalLM",
         dict(num_key_value_heads=4, first_k_dense_replace=1, n_routed_experts=8, n_group=4,
              topk_group=2, num_experts_per_tok=2, q_lora_rank=None, kv_lora_rank=8,
              qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6, moe_intermediate_size=8)),
    ],
    ids=["mixtral-sliding", "qwen3_moe", "deepseek_v3"],
)  # fmt: skip
def test_greedy_generation_matches_transformers(tmp_path, config, model, overrides):
    hf = ref.build(config, model, **SHAPE, **overrides)
    loaded = glam.load(ref.save(hf, tmp_path / "model", fused=True))
    prompt = "the expert router token"
    ours = generate(loaded.model, loaded.tokenizer, prompt, max_new_tokens=8, stop_at_eos=False)
    ids = torch.as_tensor(loaded.tokenizer.encode(prompt))[None]
    with torch.no_grad():
        theirs = hf.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None,
                             pad_token_id=0)  # fmt: skip
    assert ours.tokens.tolist() == theirs[0].tolist()
    assert ours.trace.expert.shape[-1] == loaded.config.top_k
