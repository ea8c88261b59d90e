"""Forward-pass throughput: MoE vs its dense-equivalent, and routing capture on vs off.

    python bench/forward.py                 # batch 8 x 256, glam-small (d 256, ff 1024,
                                            # 8 layers, 16 experts, capacity factor 2.0)
    python bench/forward.py --rounds 20 --batch 8 --seq 256 --preset glam-small

The variants run interleaved, round after round, in one process so machine noise hits
them alike; figures are medians. Targets: MoE >= 0.8x dense-equivalent tokens/s, capture
costing <= 5%. Model FLOP utilisation is the MoE's forward FLOPs (2 x activated parameters
per token, the tied output projection included, plus attention's 4 x layers x seq x d per
token) per second, as a share of a square float32 matmul measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from glam.config import GlamConfig
from glam.model import build, forward
from glam.params import forward_flops_per_token


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def matmul_peak(n: int, rounds: int = 5) -> float:
    """FLOP/s of an n x n float32 matmul on the default device (the best of `rounds`)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jax.numpy.float32)
    product = jax.jit(lambda x: x @ x)
    jax.block_until_ready(product(a))
    return 2 * n**3 / min(_timed(lambda: product(a)) for _ in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="glam-small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--capacity-factor", type=float, default=2.0)
    parser.add_argument("--peak-n", type=int, default=2048, help="matmul size for the peak")
    args = parser.parse_args()

    cfg = GlamConfig.preset(args.preset, capacity_factor=args.capacity_factor)
    moe, dense = build(cfg, seed=0), build(cfg.dense_equivalent(), seed=0)
    tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (args.batch, args.seq))
    variants = {
        "moe": lambda: forward(moe, tokens)[0],
        "moe+capture": lambda: forward(moe, tokens, capture=True),
        "dense-equivalent": lambda: forward(dense, tokens)[0],
    }
    for fn in variants.values():  # compile and warm up
        _timed(fn)
        _timed(fn)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            times[name].append(_timed(fn))

    n_tokens = args.batch * args.seq
    median = {name: statistics.median(ts) for name, ts in times.items()}
    print(
        f"{jax.devices()[0].platform} x{jax.device_count()} | {cfg.name}: d_model={cfg.d_model}"
        f" d_ff={cfg.d_ff} layers={cfg.num_layers} experts={cfg.num_experts}"
        f" cf={cfg.capacity_factor} | batch {args.batch} x {args.seq} | {args.rounds} rounds"
    )
    for name, seconds in median.items():
        print(f"  {name:18s} {n_tokens / seconds:10.0f} tokens/s  ({seconds * 1e3:7.1f} ms)")
    moe_vs_dense = median["dense-equivalent"] / median["moe"]
    capture_cost = median["moe+capture"] / median["moe"] - 1
    print(f"  MoE / dense-equivalent throughput: {moe_vs_dense:.3f}x  (target >= 0.8)")
    print(f"  capture cost: {capture_cost * 100:+.1f}%  (target <= 5%)")
    peak = matmul_peak(args.peak_n)
    achieved = forward_flops_per_token(cfg, args.seq) * n_tokens / median["moe"]
    print(f"  model FLOP/s: {achieved / 1e9:.1f} G of a {args.peak_n}^2 f32 matmul's"
          f" {peak / 1e9:.1f} G: utilisation {achieved / peak:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
