"""The GLaM model: shapes, dense reduction, batch invariance, interventions, capture."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from glam.config import GlamConfig
from glam.layers import CapturePolicy, RouteOptions
from glam.model import _forward_compiled, build, forward

TINY = GlamConfig(
    name="test-tiny",
    vocab_size=97,
    d_model=32,
    d_ff=64,
    num_layers=4,
    num_heads=2,
    head_dim=16,
    num_experts=4,
    capacity_factor=2.0,
)


@pytest.fixture(scope="module")
def model():
    return build(TINY, seed=0)


def _tokens(batch: int, seq: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, TINY.vocab_size, (batch, seq)).astype(np.int32)


def test_shapes_and_dtypes(model):
    tokens = _tokens(3, 12)
    mask = np.ones_like(tokens, bool)
    mask[2, 7:] = False
    logits, trace = forward(model, tokens, mask, capture=True, router_probs=True)
    layers, experts = len(TINY.moe_layers), TINY.num_experts
    assert TINY.moe_layers == (1, 3)
    assert logits.shape == (3, 12, TINY.vocab_size) and logits.dtype == np.float32
    np.testing.assert_array_equal(trace.moe_layers, [1, 3])
    assert trace.expert.shape == (layers, 3, 12, 2) and trace.expert.dtype == np.int16
    for name in ("gate", "prob"):
        assert getattr(trace, name).shape == (layers, 3, 12, 2)
        assert getattr(trace, name).dtype == np.float32
    assert trace.kept.dtype == bool and trace.entropy.shape == (layers, 3, 12)
    assert trace.aux_loss.shape == (layers,) and trace.z_loss.shape == (layers,)
    assert trace.nll.shape == (3, 12) and trace.predicted.dtype == np.int32
    assert trace.router_probs.shape == (layers, 3, 12, experts)
    np.testing.assert_allclose(trace.router_probs.sum(-1), 1.0, rtol=1e-5)
    # The two recorded probabilities are the router's probabilities of the chosen experts.
    picked = np.take_along_axis(trace.router_probs, trace.expert.astype(np.int64), axis=-1)
    np.testing.assert_allclose(picked, trace.prob, rtol=1e-6)
    entropy = -(trace.router_probs * np.log(trace.router_probs)).sum(-1)
    np.testing.assert_allclose(trace.entropy, entropy, rtol=1e-4)
    # nll is NaN exactly where there is no valid next token.
    assert np.isnan(trace.nll[:, -1]).all() and np.isnan(trace.nll[2, 6:]).all()
    assert np.isfinite(trace.nll[2, :6]).all() and np.isfinite(trace.nll[:2, :-1]).all()
    log_probs = logits - np.log(np.exp(np.asarray(logits, np.float64)).sum(-1, keepdims=True))
    want = -np.take_along_axis(log_probs[:, :-1], tokens[:, 1:, None], -1)[..., 0]
    np.testing.assert_allclose(trace.nll[:2, :-1], want[:2], rtol=1e-4)
    np.testing.assert_array_equal(trace.predicted, np.asarray(logits).argmax(-1))


def test_one_expert_equals_dense_model():
    moe_cfg = TINY.replace(num_experts=1, capacity_factor=None)
    dense_cfg = TINY.replace(num_experts=0, moe_dense_hidden=TINY.d_ff)
    moe, dense = build(moe_cfg, seed=3), build(dense_cfg, seed=4)
    # Give the dense model the MoE model's weights, the lone expert as its GELU FFN.
    for index, block in enumerate(moe.blocks):
        target = dense.blocks[index]
        for part in ("attn_norm", "attn", "ffn_norm"):
            nnx.update(getattr(target, part), nnx.state(getattr(block, part)))
        if block.kind == "moe":
            target.ffn.up_df.set_value(block.ffn.up_edf[...][0])
            target.ffn.down_fd.set_value(block.ffn.down_efd[...][0])
        else:
            nnx.update(target.ffn, nnx.state(block.ffn))
    dense.embed_vd.set_value(moe.embed_vd[...])
    nnx.update(dense.final_norm, nnx.state(moe.final_norm))
    tokens = _tokens(2, 10)
    moe_logits, trace = forward(moe, tokens, capture=True)
    dense_logits, _ = forward(dense, tokens)
    np.testing.assert_allclose(np.asarray(moe_logits), np.asarray(dense_logits), atol=1e-5)
    assert (trace.expert[..., 0] == 0).all() and trace.kept[..., 0].all()
    np.testing.assert_allclose(trace.gate[..., 0], 1.0, rtol=1e-6)


def test_dense_equivalent_has_equal_activated_params():
    from glam.params import count_params

    cfg = GlamConfig.preset("glam-small")
    dense = cfg.dense_equivalent()
    assert dense.moe_layers == () and dense.ffn_kind(1) == "gelu"
    assert dense.moe_dense_hidden == 2 * cfg.d_ff
    moe_counts, dense_counts = count_params(cfg), count_params(dense)
    router = cfg.d_model * cfg.num_experts * len(cfg.moe_layers)
    assert moe_counts.activated - router == dense_counts.activated
    idle_experts = (cfg.num_experts - 2) * 2 * cfg.d_model * cfg.d_ff * len(cfg.moe_layers)
    assert moe_counts.total - dense_counts.total == idle_experts + router


def test_sequence_routes_the_same_alone_and_in_a_batch(model):
    tokens = _tokens(4, 20, seed=5)
    mask = np.ones_like(tokens, bool)
    mask[1, 9:] = False  # a short sequence padded inside the batch
    _, batch_trace = forward(model, tokens, mask, capture=True)
    for row, length in ((0, 20), (1, 9), (3, 20)):
        _, alone = forward(model, tokens[row : row + 1, :length], capture=True)
        valid = slice(0, length)
        np.testing.assert_array_equal(alone.expert[:, 0], batch_trace.expert[:, row, valid])
        np.testing.assert_array_equal(alone.kept[:, 0], batch_trace.kept[:, row, valid])
        np.testing.assert_allclose(alone.gate[:, 0], batch_trace.gate[:, row, valid], atol=1e-5)
    # With this capacity some assignments are really dropped, so the check has teeth.
    assert not batch_trace.kept[:, mask].all()


def test_ablated_experts_are_never_chosen_and_change_the_output(model):
    tokens = _tokens(2, 16, seed=7)
    logits, trace = forward(model, tokens, capture=True)
    favourite = int(np.bincount(trace.expert[0, ..., 0].ravel()).argmax())
    ablate = {1: [favourite], 3: [0, 1]}
    ablated_logits, ablated = forward(model, tokens, capture=True, ablate=ablate)
    assert not (ablated.expert[0] == favourite).any()
    assert not np.isin(ablated.expert[1], [0, 1]).any()
    assert np.abs(np.asarray(logits) - np.asarray(ablated_logits)).max() > 1e-4


@pytest.mark.parametrize(
    ("ablate", "message"),
    [({0: [1]}, "not an MoE layer"), ({1: [9]}, "does not exist"), ({1: [0, 1, 2]}, "at least 2")],
)
def test_bad_ablation_is_a_clear_error(model, ablate, message):
    with pytest.raises(ValueError, match=message):
        forward(model, _tokens(1, 4), ablate=ablate)


def test_capacity_factor_override_changes_drops(model):
    tokens = _tokens(2, 32, seed=9)
    _, tight = forward(model, tokens, capture=True, capacity_factor=0.5)
    _, never = forward(model, tokens, capture=True, capacity_factor=float("inf"))
    assert never.kept.all()
    assert tight.kept.mean() < 0.9


def test_capacity_factors_share_compiled_programs_and_route_exactly(model):
    """Any factor a client sends gets its exact capacity, yet the programs compiled for one
    shape stay few: the capacity is an input, only the buffer size (a power of two) is
    static (issue 18.8). Ten factors, at most six programs."""
    cfg = TINY.replace(name="capacity-programs")  # programs of its own
    fresh = build(cfg, seed=0)
    tokens = _tokens(2, 32, seed=11)
    mask = np.ones_like(tokens, bool)
    mask[1, 20:] = False
    factors = [0.3 + 0.37 * i for i in range(10)]  # 0.3 .. 3.63
    before = _forward_compiled._cache_size()
    for index, factor in enumerate(factors):
        logits, trace = forward(fresh, tokens, mask, capture=True, capacity_factor=factor)
        if index % 3:
            continue
        # The reference: the model's own in-graph capacity rule (the training path), run
        # eagerly (slow) for a few of the factors.
        ref_logits, stats, _ = fresh(
            jnp.asarray(tokens), mask_bs=jnp.asarray(mask),
            options=RouteOptions(capacity_factor=factor),
        )  # fmt: skip
        dropped = (~trace.kept & mask[None, :, :, None]).sum(axis=(1, 2, 3))
        np.testing.assert_allclose(dropped / (2 * mask.sum()), np.asarray(stats.drop_rate))
        np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), atol=2e-5)
    compiled = _forward_compiled._cache_size() - before
    assert len({round(f, 2) for f in factors}) == 10
    # Buffers of 1, 2, 4, 8, 16 or 32 slots: at most six programs, whatever the factors.
    assert compiled <= 6, compiled


def test_capture_off_returns_no_trace_and_the_same_logits(model):
    tokens = _tokens(2, 8)
    plain, trace = forward(model, tokens)
    captured, _ = forward(model, tokens, capture=True)
    assert trace is None
    np.testing.assert_array_equal(np.asarray(plain), np.asarray(captured))


def test_capture_off_compiles_no_capture_work(model):
    graphdef, state = nnx.split(model)
    tokens = _tokens(2, 8)
    mask = np.ones_like(tokens, bool)
    ablated = np.zeros((2, TINY.num_experts), bool)

    def hlo(policy: CapturePolicy) -> str:
        options = RouteOptions(capacity_factor=None, capture=policy, buffer_capacity=4)
        capacity = np.full((2,), 4, np.int32)
        lowered = _forward_compiled.lower(
            graphdef, state, tokens, mask, ablated, capacity, options=options
        )
        return lowered.compile().as_text()

    plain, captured = hlo(CapturePolicy()), hlo(CapturePolicy(routing=True))
    # The capture program computes router entropy (a log) and next-token losses; the plain
    # program has none of those outputs and strictly fewer instructions.
    assert plain.count("\n") < captured.count("\n")
    assert plain.count(" log(") < captured.count(" log(")


def test_forward_is_compiled_once_per_shape(model):
    before = _forward_compiled._cache_size()
    for seed in range(3):
        forward(model, _tokens(2, 11, seed=seed), capture=True, ablate={1: [seed]})
    assert _forward_compiled._cache_size() == before + 1


def test_bad_tokens_are_rejected(model):
    with pytest.raises(ValueError, match="token ids"):
        forward(model, np.array([[0, TINY.vocab_size]]))
    with pytest.raises(ValueError, match=r"\[batch, seq\]"):
        forward(model, np.array([1, 2, 3]))


def test_selected_rows_report_the_losses_they_would_have_alone(model):
    tokens = _tokens(3, 16, seed=13)
    mask = np.ones_like(tokens, bool)
    mask[2, 5:] = False
    _, batch = forward(model, tokens, mask, capture=True)
    for row, length in ((0, 16), (2, 5)):
        _, alone = forward(model, tokens[row : row + 1, :length], capture=True)
        picked = batch.select([row])
        np.testing.assert_allclose(picked.aux_loss, alone.aux_loss, rtol=1e-5)
        np.testing.assert_allclose(picked.z_loss, alone.z_loss, rtol=1e-5)
    both = batch.select([0, 1])
    assert both.tokens.shape == (2, 16) and both.aux_loss.shape == (2,)
