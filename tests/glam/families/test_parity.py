"""Each imported family against transformers itself, on tiny random checkpoints: logits,
the experts each token chose (as sets, and in rank order where transformers sorts them),
their combine weights and scores, the full router distribution and the aux loss."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from flax import nnx

import glam
from glam.model import forward
from tests.glam.families import reference as ref

torch = ref.torch

COMMON = dict(vocab_size=64, hidden_size=32, max_position_embeddings=128, pad_token_id=0)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    config: str
    model: str
    overrides: dict[str, Any]
    sorted_topk: bool = True  # transformers' top-k is descending (DeepSeek: unsorted)


CASES = [
    Case(
        "mixtral",
        "MixtralConfig",
        "MixtralForCausalLM",
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=24,
            num_local_experts=8,
            num_experts_per_tok=2,
        ),
    ),
    Case(
        "mixtral-sliding",
        "MixtralConfig",
        "MixtralForCausalLM",
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=24,
            num_local_experts=4,
            num_experts_per_tok=2,
            sliding_window=4,
            hidden_act="gelu",
        ),
    ),
    Case(
        "olmoe",
        "OlmoeConfig",
        "OlmoeForCausalLM",
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=16,
            num_experts=8,
            num_experts_per_tok=4,
            norm_topk_prob=False,
            tie_word_embeddings=True,
        ),
    ),
    Case(
        "olmoe-clip-norm",
        "OlmoeConfig",
        "OlmoeForCausalLM",
        dict(
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            intermediate_size=16,
            num_experts=8,
            num_experts_per_tok=2,
            norm_topk_prob=True,
            clip_qkv=0.5,
            attention_bias=True,
        ),
    ),
    Case(
        "qwen2_moe",
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        dict(
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=37,
            moe_intermediate_size=12,
            shared_expert_intermediate_size=36,
            num_experts=8,
            num_experts_per_tok=2,
            mlp_only_layers=[1],
            decoder_sparse_step=1,
        ),
    ),
    Case(
        "qwen2_moe-step-sliding",
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        dict(
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=37,
            moe_intermediate_size=12,
            shared_expert_intermediate_size=36,
            num_experts=8,
            num_experts_per_tok=3,
            decoder_sparse_step=2,
            norm_topk_prob=True,
            use_sliding_window=True,
            sliding_window=4,
            max_window_layers=3,
        ),
    ),
    Case(
        "qwen3_moe",
        "Qwen3MoeConfig",
        "Qwen3MoeForCausalLM",
        dict(
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=40,
            moe_intermediate_size=12,
            num_experts=16,
            num_experts_per_tok=4,
            norm_topk_prob=True,
            mlp_only_layers=[0],
        ),
    ),
    Case(
        "deepseek_v3",
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        dict(
            num_hidden_layers=3,
            first_k_dense_replace=1,
            num_attention_heads=4,
            num_key_value_heads=4,
            intermediate_size=40,
            moe_intermediate_size=12,
            q_lora_rank=32,
            kv_lora_rank=16,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=16,
            n_routed_experts=8,
            n_group=4,
            topk_group=2,
            num_experts_per_tok=2,
            n_shared_experts=1,
            routed_scaling_factor=2.5,
            norm_topk_prob=True,
        ),
        sorted_topk=False,
    ),
    Case(
        "deepseek_v3-q-plain-yarn",
        "DeepseekV3Config",
        "DeepseekV3ForCausalLM",
        dict(
            num_hidden_layers=2,
            first_k_dense_replace=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            intermediate_size=40,
            moe_intermediate_size=12,
            q_lora_rank=None,
            kv_lora_rank=16,
            qk_nope_head_dim=16,
            qk_rope_head_dim=8,
            v_head_dim=12,
            n_routed_experts=16,
            n_group=4,
            topk_group=2,
            num_experts_per_tok=4,
            n_shared_experts=2,
            routed_scaling_factor=1.5,
            norm_topk_prob=False,
            rope_parameters={
                "rope_type": "yarn",
                "rope_theta": 10000.0,
                "factor": 4.0,
                "mscale": 1.0,
                "mscale_all_dim": 1.0,
                "original_max_position_embeddings": 32,
            },
        ),
        sorted_topk=False,
    ),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.id)
def family(request, tmp_path_factory):
    """The case's HF model saved in the fused layout, loaded here, and both runs."""
    case: Case = request.param
    model = ref.build(case.config, case.model, **COMMON, **case.overrides)
    directory = ref.save(model, tmp_path_factory.mktemp(case.id), fused=True)
    tokens, mask = ref.batch(COMMON["vocab_size"])
    loaded = glam.load(directory)
    logits, trace = forward(loaded.model, tokens, mask, capture=True, router_probs=True)
    return {
        "case": case, "hf": model, "loaded": loaded, "tokens": tokens, "mask": mask,
        "logits": np.asarray(logits), "trace": trace, "reference": ref.run(model, tokens, mask),
    }  # fmt: skip


