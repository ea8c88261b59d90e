"""The imported families' router on its own (glam.families.router.route), and ablation
through the whole forward pass."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

import glam
from glam.families.config import HFMoEConfig, RopeSpec
from glam.families.router import route
from glam.model import forward
from tests.glam.families import reference as ref

BASE = HFMoEConfig(
    name="t", family="test", vocab_size=8, d_model=4, num_layers=1, num_heads=1,
    num_kv_heads=1, head_dim=4, max_len=8, norm_eps=1e-6, rope=RopeSpec(theta=1e4, dim=4),
    layer_kinds=("moe",), num_experts=8, top_k=2,
)  # fmt: skip
SIGMOID = dataclasses.replace(
    BASE, score="sigmoid", n_group=4, topk_group=2, norm_topk_prob=True, norm_topk_eps=1e-20,
    routed_scaling_factor=2.5, choice_bias=True, aux_loss="sequence_balance",
)  # fmt: skip


def _route(cfg, logits, **kw):
    logits = jnp.asarray(logits, jnp.float32)[None, None]
    return route(logits, cfg, mask_bs=jnp.ones((1, 1), bool), **kw)


def test_group_limited_choice_skips_the_best_expert_of_a_weak_group():
    # Groups of two: {0,1} {2,3} {4,5} {6,7}. Expert 0 is the best single score, but its
    # group's top-2 sum is the lowest, so it cannot be chosen; groups {2,3} and {6,7} win.
    logits = [3.0, -6.0, 1.0, 1.2, -1.0, -1.0, 0.8, 0.9]
    routing = _route(SIGMOID, logits)
    assert routing.expert[0, 0].tolist() == [3, 2]
    scores = 1 / (1 + np.exp(-np.asarray(logits)))
    weights = scores[[3, 2]] / scores[[3, 2]].sum() * 2.5
    np.testing.assert_allclose(routing.gate[0, 0], weights, rtol=1e-6)
    np.testing.assert_allclose(routing.prob[0, 0], scores[[3, 2]], rtol=1e-6)


def test_the_choice_bias_chooses_but_does_not_weigh():
    logits = np.zeros(8)
    bias = np.zeros(8)
    bias[[4, 5]] = 1.0  # only the bias tells the experts apart
    routing = _route(SIGMOID, logits, choice_bias_e=jnp.asarray(bias, jnp.float32))
    assert sorted(routing.expert[0, 0].tolist()) == [4, 5]
    np.testing.assert_allclose(routing.gate[0, 0], [1.25, 1.25], rtol=1e-6)  # 0.5 / 1.0 * 2.5


def test_an_ablated_expert_adds_nothing_to_its_groups_score():
    logits = [3.0, 2.5, 1.0, 1.2, -1.0, -1.0, 0.8, 0.9]
    assert _route(SIGMOID, logits).expert[0, 0].tolist() == [0, 1]
    routing = _route(SIGMOID, logits, ablated_e=jnp.asarray([True] + [False] * 7))
    # Group {0,1} now scores expert 1 alone (0.92), below {2,3} (1.50) and {6,7} (1.40):
    # the choice moves to those groups, as the group stage of a live expert 0 never would.
    assert routing.expert[0, 0].tolist() == [3, 2]
    assert float(routing.probs[0, 0, 0]) == 0.0


def test_softmax_ablation_renormalises_over_the_live_experts():
    logits = np.linspace(2.0, -2.0, 8)
    ablated = jnp.asarray([True, False] + [False] * 6)
    routing = _route(dataclasses.replace(BASE, norm_topk_prob=True), logits, ablated_e=ablated)
    assert routing.expert[0, 0].tolist() == [1, 2]
    live = np.exp(logits[1:]) / np.exp(logits[1:]).sum()
    np.testing.assert_allclose(routing.prob[0, 0], live[:2], rtol=1e-6)
    np.testing.assert_allclose(routing.gate[0, 0], live[:2] / live[:2].sum(), rtol=1e-6)


def test_perfect_balance_scores_k_for_softmax_and_one_for_sigmoid():
    # Four tokens spreading their top-2 evenly over 8 experts, equal probabilities.
    eye = np.eye(8)
    logits = np.stack([10 * (eye[2 * t] + eye[2 * t + 1]) for t in range(4)])[None]
    mask = jnp.ones((1, 4), bool)
    soft = route(jnp.asarray(logits, jnp.float32), BASE, mask_bs=mask)
    assert float(soft.aux_loss) == pytest.approx(2.0, rel=1e-3)
    sig = route(jnp.asarray(logits, jnp.float32), dataclasses.replace(SIGMOID, n_group=1,
                topk_group=1), mask_bs=mask)  # fmt: skip
    assert float(sig.aux_loss) == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize(
    ("config", "model", "overrides"),
    [
        ("OlmoeConfig", "OlmoeForCausalLM", dict(num_experts=8, num_experts_per_tok=4)),
        ("DeepseekV3Config", "DeepseekV3ForCausalLM", dict(
            first_k_dense_replace=1, n_routed_experts=8, n_group=4, topk_group=2,
            num_experts_per_tok=2, q_lora_rank=None, kv_lora_rank=8, qk_nope_head_dim=8,
            qk_rope_head_dim=4, v_head_dim=8, moe_intermediate_size=8, n_shared_experts=1,
        )),
    ],
    ids=["softmax", "sigmoid"],
)  # fmt: skip
def test_an_ablated_expert_is_never_chosen_and_changes_the_output(
    tmp_path, config, model, overrides
):
    hf = ref.build(config, model, vocab_size=40, hidden_size=16, intermediate_size=16,
                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                   **overrides)  # fmt: skip
    loaded = glam.load(ref.save(hf, tmp_path / "model", fused=True))
    tokens, mask = ref.batch(40, lengths=(10, 6))
    logits, trace = forward(loaded.model, tokens, mask, capture=True, router_probs=True)
    layer = loaded.config.moe_layers[-1]
    index = list(loaded.config.moe_layers).index(layer)
    favourite = int(np.bincount(trace.expert[index][mask].ravel()).argmax())
    ablated_logits, ablated = forward(loaded.model, tokens, mask, capture=True,
                                      router_probs=True, ablate={layer: [favourite]})  # fmt: skip
    assert favourite not in ablated.expert[index][mask]
    assert (ablated.router_probs[index][..., favourite] == 0).all()
    assert not np.allclose(np.asarray(ablated_logits)[mask], np.asarray(logits)[mask])
    # Layers before the ablated one route exactly as before.
    np.testing.assert_array_equal(ablated.expert[:index], trace.expert[:index])
