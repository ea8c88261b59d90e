"""First-token latency of generation for prompts of new lengths: exact-length vs bucketed.

    python bench/generate.py                  # the shipped model, 10 prompt lengths
    python bench/generate.py --checkpoint runs/tiny/final --lengths 5 9 20 27 45

A server keeps seeing prompt lengths it has not seen before. The prefill is compiled per
shape: at its exact length every new prompt length pays a compile before its first token;
padded to a length bucket (the default, `generate(bucket_prompt=True)`), only the first
prompt of each bucket does. Each prompt is generated with max_new_tokens=1 (the prefill and
the first sample: what a request waits for before its first token), once on each path,
interleaved, in one process, on lengths neither path has compiled; then again with every
program compiled, which shows what the padding itself costs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from glam.buckets import length_bucket
from glam.checkpoint import load
from glam.generate import _decode, generate
from glam.model import forward

PROSE = (
    "Routing decides which two experts see each token. A mixture-of-experts layer replaces "
    "one feed-forward network by many; a small linear router scores them, and the best two "
    "take the token, weighted by their renormalised probabilities. Capacity limits how many "
    "tokens one expert may take from a sequence, so late tokens of a popular expert can be "
    "dropped. Researchers study where tokens go: by domain, by token, by position, and how "
    "the choices change over training. "
)
# Ten lengths in five buckets (16 ... 256), none exactly as wide as its bucket.
LENGTHS = (7, 13, 22, 29, 41, 58, 77, 99, 140, 201)
PATHS = {"exact length": False, "bucketed": True}


def prompt_of_length(tokenizer, n: int) -> str:
    """The shortest prefix of PROSE (repeated) that encodes to exactly n tokens."""
    text = PROSE * (1 + 8 * n // len(PROSE))
    for end in range(1, len(text) + 1):
        if len(tokenizer.encode(text[:end])) == n:
            return text[:end]
    raise ValueError(f"no prefix encodes to {n} tokens")


def padded_width(n: int, max_len: int) -> int:
    """The width generate() pads an n-token prompt to with one new token: its bucket, but
    never wider than the cache (64-slot steps)."""
    return min(length_bucket(n, max_len), max_len, 64 * -(-(n + 1) // 64))


def first_token_ms(model, tokenizer, prompt: str, bucket_prompt: bool) -> tuple[float, int]:
    """Milliseconds to the first generated token, and the programs compiled on the way."""
    programs = _decode._cache_size()
    start = time.perf_counter()
    generate(model, tokenizer, prompt, max_new_tokens=1, stop_at_eos=False,
             bucket_prompt=bucket_prompt)  # fmt: skip
    return 1000 * (time.perf_counter() - start), _decode._cache_size() - programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="model directory (default: shipped)")
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    args = parser.parse_args()

    loaded = load(args.checkpoint)
    model, tokenizer, cfg = loaded.model, loaded.tokenizer, loaded.config
    prompts = {n: prompt_of_length(tokenizer, n) for n in args.lengths}
    # Start JAX and XLA on another program, so the first prompt does not pay for that.
    forward(model, np.ones((1, 8), np.int32), capture=True)

    cold = {path: [] for path in PATHS}
    compiled = dict.fromkeys(PATHS, 0)
    for index, prompt in enumerate(prompts.values()):
        order = list(PATHS.items()) if index % 2 == 0 else list(PATHS.items())[::-1]
        for path, bucketed in order:  # alternating, so machine noise hits both alike
            ms, programs = first_token_ms(model, tokenizer, prompt, bucketed)
            cold[path].append(ms)
            compiled[path] += programs
    warm = {path: [] for path in PATHS}
    for prompt in prompts.values():
        for path, bucketed in PATHS.items():
            warm[path].append(first_token_ms(model, tokenizer, prompt, bucketed)[0])

    print(f"{cfg.name} (max_len {cfg.max_len}): first-token latency, ms (max_new_tokens=1)")
    print(f"{'prompt':>7} {'padded':>7} | {'new length':^23} | {'compiled':^23}")
    print(
        f"{'tokens':>7} {'':>7} | {'exact':>11} {'bucketed':>11} | {'exact':>11} {'bucketed':>11}"
    )
    for i, n in enumerate(prompts):
        print(
            f"{n:>7} {padded_width(n, cfg.max_len):>7} | {cold['exact length'][i]:>11.1f} "
            f"{cold['bucketed'][i]:>11.1f} | {warm['exact length'][i]:>11.1f} "
            f"{warm['bucketed'][i]:>11.1f}"
        )
    for name, stat in (("total", sum), ("median", statistics.median)):
        print(
            f"{name:>15} | {stat(cold['exact length']):>11.1f} {stat(cold['bucketed']):>11.1f} | "
            f"{stat(warm['exact length']):>11.1f} {stat(warm['bucketed']):>11.1f}"
        )
    print(
        f"programs compiled for {len(prompts)} new lengths: exact {compiled['exact length']}, "
        f"bucketed {compiled['bucketed']}; first-token time for all of them: "
        f"{sum(cold['exact length']) / sum(cold['bucketed']):.1f}x less when bucketed"
    )


if __name__ == "__main__":
    main()