def _hf_moe_layers(model) -> list[int]:
    return [i for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")]


def test_logits_match_transformers(family):
    mask = family["mask"]
    np.testing.assert_allclose(
        family["logits"][mask], family["reference"]["logits"][mask], atol=1e-4, rtol=1e-4
    )


def test_config_describes_the_checkpoint(family):
    cfg, model = family["loaded"].config, family["hf"]
    assert cfg.family == model.config.model_type
    assert list(cfg.moe_layers) == _hf_moe_layers(model)
    assert cfg.top_k == model.config.num_experts_per_tok
    assert cfg.capacity_factor is None and cfg.is_moe
    assert family["trace"].moe_layers.tolist() == list(cfg.moe_layers)
    assert family["trace"].expert.shape[-1] == cfg.top_k


def test_chosen_experts_match_transformers(family):
    trace, mask = family["trace"], family["mask"]
    routers = family["reference"]["routers"]
    assert len(routers) == trace.num_layers
    for layer, (_, _, hf_index) in enumerate(routers):
        ours, theirs = trace.expert[layer][mask].astype(int), hf_index[mask].astype(int)
        assert (np.sort(ours, -1) == np.sort(theirs, -1)).all(), f"MoE layer {layer}"
        if family["case"].sorted_topk:
            assert (ours == theirs).all(), f"MoE layer {layer}: rank order"
        assert (trace.kept[layer]).all()
        if family["loaded"].config.score == "sigmoid":
            # The choice-only bias and the group stage must matter here, or this test
            # would not be testing them: plain top-k of the scores differs somewhere.
            plain = np.argsort(-routers[layer][0][mask], axis=-1)[:, : trace.top_k]
            assert (np.sort(plain, -1) != np.sort(theirs, -1)).any()


def _by_expert(expert: np.ndarray, values: np.ndarray) -> np.ndarray:
    order = np.argsort(expert, axis=-1)
    return np.take_along_axis(values, order, axis=-1)


def test_gates_and_scores_match_transformers(family):
    trace, mask, cfg = family["trace"], family["mask"], family["loaded"].config
    for layer, (hf_logits, hf_weight, hf_index) in enumerate(family["reference"]["routers"]):
        hf_index = hf_index.astype(int)
        if cfg.score == "softmax":
            scores = torch.softmax(torch.as_tensor(hf_logits), -1).numpy()
        else:
            scores = torch.sigmoid(torch.as_tensor(hf_logits)).numpy()
        ours_gate = _by_expert(trace.expert[layer], trace.gate[layer])[mask]
        np.testing.assert_allclose(ours_gate, _by_expert(hf_index, hf_weight)[mask], atol=1e-5)
        hf_prob = np.take_along_axis(scores, hf_index, -1)
        ours_prob = _by_expert(trace.expert[layer], trace.prob[layer])[mask]
        np.testing.assert_allclose(ours_prob, _by_expert(hf_index, hf_prob)[mask], atol=1e-5)
        np.testing.assert_allclose(trace.router_probs[layer][mask], scores[mask], atol=1e-5)
        share = scores / scores.sum(-1, keepdims=True)
        entropy = -(share * np.log(share)).sum(-1)
        np.testing.assert_allclose(trace.entropy[layer][mask], entropy[mask], atol=1e-4)


def test_aux_loss_is_the_family_loss_per_sequence(family):
    trace, mask, cfg = family["trace"], family["mask"], family["loaded"].config
    for layer, (hf_logits, _, hf_index) in enumerate(family["reference"]["routers"]):
        for row in range(mask.shape[0]):
            if cfg.score == "softmax":
                balance = ref.transformers.models.mixtral.modeling_mixtral.load_balancing_loss_func
                expected = float(balance(
                    (torch.as_tensor(hf_logits[row]),), cfg.num_experts, cfg.top_k,
                    torch.as_tensor(mask[row][None], dtype=torch.long),
                ))  # fmt: skip
            else:  # DeepSeek-V3's sequence-wise balance loss
                valid = mask[row]
                scores = 1 / (1 + np.exp(-hf_logits[row][valid]))
                counts = np.bincount(hf_index[row][valid].astype(int).ravel(),
                                     minlength=cfg.num_experts)  # fmt: skip
                frac = counts * cfg.num_experts / (cfg.top_k * valid.sum())
                expected = float(frac @ (scores / scores.sum(-1, keepdims=True)).mean(0))
            assert trace.group_aux_loss[layer, row] == pytest.approx(expected, rel=1e-4)
        assert trace.aux_loss[layer] == pytest.approx(trace.group_aux_loss[layer].mean(), rel=1e-5)


def test_both_expert_layouts_and_shards_load_the_same(family, tmp_path):
    per_expert = ref.save(family["hf"], tmp_path / "per-expert", fused=False)
    ref.shard(per_expert)
    loaded = glam.load(per_expert)
    ours = dict(nnx.to_flat_state(nnx.state(family["loaded"].model, nnx.Param)))
    theirs = dict(nnx.to_flat_state(nnx.state(loaded.model, nnx.Param)))
    assert ours.keys() == theirs.keys()
    for path, variable in ours.items():
        np.testing.assert_array_equal(variable.get_value(), theirs[path].get_value(), str(path))
