"""Text generation with an incremental KV cache, recording the routing of every token.

The cache is indexed by absolute position, so each new token's relative position bias
is computed against the cached keys exactly as in a full forward pass. Generation routes
with no capacity limit: one new token per step competes with nobody for expert slots, so
only "never drop" makes incremental decoding equal to a full pass (tested).

    glam generate --checkpoint checkpoints/glam-64e/final --prompt "def main(" --top-p 0.9
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from glam.buckets import length_bucket
from glam.layers import CapturePolicy, RouteOptions
from glam.model import Glam, _collect_routing, argmax_last
from glam.tokenizer import Tokenizer
from glam.trace import RoutingCapture, RoutingTrace

_OPTIONS = RouteOptions(capacity_factor=None, capture=CapturePolicy(routing=True))
_PAD_ID = 0  # any id would do: padding is masked out (tests change it to prove that)


@dataclasses.dataclass(frozen=True)
class Generation:
    text: str  # the generated continuation only
    prompt_tokens: int
    tokens: np.ndarray  # [prompt + generated] int32
    trace: RoutingTrace  # batch of one: prompt and generated tokens alike
    stopped_at_eos: bool


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _decode(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    tokens_bs: jax.Array,
    mask_bs: jax.Array,
    q_pos: jax.Array,
    key_mask_bt: jax.Array,
    caches: list[tuple[jax.Array, jax.Array]],
) -> tuple[jax.Array, list, dict[str, jax.Array]]:
    """One cached step over new tokens at positions q_pos: logits, caches, routing.
    `mask_bs` is False on padding, which then takes no expert slot and counts in no loss."""
    model = nnx.merge(graphdef, state)

    def call(module: Glam, tokens: jax.Array) -> Any:
        return module(
            tokens,
            mask_bs=mask_bs,
            options=_OPTIONS,
            q_pos=q_pos,
            key_mask_bt=key_mask_bt,
            caches=caches,
        )

    (logits, _, new_caches), captured = nnx.capture(call, RoutingCapture)(model, tokens_bs)
    record = _collect_routing(model, captured, tokens_bs, _OPTIONS)
    record["predicted"] = argmax_last(logits)
    return logits.astype(jnp.float32), new_caches, record


# Axis of the position in each per-token field of `_decode`'s record ([L, B, S, ...] routing,
# [B, S] predictions); the losses ([L], [L, B]) are already over valid tokens only.
_POSITION_AXIS = {"expert": 2, "gate": 2, "prob": 2, "kept": 2, "entropy": 2, "predicted": 1}


def _first_positions(record: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The record of the first n positions: a padded prompt's padding is cut here, before
    the trace is assembled, so it is never recorded."""
    return {
        name: value[(slice(None),) * _POSITION_AXIS[name] + (slice(0, n),)]
        if name in _POSITION_AXIS
        else value
        for name, value in record.items()
    }


