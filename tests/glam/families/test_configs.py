"""Released models' config.json files (their Hub form: legacy `rope_theta` / `rope_scaling`,
`num_experts` aliases) read into HFMoEConfig: the parameter counts their authors publish
come out of the shapes, and transformers 5.x rewriting a config changes nothing."""

from __future__ import annotations

import dataclasses
import math

import pytest

from glam.families.loader import FAMILIES
from glam.families.model import count_params
from tests.glam.families import reference as ref

# From each model's config.json (the fields that shape the model or its routing).
RELEASED = {
    "Mixtral-8x7B": dict(
        model_type="mixtral", vocab_size=32000, hidden_size=4096, intermediate_size=14336,
        num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        max_position_embeddings=32768, rms_norm_eps=1e-5, rope_theta=1e6, sliding_window=None,
        num_local_experts=8, num_experts_per_tok=2, tie_word_embeddings=False,
    ),
    "OLMoE-1B-7B": dict(
        model_type="olmoe", vocab_size=50304, hidden_size=2048, intermediate_size=1024,
        num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=16,
        max_position_embeddings=4096, rope_theta=10000.0, clip_qkv=None, num_experts=64,
        num_experts_per_tok=8, norm_topk_prob=False, tie_word_embeddings=False,
    ),
    "Qwen1.5-MoE-A2.7B": dict(
        model_type="qwen2_moe", vocab_size=151936, hidden_size=2048, intermediate_size=5632,
        moe_intermediate_size=1408, shared_expert_intermediate_size=5632,
        num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=16, num_experts=60,
        num_experts_per_tok=4, decoder_sparse_step=1, norm_topk_prob=False,
        rope_theta=1e6, use_sliding_window=False, sliding_window=32768, max_window_layers=21,
        max_position_embeddings=8192, tie_word_embeddings=False,
    ),
    "Qwen3-30B-A3B": dict(
        model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
        moe_intermediate_size=768, num_hidden_layers=48, num_attention_heads=32,
        num_key_value_heads=4, head_dim=128, num_experts=128, num_experts_per_tok=8,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], rope_theta=1e6,
        rope_scaling=None, max_position_embeddings=40960, tie_word_embeddings=False,
        attention_bias=False, use_sliding_window=False, sliding_window=None,
    ),
    "DeepSeek-V3": dict(
        model_type="deepseek_v3", vocab_size=129280, hidden_size=7168, intermediate_size=18432,
        moe_intermediate_size=2048, num_hidden_layers=61, num_attention_heads=128,
        num_key_value_heads=128, n_shared_experts=1, n_routed_experts=256,
        num_experts_per_tok=8, n_group=8, topk_group=4, routed_scaling_factor=2.5,
        norm_topk_prob=True, first_k_dense_replace=3, q_lora_rank=1536, kv_lora_rank=512,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128,
        max_position_embeddings=163840, rope_theta=10000,
        rope_scaling=dict(type="yarn", factor=40, beta_fast=32, beta_slow=1, mscale=1.0,
                          mscale_all_dim=1.0, original_max_position_embeddings=4096),
        tie_word_embeddings=False, topk_method="noaux_tc", scoring_func="sigmoid",
        num_nextn_predict_layers=1,
    ),
}  # fmt: skip
# (total, activated) parameters as their model cards and papers state them.
PUBLISHED = {
    "Mixtral-8x7B": (46.7e9, 12.9e9),
    "OLMoE-1B-7B": (6.9e9, 1.3e9),
    "Qwen1.5-MoE-A2.7B": (14.3e9, 2.7e9),
    "Qwen3-30B-A3B": (30.5e9, 3.3e9),
    "DeepSeek-V3": (671e9, 37e9),
}


def _parse(hf: dict):
    return FAMILIES[hf["model_type"]].parse_config(hf, name="released")


@pytest.mark.parametrize("name", list(RELEASED))
def test_published_parameter_counts_come_out_of_the_shapes(name):
    count = count_params(_parse(RELEASED[name]))
    total, activated = PUBLISHED[name]
    # Published figures carry two or three significant digits.
    assert count.total == pytest.approx(total, rel=0.01)
    assert count.activated == pytest.approx(activated, rel=0.025)


@pytest.mark.parametrize("name", list(RELEASED))
def test_a_config_rewritten_by_transformers_reads_the_same(name):
    hub = RELEASED[name]
    rewritten = ref.transformers.AutoConfig.for_model(**hub).to_dict()
    assert dataclasses.replace(_parse(rewritten), rope=None) == dataclasses.replace(
        _parse(hub), rope=None
    )
    ours, theirs = _parse(hub).rope, _parse(rewritten).rope
    assert ours == theirs


def test_deepseek_v3_as_released():
    cfg = _parse(RELEASED["DeepSeek-V3"])
    assert cfg.moe_layers == tuple(range(3, 61))
    assert (cfg.score, cfg.n_group, cfg.topk_group, cfg.top_k) == ("sigmoid", 8, 4, 8)
    assert cfg.rope.kind == "yarn" and cfg.rope.factor == 40 and cfg.rope.interleave
    assert cfg.rope.attention_factor == 1.0  # mscale == mscale_all_dim: all of it in the scale
    assert cfg.attn_scale == pytest.approx(192**-0.5 * (0.1 * math.log(40) + 1) ** 2)
    assert cfg.shared_ff == 2048 and cfg.routed_scaling_factor == 2.5
