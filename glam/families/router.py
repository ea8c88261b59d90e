"""The imported families' router: where their top-k choice is made.

One function covers the five families (transformers 5.24.0 is the specification):
- softmax (Mixtral, OLMoE, Qwen2-MoE, Qwen3-MoE): probabilities over all E experts in
  float32, top-k of them, optionally divided by their sum (`norm_topk_prob`; Mixtral always).
- sigmoid (DeepSeek-V3): scores = sigmoid(logits); the choice is made on scores plus a
  choice-only bias (`e_score_correction_bias`), limited to the `topk_group` best of `n_group`
  expert groups (a group scores the sum of its two best biased scores); the weights are the
  unbiased scores, optionally normalised (+1e-20), then times `routed_scaling_factor`.

Ablation: a switched-off expert gets a -inf logit (softmax: probability 0, never chosen)
or a -inf choice score (sigmoid). In the group stage an ablated expert is left out of its
group's score (the group scores its best two live experts, one if only one is live).

Losses, per sequence (a group is one sequence, as in glam.routing):
- softmax: transformers' `load_balancing_loss_func` of one layer, E * sum_e f_e * P_e with
  f_e the share of valid tokens having e in their top-k (sum f = k) and P_e the mean
  probability: k when perfectly balanced.
- sigmoid: DeepSeek-V3's sequence-wise balance loss (its paper, eq. 17-19, without alpha):
  sum_e f_e * P_e with f_e = E/(k T) * count_e and P_e the mean of the scores normalised to
  sum 1: 1.0 when perfectly balanced. transformers computes no aux loss for DeepSeek-V3.
- z_loss: mean over valid tokens of logsumexp(logits)^2, as glam.routing (no family uses it).

Axis letters: b batch (one group each), s positions, e experts, k choices, g expert groups.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from glam.families.config import HFMoEConfig


class Routing(NamedTuple):
    """One MoE layer's decision (a pytree, usable inside jit)."""

    expert: jax.Array  # [b, s, k] int32 choices in rank order
    gate: jax.Array  # [b, s, k] float32 final combine weights
    prob: jax.Array  # [b, s, k] float32 the router's score of each choice
    probs: jax.Array  # [b, s, e] float32 softmax probabilities, or sigmoid scores
    entropy: jax.Array  # [b, s] float32 nats (sigmoid: of the scores normalised to sum 1)
    aux_loss: jax.Array  # [] float32 mean over sequences with tokens
    z_loss: jax.Array  # [] float32 mean over valid tokens
    group_aux_loss: jax.Array  # [b] float32
    group_z_loss: jax.Array  # [b] float32


def _group_mask(choice_bse: jax.Array, n_group: int, topk_group: int) -> jax.Array:
    """[b, s, e] bool: the experts of the `topk_group` best groups, a group scored by the
    sum of its two best (finite) choice scores."""
    *lead, num_experts = choice_bse.shape
    grouped = choice_bse.reshape(*lead, n_group, num_experts // n_group)
    best2 = jax.lax.top_k(grouped, min(2, grouped.shape[-1]))[0]
    live = jnp.isfinite(best2)
    group_score = jnp.where(live.any(-1), jnp.sum(jnp.where(live, best2, 0.0), -1), -jnp.inf)
    _, kept_groups = jax.lax.top_k(group_score, topk_group)
    keep_g = jnp.sum(jax.nn.one_hot(kept_groups, n_group, dtype=jnp.int32), axis=-2) > 0
    return jnp.repeat(keep_g, num_experts // n_group, axis=-1)


def route(
    logits_bse: jax.Array,
    cfg: HFMoEConfig,
    *,
    mask_bs: jax.Array,
    ablated_e: jax.Array | None = None,
    choice_bias_e: jax.Array | None = None,
) -> Routing:
    """Route router logits [b, s, e] (any dtype; routed in float32) as `cfg.score` says."""
    logits = logits_bse.astype(jnp.float32)
    if ablated_e is not None:
        logits = jnp.where(ablated_e, -jnp.inf, logits)
    num_experts, top_k = logits.shape[-1], cfg.top_k
    if cfg.score == "softmax":
        probs = jax.nn.softmax(logits, axis=-1)
        prob, expert = jax.lax.top_k(probs, top_k)
        weight = prob
        entropy = jnp.sum(jax.scipy.special.entr(probs), axis=-1)
        share = probs
    else:
        probs = jax.nn.sigmoid(logits)  # an ablated expert scores 0
        choice = probs if choice_bias_e is None else probs + choice_bias_e.astype(jnp.float32)
        if ablated_e is not None:
            choice = jnp.where(ablated_e, -jnp.inf, choice)
        if cfg.topk_group < cfg.n_group:
            choice = jnp.where(_group_mask(choice, cfg.n_group, cfg.topk_group), choice, -jnp.inf)
        choice_k, expert = jax.lax.top_k(choice, top_k)
        prob = jnp.take_along_axis(probs, expert, axis=-1)
        # Fewer than k eligible experts (heavy ablation): the rest carry no weight.
        weight = jnp.where(jnp.isfinite(choice_k), prob, 0.0)
        share = probs / jnp.maximum(jnp.sum(probs, axis=-1, keepdims=True), 1e-30)
        entropy = jnp.sum(jax.scipy.special.entr(share), axis=-1)
    if cfg.norm_topk_prob:
        weight = weight / (jnp.sum(weight, axis=-1, keepdims=True) + cfg.norm_topk_eps)
    gate = weight * cfg.routed_scaling_factor

    valid = mask_bs.astype(jnp.float32)
    tokens_b = jnp.sum(valid, axis=1)
    safe_tokens = jnp.maximum(tokens_b, 1.0)[:, None]
    chosen_be = jnp.sum(jax.nn.one_hot(expert, num_experts) * valid[..., None, None], axis=(1, 2))
    mean_share_be = jnp.sum(share * valid[..., None], axis=1) / safe_tokens
    if cfg.aux_loss == "load_balancing":
        group_aux = num_experts * jnp.sum(chosen_be / safe_tokens * mean_share_be, axis=-1)
    else:
        frac_be = chosen_be * num_experts / (top_k * safe_tokens)
        group_aux = jnp.sum(frac_be * mean_share_be, axis=-1)
    has_tokens = (tokens_b > 0).astype(jnp.float32)
    group_aux = group_aux * has_tokens
    aux_loss = jnp.sum(group_aux) / jnp.maximum(jnp.sum(has_tokens), 1.0)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    z_loss = jnp.sum(jnp.square(log_z) * valid) / jnp.maximum(jnp.sum(valid), 1.0)
    group_z = jnp.sum(jnp.square(log_z) * valid, axis=1) / safe_tokens[:, 0]
    return Routing(
        expert=expert.astype(jnp.int32),
        gate=gate,
        prob=prob,
        probs=probs,
        entropy=entropy,
        aux_loss=aux_loss,
        z_loss=z_loss,
        group_aux_loss=group_aux,
        group_z_loss=group_z,
    )
