"""Generation: the KV cache reproduces the full pass; seeds reproduce samples; prompts padded
to length buckets generate what they would unpadded, without a program per length."""

from __future__ import annotations

import numpy as np
import pytest

import glam.generate as generate_module
from glam.buckets import length_bucket
from glam.generate import _decode, generate
from glam.model import build, forward


@pytest.fixture(scope="module")
def model(small_config):
    return build(small_config, seed=11)


def test_incremental_decoding_equals_the_full_forward_pass(model, tokenizer):
    out = generate(model, tokenizer, "def add(a, b):", max_new_tokens=12, stop_at_eos=False)
    seen = out.trace.tokens.shape[1]
    assert seen == out.prompt_tokens + 12 - 1  # the last sampled token is never fed back
    np.testing.assert_array_equal(out.trace.tokens[0], out.tokens[:seen])
    # The full pass sees every token, the last sampled one too: it scores the last seen token.
    logits, full = forward(model, out.tokens[None], capture=True, capacity_factor=float("inf"))
    np.testing.assert_array_equal(out.trace.expert, full.expert[:, :, :seen])
    np.testing.assert_allclose(out.trace.gate, full.gate[:, :, :seen], atol=1e-5)
    np.testing.assert_allclose(out.trace.entropy, full.entropy[:, :, :seen], atol=1e-4)
    np.testing.assert_array_equal(out.trace.predicted, full.predicted[:, :seen])
    np.testing.assert_allclose(out.trace.nll, full.nll[:, :seen], atol=1e-4)
    # Greedy: every generated token is the full pass's argmax at the position before it.
    generated = out.tokens[out.prompt_tokens :]
    np.testing.assert_array_equal(
        generated, np.asarray(logits)[0, out.prompt_tokens - 1 : -1].argmax(-1)
    )


def test_only_a_token_with_nothing_after_it_has_no_loss(model, tokenizer):
    # With nothing generated, the last prompt token has no next token to be scored against.
    out = generate(model, tokenizer, "def add(a, b):", max_new_tokens=0)
    assert out.trace.seq_len == out.prompt_tokens == len(out.tokens)
    assert np.isnan(out.trace.nll[0, -1])
    assert np.isfinite(out.trace.nll[0, :-1]).all()


def test_seeded_sampling_is_reproducible(model, tokenizer):
    kwargs = dict(max_new_tokens=10, temperature=1.0, top_p=0.9, stop_at_eos=False)
    a = generate(model, tokenizer, "こんにちは", seed=3, **kwargs)
    b = generate(model, tokenizer, "こんにちは", seed=3, **kwargs)
    c = generate(model, tokenizer, "こんにちは", seed=4, **kwargs)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.text == b.text
    assert not np.array_equal(a.tokens, c.tokens)


def test_generation_refuses_what_does_not_fit(model, tokenizer):
    with pytest.raises(ValueError, match="exceeds max_len"):
        generate(model, tokenizer, "hello", max_new_tokens=500)
    with pytest.raises(ValueError, match="empty"):
        generate(model, tokenizer, "", max_new_tokens=5)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, tokenizer, "hello", top_p=0.0)


# --- prompts padded to length buckets ------------------------------------------------------

PROSE = (
    "The quick brown fox jumps over the lazy dog near the river bank while a mixture of "
    "experts routes every token to two of its feed-forward networks and researchers watch"
)
FLOATS = ("gate", "prob", "entropy", "aux_loss", "z_loss", "nll")
EXACT = ("tokens", "mask", "expert", "kept", "predicted")


def prompts_by_length(tokenizer, lengths, repeat: int = 1) -> dict[int, str]:
    """{token length: prompt} for prefixes of PROSE whose token count is one of `lengths`."""
    text, found = " ".join([PROSE] * repeat), {}
    for end in range(1, len(text) + 1):
        prompt = text[:end]
        n = len(tokenizer.encode(prompt))
        if n in lengths:
            found.setdefault(n, prompt)
    return found


def assert_same_generation(a, b, *, bitwise: bool = False) -> None:
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.text == b.text and a.prompt_tokens == b.prompt_tokens
    assert a.stopped_at_eos == b.stopped_at_eos
    for name in EXACT:
        np.testing.assert_array_equal(getattr(a.trace, name), getattr(b.trace, name), name)
    for name in FLOATS:
        x, y = getattr(a.trace, name), getattr(b.trace, name)
        if bitwise:
            np.testing.assert_array_equal(x, y, name)
        else:  # another program (shape) for the prompt: float32 rounding may differ, no more
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=name)


