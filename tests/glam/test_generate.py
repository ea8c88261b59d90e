"""Generation: the KV cache reproduces the full pass; seeds reproduce samples."""

from __future__ import annotations

import numpy as np
import pytest

from glam.generate import generate
from glam.model import build, forward


@pytest.fixture(scope="module")
def model(small_config):
    return build(small_config, seed=11)


def test_incremental_decoding_equals_the_full_forward_pass(model, tokenizer):
    out = generate(model, tokenizer, "def add(a, b):", max_new_tokens=12, stop_at_eos=False)
    seen = out.trace.tokens.shape[1]
    assert seen == out.prompt_tokens + 12 - 1  # the last sampled token is never fed back
    logits, full = forward(model, out.trace.tokens, capture=True, capacity_factor=float("inf"))
    np.testing.assert_array_equal(out.trace.expert, full.expert)
    np.testing.assert_allclose(out.trace.gate, full.gate, atol=1e-5)
    np.testing.assert_allclose(out.trace.entropy, full.entropy, atol=1e-4)
    np.testing.assert_array_equal(out.trace.predicted, full.predicted)
    np.testing.assert_allclose(out.trace.nll[0, :-1], full.nll[0, :-1], atol=1e-4)
    # Greedy: every generated token is the full pass's argmax at the position before it.
    generated = out.tokens[out.prompt_tokens :]
    np.testing.assert_array_equal(
        generated, np.asarray(logits)[0, out.prompt_tokens - 1 :].argmax(-1)
    )


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