def _sample(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    if temperature < 1e-6:  # below this, logits / temperature overflows: greedy
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    keep = order[: int(np.searchsorted(cumulative, top_p) + 1)]  # smallest nucleus >= top_p
    kept = probs[keep] / probs[keep].sum()
    return int(keep[rng.choice(keep.size, p=kept)])


def generate(
    model: Glam,
    tokenizer: Tokenizer,
    prompt: str,
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    stop_at_eos: bool = True,
    bucket_prompt: bool = True,
) -> Generation:
    """Greedy (temperature 0) or temperature / nucleus sampling, reproducible from `seed`.

    `bucket_prompt` pads the prompt to a length bucket so that prompts of new lengths reuse
    a compiled program; False compiles one for the prompt's exact length (the old path, kept
    so that bench/generate.py can compare the two). Both give the same tokens and expert
    choices; gates, probabilities and losses agree to float32 rounding (another program).
    """
    prompt_ids = tokenizer.encode(prompt)
    if not prompt_ids:
        raise ValueError("the prompt is empty")
    if not 0 < top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    if max_new_tokens < 0:
        raise ValueError("max_new_tokens must be >= 0")
    cfg = model.config
    total = len(prompt_ids) + max_new_tokens
    if total > cfg.max_len:
        raise ValueError(f"prompt + max_new_tokens = {total} exceeds max_len {cfg.max_len}")
    graphdef, state = nnx.split(model)
    # Round the cache up so prompts of similar length share a compiled program.
    length = min(cfg.max_len, 64 * -(-total // 64))
    shape = (1, length, cfg.num_heads, cfg.head_dim)
    caches = [(jnp.zeros(shape), jnp.zeros(shape)) for _ in range(cfg.num_layers)]
    positions = jnp.arange(length)
    rng = np.random.default_rng(seed)

    tokens, n_prompt = list(prompt_ids), len(prompt_ids)
    # The prefill compiles once per (width, cache length): pad the prompt to a bucket, as
    # analyses are padded (never wider than the cache it is written into). The padding sits
    # after every real query, so causality keeps it out of their attention (key_mask_bt too);
    # mask_bs keeps it out of routing and the losses; its keys and values land in cache slots
    # past the prompt, each overwritten by its own token before any query can reach it.
    width = min(length_bucket(n_prompt, cfg.max_len), length) if bucket_prompt else n_prompt
    padded = np.full((1, width), _PAD_ID, np.int32)
    padded[0, :n_prompt] = prompt_ids
    logits, caches, record = _decode(
        graphdef,
        state,
        jnp.asarray(padded),
        jnp.asarray((np.arange(width) < n_prompt)[None]),
        jnp.arange(width),
        (positions < n_prompt)[None],
        caches,
    )
    records = [_first_positions(jax.device_get(record), n_prompt)]
    # Sliced on the host: a device slice of a new length would compile a program of its own.
    step_logits = [np.asarray(logits)[0, :n_prompt]]
    stopped = False
    for _ in range(max_new_tokens):
        next_token = _sample(step_logits[-1][-1], temperature, top_p, rng)
        tokens.append(next_token)
        if stop_at_eos and next_token == tokenizer.eos_id:
            stopped = True
            break
        if len(tokens) == total:
            break
        position = len(tokens) - 1
        logits, caches, record = _decode(
            graphdef,
            state,
            jnp.asarray([[next_token]], jnp.int32),
            jnp.ones((1, 1), bool),
            jnp.asarray([position]),
            (positions <= position)[None],
            caches,
        )
        records.append(jax.device_get(record))
        step_logits.append(np.asarray(logits[0]))
    return Generation(
        text=tokenizer.decode(tokens[n_prompt:]),
        prompt_tokens=n_prompt,
        tokens=np.asarray(tokens, np.int32),
        trace=_assemble_trace(cfg, np.asarray(tokens, np.int32), records, step_logits),
        stopped_at_eos=stopped,
    )


def _assemble_trace(
    cfg: Any, tokens: np.ndarray, records: list[dict], step_logits: list[np.ndarray]
) -> RoutingTrace:
    """One RoutingTrace over every token that went through the model (the last sampled
    token never did: it is recorded as the prediction of the one before it)."""
    seen = sum(r["expert"].shape[2] for r in records)
    logits = np.concatenate(step_logits)  # [seen, V]
    log_z = np.logaddexp.reduce(logits.astype(np.float64), axis=-1)
    # The token after each seen one, from all of `tokens`: the last sampled token scores the
    # last seen one, though it never went through the model itself.
    next_ids = np.concatenate([tokens[1 : seen + 1], np.zeros(seen + 1 - len(tokens), int)])
    nll = (log_z - logits[np.arange(seen), next_ids]).astype(np.float32)
    if len(tokens) == seen and seen:  # nothing follows the last token we saw
        nll[-1] = np.nan
    tokens = tokens[:seen]
    cat = lambda name, axis: np.concatenate([r[name] for r in records], axis=axis)
    return RoutingTrace(
        moe_layers=np.asarray(cfg.moe_layers, np.int32),
        tokens=tokens[None].astype(np.int32),
        mask=np.ones((1, seen), bool),
        expert=cat("expert", 2).astype(np.int16),
        gate=cat("gate", 2),
        prob=cat("prob", 2),
        kept=cat("kept", 2),
        entropy=cat("entropy", 2),
        # Per-step losses of one-token groups mean little; report the token-weighted mean.
        aux_loss=np.average(
            np.stack([r["aux_loss"] for r in records]),
            axis=0,
            weights=[r["expert"].shape[2] for r in records],
        ).astype(np.float32),
        z_loss=np.average(
            np.stack([r["z_loss"] for r in records]),
            axis=0,
            weights=[r["expert"].shape[2] for r in records],
        ).astype(np.float32),
        nll=nll[None],
        predicted=cat("predicted", 1).astype(np.int32),
    )
