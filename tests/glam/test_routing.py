"""Top-2 gating against a loop oracle written from DESIGN.md, and the papers' one-hot form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glam import routing
from tests.glam.reference_gating import reference_top2

# Shapes come from a few buckets so each compiles once; values vary freely.
_gate = jax.jit(lambda logits, mask, capacity: routing.top2_gating(logits, capacity=capacity,
                                                                  mask=mask))  # fmt: skip


@st.composite
def gating_inputs(draw, groups=(1, 3), seqs=(5, 24), experts=(2, 5, 8), capacities=None):
    groups = draw(st.sampled_from(groups))
    seq = draw(st.sampled_from(seqs))
    experts = draw(st.sampled_from(experts))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    # A scale that sometimes makes routing very skewed, so capacity actually drops.
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    logits = (rng.normal(size=(groups, seq, experts)) * scale).astype(np.float32)
    logits[..., 0] += draw(st.sampled_from([0.0, 2.0]))  # a popular expert
    mask = rng.random((groups, seq)) < draw(st.sampled_from([1.0, 0.7]))
    capacity = draw(st.sampled_from(capacities or [1, 2, 4, seq]))
    return logits, mask, capacity


@given(gating_inputs())
def test_gating_matches_loop_reference(inputs):
    logits, mask, capacity = inputs
    got = _gate(logits, mask, jnp.full(logits.shape[0], capacity))
    want = reference_top2(logits, mask, np.full(logits.shape[0], capacity))
    valid = mask[..., None].repeat(2, -1)
    np.testing.assert_array_equal(np.asarray(got.expert)[valid], want["expert"][valid])
    np.testing.assert_array_equal(np.asarray(got.kept), want["kept"])
    np.testing.assert_array_equal(np.asarray(got.slot), want["slot"])
    np.testing.assert_allclose(np.asarray(got.gate), want["gate"], atol=1e-5)
    np.testing.assert_allclose(np.asarray(got.prob)[valid], want["prob"][valid], atol=1e-5)
    np.testing.assert_allclose(float(got.aux_loss), want["aux_loss"], rtol=1e-4, atol=1e-6)


@given(gating_inputs())
def test_gating_properties(inputs):
    logits, mask, capacity = inputs
    got = _gate(logits, mask, jnp.full(logits.shape[0], capacity))
    expert, kept, slot, gate = (np.asarray(a) for a in (got.expert, got.kept, got.slot, got.gate))
    # The two choices of a token are distinct experts.
    assert (expert[..., 0] != expert[..., 1]).all()
    # Padding takes no slot and has no weight.
    assert not kept[~mask].any()
    assert (gate[~mask] == 0).all()
    # Dropped gates are 0; kept slots are below capacity and unique per (group, expert).
    assert (gate[~kept] == 0).all()
    assert (slot[kept] < capacity).all() and (slot[kept] >= 0).all()
    for g in range(expert.shape[0]):
        pairs = list(zip(expert[g][kept[g]].tolist(), slot[g][kept[g]].tolist(), strict=True))
        assert len(pairs) == len(set(pairs))
    # Top-2 assignments queue behind every kept top-1 assignment of the same expert.
    for g in range(expert.shape[0]):
        for e in range(logits.shape[-1]):
            top1_slots = slot[g, :, 0][kept[g, :, 0] & (expert[g, :, 0] == e)]
            top2_slots = slot[g, :, 1][kept[g, :, 1] & (expert[g, :, 1] == e)]
            if len(top1_slots) and len(top2_slots):
                assert top2_slots.min() > top1_slots.max()
            assert sorted(top1_slots.tolist()) == list(range(len(top1_slots)))


def test_aux_loss_is_one_when_perfectly_balanced():
    experts, seq = 4, 8
    # Every expert is top-1 for exactly seq/E tokens and router probabilities are uniform
    # on average: a cyclic permutation of the same logit row.
    row = np.array([3.0, 1.0, 0.5, 0.0], np.float32)
    logits = np.stack([np.roll(row, s % experts) for s in range(seq)])[None]
    got = routing.top2_gating(jnp.asarray(logits), capacity=seq)
    assert float(got.aux_loss) == pytest.approx(1.0, rel=1e-5)
    skewed = np.tile(row, (seq, 1))[None]
    assert float(routing.top2_gating(jnp.asarray(skewed), capacity=seq).aux_loss) > 1.5


def test_z_loss_is_mean_squared_logsumexp_over_valid_tokens():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    got = routing.top2_gating(jnp.asarray(logits), capacity=5, mask=jnp.asarray(mask))
    lse = np.log(np.exp(logits).sum(-1))
    assert float(got.z_loss) == pytest.approx(float((lse[mask] ** 2).mean()), rel=1e-5)


def test_ablated_expert_is_never_chosen():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 32, 6)).astype(np.float32)
    logits[..., 2] += 10.0
    favoured = routing.top2_gating(jnp.asarray(logits), capacity=32)
    assert (np.asarray(favoured.expert)[..., 0] == 2).all()  # expert 2 wins everywhere
    logits[..., [2, 4]] = -np.inf  # switched off, as the MoE layer does it
    got = routing.top2_gating(jnp.asarray(logits), capacity=32)
    chosen = np.asarray(got.expert)
    assert not np.isin(chosen, [2, 4]).any()
    assert np.asarray(got.probs)[..., [2, 4]].max() == 0.0


def test_expert_capacity_rounding():
    assert routing.expert_capacity(group_size=256, num_experts=16, capacity_factor=2.0) == 32
    assert routing.expert_capacity(group_size=100, num_experts=16, capacity_factor=2.0) == 12
    assert routing.expert_capacity(group_size=10, num_experts=16, capacity_factor=2.0) == 1
    assert routing.expert_capacity(group_size=20, num_experts=16, capacity_factor=1.0) == 1
    assert routing.expert_capacity(group_size=50, num_experts=8, capacity_factor=None) == 50
    counts = jnp.array([256, 100, 10, 0])
    np.testing.assert_array_equal(
        routing.group_capacity(counts, num_experts=16, capacity_factor=2.0, max_group_size=256),
        [32, 12, 1, 1],
    )


@pytest.mark.parametrize(
    ("length", "factor", "experts"), [(64, 1.1249999999, 8), (100, 2.32, 8), (200, 2.12, 8)]
)
def test_group_capacity_equals_the_formula_and_never_exceeds_the_buffer(length, factor, experts):
    # Factors whose float32 products round across an integer: the device must agree with
    # the host formula, or a token could be given a slot past its expert's buffer.
    buffer = routing.expert_capacity(group_size=length, num_experts=experts,
                                     capacity_factor=factor)  # fmt: skip
    got = routing.group_capacity(
        jnp.arange(length + 1), num_experts=experts, capacity_factor=factor,
        max_group_size=length,
    )  # fmt: skip
    want = [
        routing.expert_capacity(group_size=n, num_experts=experts, capacity_factor=factor)
        for n in range(length + 1)
    ]
    np.testing.assert_array_equal(got, want)
    assert int(got.max()) <= buffer


@settings(max_examples=25)
@given(gating_inputs(groups=[3], seqs=[24], experts=[5], capacities=[2, 8, 24]))
def test_index_dispatch_equals_one_hot_einsum(inputs):
    logits, mask, capacity = inputs
    groups, seq, experts = logits.shape
    rng = np.random.default_rng(seq * 7 + experts)
    x = jnp.asarray(rng.normal(size=(groups, seq, 5)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(experts, 5, 5)).astype(np.float32))
    gating = routing.top2_gating(jnp.asarray(logits), capacity=capacity, mask=jnp.asarray(mask))

    buffer = routing.dispatch(x, gating, capacity)  # [e, g*c, d]
    y = jnp.tanh(jnp.einsum("end,edf->enf", buffer, w))
    by_index = routing.combine(y, gating, capacity)

    dispatch_gsec, combine_gsec = routing.one_hot_dispatch_combine_reference(x, gating, capacity)
    expert_in = jnp.einsum("gsec,gsd->egcd", dispatch_gsec, x)
    expert_out = jnp.tanh(jnp.einsum("egcd,edf->egcf", expert_in, w))
    by_einsum = jnp.einsum("gsec,egcd->gsd", combine_gsec, expert_out)
    np.testing.assert_allclose(np.asarray(by_index), np.asarray(by_einsum), atol=1e-5)
    # The buffer holds exactly the kept tokens, each once.
    np.testing.assert_allclose(
        np.asarray(buffer).reshape(experts, groups, capacity, 5),
        np.asarray(expert_in),
        atol=1e-6,
    )


def test_gating_is_jittable_and_float32_from_bfloat16():
    logits = jnp.asarray(np.random.default_rng(2).normal(size=(1, 8, 4)), jnp.bfloat16)
    got = jax.jit(lambda x: routing.top2_gating(x, capacity=4))(logits)
    assert got.gate.dtype == jnp.float32 and got.probs.dtype == jnp.float32
    assert got.expert.shape == (1, 8, 2) and got.slot.dtype == jnp.int32
