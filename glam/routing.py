"""Top-2 gating and index-based expert dispatch: where the top-2 choice is made.

Semantics are those of GShard / Praxis `gshard_utils.top2_gating_on_logits` with
`second_expert_policy='all'`, `legacy_mtf_behavior=True` and no logit cap; DESIGN.md,
"Top-2 gating — exact semantics", lists them step by step. A group is one sequence, so a
sequence routes the same alone and inside any batch.

Axis letters: g groups (sequences), s positions, e experts, c capacity slots, d model,
f expert hidden, r rank of the choice (0 = top-1, 1 = top-2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_RENORM_EPS = 1e-9  # GShard's epsilon when renormalising g1, g2


class Top2Gating(NamedTuple):
    """The routing decision for a batch of groups (a pytree, usable inside jit)."""

    expert: jax.Array  # [g, s, r] int32 chosen experts (top-1, top-2)
    gate: jax.Array  # [g, s, r] float32 combine weights; 0 where dropped or padding
    prob: jax.Array  # [g, s, r] float32 raw router probabilities of the choices
    kept: jax.Array  # [g, s, r] bool: the assignment has a slot below capacity
    slot: jax.Array  # [g, s, r] int32 position in the expert's buffer; -1 when not kept
    probs: jax.Array  # [g, s, e] float32 full router distribution
    entropy: jax.Array  # [g, s] float32 router entropy (nats)
    aux_loss: jax.Array  # [] float32 load-balancing loss, mean over groups with tokens
    z_loss: jax.Array  # [] float32 mean over valid tokens of logsumexp(logits)^2
    group_aux_loss: jax.Array  # [g] float32 each group's own aux loss (0 if it is empty)
    group_z_loss: jax.Array  # [g] float32 each group's own z loss (0 if it is empty)


def expert_capacity(*, group_size: int, num_experts: int, capacity_factor: float | None) -> int:
    """Slots per expert per group: int(S*cf/E), rounded up to a multiple of 4 above 1.

    `capacity_factor=None` (or inf) means no drops: an expert can hold every token of the
    group (top-1 and top-2 of one token are distinct experts, so S slots always suffice).
    """
    if capacity_factor is None or math.isinf(capacity_factor):
        return group_size
    capacity = int(group_size * capacity_factor / num_experts)
    if capacity <= 1:
        return 1
    return 4 * math.ceil(capacity / 4)


def group_capacity(
    valid_tokens_g: jax.Array,
    *,
    num_experts: int,
    capacity_factor: float | None,
    max_group_size: int,
) -> jax.Array:
    """`expert_capacity` of each group from its own count of valid tokens [g].

    Counting valid tokens rather than the padded length is what makes a sequence route the
    same alone and inside a batch padded to a longer length. The values come from a table
    computed by `expert_capacity` itself (in float64, on the host): recomputing the formula
    in float32 on the device could round to a capacity larger than the buffer.
    """
    table = np.array(
        [
            expert_capacity(group_size=n, num_experts=num_experts, capacity_factor=capacity_factor)
            for n in range(max_group_size + 1)
        ],
        np.int32,
    )
    return jnp.asarray(table)[valid_tokens_g.astype(jnp.int32)]


def buffer_capacity(capacities: np.ndarray, group_size: int) -> int:
    """The static buffer size for these per-sequence `capacities`: the next power of two at
    or above the largest, and never more than `group_size` (a sequence's tokens give an
    expert at most that many assignments, since a token's two choices are distinct experts).

    Powers of two keep the compiled programs per shape at most log2(S) + 1, whatever
    capacity factors clients ask for, for at most twice the expert buffer.
    """
    largest = int(np.max(capacities, initial=1))
    return max(1, min(group_size, 1 << max(largest - 1, 0).bit_length()))


def sequence_capacities(
    valid_tokens_b: np.ndarray, *, num_experts: int, capacity_factor: float | None
) -> np.ndarray:
    """`expert_capacity` of each sequence from its count of valid tokens, on the host [b]."""
    return np.array(
        [
            expert_capacity(group_size=int(n), num_experts=num_experts,
                            capacity_factor=capacity_factor)
            for n in valid_tokens_b
        ],
        np.int32,
    )  # fmt: skip


def _exclusive_cumsum(x: jax.Array, axis: int) -> jax.Array:
    return jnp.cumsum(x, axis=axis) - x


def top2_gating(
    logits: jax.Array, *, capacity: int | jax.Array, mask: jax.Array | None = None
) -> Top2Gating:
    """Top-2 gating of router `logits` [g, s, e]; `mask` [g, s] marks valid tokens.

    `capacity` is the slots per expert: one int for every group, or one per group [g].

    Experts switched off (ablated) arrive here as -inf logits: they get probability 0 and
    are never chosen while at least two experts remain.
    """
    logits = logits.astype(jnp.float32)
    num_groups, group_size, num_experts = logits.shape
    valid = (
        jnp.ones((num_groups, group_size), jnp.float32)
        if mask is None
        else mask.astype(jnp.float32)
    )

    probs = jax.nn.softmax(logits, axis=-1)
    expert_1 = jnp.argmax(probs, axis=-1)
    onehot_1 = jax.nn.one_hot(expert_1, num_experts, dtype=jnp.float32)
    # Greedy second choice: the best expert once the first is removed. Taken on the logits
    # (same order as the probabilities) so that underflowed probabilities cannot tie an
    # ablated (-inf) expert with a live one.
    expert_2 = jnp.argmax(jnp.where(onehot_1 > 0, -jnp.inf, logits), axis=-1)
    onehot_2 = jax.nn.one_hot(expert_2, num_experts, dtype=jnp.float32)
    if num_experts == 1:
        # E=1: the second choice is the same lone expert with probability 0 (as in Praxis,
        # where argmax of an all-zero row is expert 0).
        onehot_2 = onehot_1
        expert_2 = expert_1
    prob_1 = jnp.sum(probs * onehot_1, axis=-1)
    prob_2 = jnp.sum(probs * onehot_2, axis=-1) * (num_experts > 1)
    denom = prob_1 + prob_2 + _RENORM_EPS
    gate_1, gate_2 = prob_1 / denom, prob_2 / denom

    # Padding takes no expert slot.
    onehot_1 = onehot_1 * valid[..., None]
    onehot_2 = onehot_2 * valid[..., None]

    # Load-balancing loss per group: E^2 * mean_e(frac_e * meanprob_e), over valid tokens.
    tokens_per_group = jnp.sum(valid, axis=1)  # [g]
    safe_tokens = jnp.maximum(tokens_per_group, 1.0)[:, None]
    frac = jnp.sum(onehot_1, axis=1) / safe_tokens  # [g, e]
    mean_prob = jnp.sum(probs * valid[..., None], axis=1) / safe_tokens  # [g, e]
    aux_per_group = jnp.mean(frac * mean_prob, axis=-1) * num_experts**2
    has_tokens = (tokens_per_group > 0).astype(jnp.float32)
    aux_loss = jnp.sum(aux_per_group * has_tokens) / jnp.maximum(jnp.sum(has_tokens), 1.0)

    log_z = jax.nn.logsumexp(logits, axis=-1)
    z_loss = jnp.sum(jnp.square(log_z) * valid) / jnp.maximum(jnp.sum(valid), 1.0)
    group_z_loss = jnp.sum(jnp.square(log_z) * valid, axis=1) / safe_tokens[:, 0]

    capacity_g11 = jnp.broadcast_to(jnp.asarray(capacity, jnp.float32), (num_groups,))[
        :, None, None
    ]
    # Slots: top-1 assignments in sequence order, kept below capacity.
    position_1 = _exclusive_cumsum(onehot_1, axis=1)  # [g, s, e]
    keep_1 = onehot_1 * (position_1 < capacity_g11)
    kept_1 = jnp.sum(keep_1, axis=-1) > 0
    slot_1 = jnp.sum(position_1 * onehot_1, axis=-1)
    # Top-2 assignments queue behind the *kept* top-1 assignments of the same expert.
    kept_count_1 = jnp.sum(keep_1, axis=1, keepdims=True)  # [g, 1, e]
    position_2 = _exclusive_cumsum(onehot_2, axis=1) + kept_count_1
    keep_2 = onehot_2 * (position_2 < capacity_g11)
    kept_2 = jnp.sum(keep_2, axis=-1) > 0
    slot_2 = jnp.sum(position_2 * onehot_2, axis=-1)

    kept = jnp.stack([kept_1, kept_2], axis=-1)
    slot = jnp.where(kept, jnp.stack([slot_1, slot_2], axis=-1).astype(jnp.int32), -1)
    # A dropped assignment's gate becomes 0; kept gates are not renormalised (legacy MTF).
    gate = jnp.stack([gate_1, gate_2], axis=-1) * kept
    entropy = jnp.sum(jax.scipy.special.entr(probs), axis=-1)
    return Top2Gating(
        expert=jnp.stack([expert_1, expert_2], axis=-1).astype(jnp.int32),
        gate=gate,
        prob=jnp.stack([prob_1, prob_2], axis=-1),
        kept=kept,
        slot=slot,
        probs=probs,
        entropy=entropy,
        aux_loss=aux_loss,
        z_loss=z_loss,
        group_aux_loss=aux_per_group * has_tokens,
        group_z_loss=group_z_loss,
    )


def _buffer_index(routing: Top2Gating, capacity: int) -> jax.Array:
    """Flat row of each assignment in the expert-major buffer [e * g * c]; a sentinel
    (one past the end) for assignments that were not kept."""
    num_groups = routing.expert.shape[0]
    num_experts = routing.probs.shape[-1]
    group = jnp.arange(num_groups, dtype=jnp.int32)[:, None, None]
    index = (routing.expert * num_groups + group) * capacity + routing.slot
    return jnp.where(routing.kept, index, num_experts * num_groups * capacity)


def dispatch(x_gsd: jax.Array, routing: Top2Gating, capacity: int) -> jax.Array:
    """Gather each expert's tokens into its buffer: [g, s, d] -> [e, g * c, d].

    Index-based: only an int32 map of slot -> token is scattered; activations move by one
    gather. Empty slots read a zero row.
    """
    num_groups, group_size, d_model = x_gsd.shape
    num_experts = routing.probs.shape[-1]
    num_slots = num_experts * num_groups * capacity
    token_row = jnp.arange(num_groups * group_size, dtype=jnp.int32).reshape(
        num_groups, group_size, 1
    )
    source = jnp.full((num_slots + 1,), num_groups * group_size, jnp.int32)
    source = source.at[_buffer_index(routing, capacity)].set(
        jnp.broadcast_to(token_row, routing.expert.shape), mode="drop"
    )[:num_slots]
    x_rows = jnp.concatenate([x_gsd.reshape(-1, d_model), jnp.zeros((1, d_model), x_gsd.dtype)])
    return x_rows[source].reshape(num_experts, num_groups * capacity, d_model)


def combine(y_end: jax.Array, routing: Top2Gating, capacity: int) -> jax.Array:
    """Weighted sum of each token's expert outputs: [e, g * c, d] -> [g, s, d]."""
    d_model = y_end.shape[-1]
    y_rows = jnp.concatenate([y_end.reshape(-1, d_model), jnp.zeros((1, d_model), y_end.dtype)])
    picked = y_rows[_buffer_index(routing, capacity)]  # [g, s, r, d]
    return jnp.einsum("gsrd,gsr->gsd", picked, routing.gate.astype(y_end.dtype))


def one_hot_dispatch_combine_reference(
    x_gsd: jax.Array, routing: Top2Gating, capacity: int
) -> tuple[jax.Array, jax.Array]:
    """The papers' one-hot [g, s, e, c] dispatch and combine tensors (tests only: slow)."""
    num_experts = routing.probs.shape[-1]
    expert_oh = jax.nn.one_hot(routing.expert, num_experts)  # [g, s, r, e]
    slot_oh = jax.nn.one_hot(jnp.where(routing.kept, routing.slot, -1), capacity)  # [g,s,r,c]
    combine_gsec = jnp.einsum("gsr,gsre,gsrc->gsec", routing.gate, expert_oh, slot_oh)
    dispatch_gsec = jnp.einsum("gsr,gsre,gsrc->gsec", routing.kept, expert_oh, slot_oh)
    return dispatch_gsec, combine_gsec