def test_length_buckets_are_powers_of_two_from_16_up_to_max_len():
    assert [length_bucket(n, 100) for n in (1, 16, 17, 32, 33, 64, 65, 100)] == [
        16, 16, 32, 32, 64, 64, 100, 100,
    ]  # fmt: skip


SAMPLING = {
    "greedy": {},
    "sampled": {"temperature": 1.0, "top_p": 0.9, "seed": 7},
}


@pytest.mark.parametrize("sampling", SAMPLING.values(), ids=SAMPLING.keys())
def test_a_bucketed_prompt_generates_what_the_exact_length_prompt_does(model, tokenizer, sampling):
    prompts = prompts_by_length(tokenizer, {3, 9, 21, 40})
    assert len(prompts) == 4, prompts  # lengths in three buckets
    for n, prompt in prompts.items():
        kwargs = dict(max_new_tokens=8, stop_at_eos=False, **sampling)
        exact = generate(model, tokenizer, prompt, bucket_prompt=False, **kwargs)
        bucketed = generate(model, tokenizer, prompt, **kwargs)
        assert bucketed.prompt_tokens == n and length_bucket(n, 128) > n  # it was padded
        # Only the real positions are recorded: the prompt and the tokens fed back.
        assert bucketed.trace.tokens.shape == (1, n + 8 - 1) and bucketed.trace.mask.all()
        assert_same_generation(exact, bucketed)


def test_a_prompt_wider_than_its_bucket_allows_is_padded_only_to_the_cache(tokenizer, small_config):
    # 129-149 tokens and 4 new ones: a 192-slot cache, while their bucket is 256 wide.
    model = build(small_config.replace(name="long-prompt", max_len=256), seed=2)
    prompts = prompts_by_length(tokenizer, set(range(129, 150)), repeat=12)
    prompt = prompts[min(prompts)]
    kwargs = dict(max_new_tokens=4, stop_at_eos=False)
    exact = generate(model, tokenizer, prompt, bucket_prompt=False, **kwargs)
    assert_same_generation(exact, generate(model, tokenizer, prompt, **kwargs))


def test_padding_is_never_attended_to_nor_recorded(model, tokenizer, monkeypatch):
    prompt = "def add(a, b):"
    kwargs = dict(max_new_tokens=6, temperature=1.0, seed=1, stop_at_eos=False)
    padded_with_0 = generate(model, tokenizer, prompt, **kwargs)
    n = padded_with_0.prompt_tokens
    assert length_bucket(n, 128) > n and padded_with_0.trace.tokens.shape == (1, n + 5)
    # Other padding content, the same program: if any query attended to padding, or padding
    # counted in a loss, some value would change. Nothing may, down to the last bit.
    monkeypatch.setattr(generate_module, "_PAD_ID", tokenizer.vocab_size - 1)
    assert_same_generation(
        padded_with_0, generate(model, tokenizer, prompt, **kwargs), bitwise=True
    )


def test_prompts_of_new_lengths_reuse_the_compiled_programs(tokenizer, small_config):
    # A model of its own, so that no other test has compiled programs for it.
    model = build(small_config.replace(name="compile-count"), seed=3)
    # Eight lengths in three buckets, none exactly as wide as its bucket (each costs the
    # exact-length path a compile: a few seconds on a CPU, so eight, not forty).
    prompts = prompts_by_length(tokenizer, {3, 6, 9, 13, 18, 24, 29, 37})
    buckets = {length_bucket(n, model.config.max_len) for n in prompts}
    assert len(prompts) == 8 and buckets == {16, 32, 64}, (prompts.keys(), buckets)

    def programs_added(**kwargs) -> int:
        before = _decode._cache_size()
        for prompt in prompts.values():
            generate(model, tokenizer, prompt, max_new_tokens=4, stop_at_eos=False, **kwargs)
        return _decode._cache_size() - before

    # Every prompt fits one 64-slot cache: one prefill program per bucket, one decode step.
    assert programs_added() == len(buckets) + 1
    assert programs_added() == 0  # the same lengths again: nothing new
    # The exact-length path compiles a prefill for every length (the decode step is shared).
    assert programs_added(bucket_prompt=False) == len(prompts)
