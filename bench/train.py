"""Training throughput: the train step alone vs end-to-end training, against the matmul peak.

    python bench/train.py                             # glam-64e, batch 32 x 256, f32, 20 steps
    python bench/train.py --preset glam-tiny --batch 16 --steps 20

Step only: `glam.train.train_step` on batches already packed, timed over `--steps` steps
after two of warm-up. End to end: `glam.train.train` itself over the same number of steps
(packing the corpus, logging every step, saving the training state and the final model
as the CLI does: state every 100 steps and at the end), timed from its third step to its
return, so the one state save and the export at the end weigh on a short run more than on
a real one. Both in one process, one after the other, with the matmul peak (a square
float32 matmul); that process runs twice, under glibc's malloc and under jemalloc with
page purging off (glam/allocator.py: what `glam train` uses), and the two are printed side
by side. Training FLOPs are
three times the forward's (the backward pass costs two forwards): 6 x activated parameters
per token plus attention. Goals (issue 13): at least 35% of the peak, and end to end within
10% of the step-only rate. The corpus is real text: the shipped validation split, used as
training data here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from forward import matmul_peak

from glam import allocator
from glam.config import GlamConfig
from glam.corpus import TRAIN, read_corpus
from glam.data import PackedBatches, PackedCorpus
from glam.model import build
from glam.params import forward_flops_per_token
from glam.tokenizer import Tokenizer
from glam.train import TrainConfig, optimizer, train, train_step

REPO = Path(__file__).resolve().parents[1]


def step_only(cfg: GlamConfig, batches: PackedBatches, train_cfg: TrainConfig, steps: int) -> float:
    """Seconds per step of train_step alone (batches packed beforehand, on the device)."""
    graphdef, params = nnx.split(build(cfg, seed=0), nnx.Param)
    tx = optimizer(train_cfg)
    opt_state = tx.init(params)
    ready = [jnp.asarray(batches.batch(step)) for step in range(steps + 2)]
    for step in range(steps + 2):
        if step == 2:  # compiled and warm: start the clock
            jax.block_until_ready(params)
            started = time.perf_counter()
        params, opt_state, _ = train_step(
            params, opt_state, ready[step], graphdef=graphdef, cfg=cfg, tx=tx
        )
    jax.block_until_ready(params)
    return (time.perf_counter() - started) / steps


def end_to_end(cfg: GlamConfig, records, tokenizer: Tokenizer, train_cfg: TrainConfig) -> float:
    """Seconds per step of `train` from its third step to its return (state saved once)."""
    marks: dict[int, float] = {}

    def progress(step: int, _row: dict[str, float]) -> None:
        if step == 2:
            marks[2] = time.perf_counter()

    with tempfile.TemporaryDirectory() as out:
        train(cfg, records, tokenizer, Path(out), train_cfg, progress=progress)
        return (time.perf_counter() - marks[2]) / (train_cfg.steps - 2)


def measure(args: argparse.Namespace) -> dict[str, float | str]:
    """Both timings and the matmul peak, in this process (under its allocator)."""
    tokenizer = Tokenizer.load(args.tokenizer)
    cfg = GlamConfig.preset(args.preset).replace(vocab_size=tokenizer.vocab_size)
    records = [dataclasses.replace(r, split=TRAIN) for r in read_corpus(Path(args.corpus))]
    train_cfg = TrainConfig(steps=args.steps + 2, batch_size=args.batch, seq_len=args.seq)
    batches = PackedBatches(
        PackedCorpus.from_records(records, tokenizer),
        batch_size=args.batch,
        seq_len=args.seq,
        seed=0,
    )
    alone = step_only(cfg, batches, train_cfg, args.steps)
    whole = end_to_end(cfg, records, tokenizer, train_cfg)
    return {
        "allocator": allocator.describe(),
        "alone_s": alone,
        "whole_s": whole,
        "peak": matmul_peak(args.peak_n),
        "flops_per_token": 3 * forward_flops_per_token(cfg, args.seq),
        "shape": f"{jax.devices()[0].platform} x{jax.device_count()} | {cfg.name}: "
        f"d_model={cfg.d_model} d_ff={cfg.d_ff} layers={cfg.num_layers} "
        f"experts={cfg.num_experts} cf={cfg.capacity_factor} vocab={cfg.vocab_size} | "
        f"batch {args.batch} x {args.seq} | {args.steps} steps",
    }


def _in_subprocess(which: str, argv: list[str]) -> dict[str, float | str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env[allocator.SWITCH] = "system"
    if which == "jemalloc":
        env = allocator.jemalloc_environment(env | {allocator.SWITCH: ""}) or env
    done = subprocess.run([sys.executable, __file__, *argv, "--allocator", "current", "--json"],
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(result: dict[str, float | str], batch: int, seq: int) -> None:
    tokens_per_step = batch * seq
    peak, flops = float(result["peak"]), float(result["flops_per_token"])
    print(f"  under {result['allocator']}:")
    for name, key in (("train step alone", "alone_s"), ("end to end", "whole_s")):
        rate = tokens_per_step / float(result[key])
        print(f"    {name:17s} {rate:8.0f} tokens/s  {rate * flops / 1e9:6.1f} GFLOP/s"
              f"  {rate * flops / peak:6.1%} of peak")  # fmt: skip
    print(f"    matmul peak: {peak / 1e9:.1f} GFLOP/s; end to end / step alone: "
          f"{float(result['alone_s']) / float(result['whole_s']):.3f}x  (goal >= 0.9)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="glam-64e")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each")
    parser.add_argument("--tokenizer", default=str(REPO / "checkpoints/corpus/tokenizer.model"))
    parser.add_argument("--corpus", default=str(REPO / "checkpoints/corpus/validation.jsonl.gz"))
    parser.add_argument("--peak-n", type=int, default=2048, help="matmul size for the peak")
    parser.add_argument("--allocator", choices=["both", "current"], default="both",
                        help="both: glibc and jemalloc, each in a fresh process, one after "
                        "the other; current: this process's")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON line (with 'current')")
    args = parser.parse_args()
    if args.allocator == "current":
        result = measure(args)
        if args.json:
            print(json.dumps(result))
            return
        print(result["shape"])
        report(result, args.batch, args.seq)
        return
    argv = [a for a in sys.argv[1:] if a not in ("--allocator", "both")]
    results = {which: _in_subprocess(which, argv) for which in ("system", "jemalloc")}
    print(results["system"]["shape"])
    for result in results.values():
        report(result, args.batch, args.seq)
    speedup = float(results["system"]["whole_s"]) / float(results["jemalloc"]["whole_s"])
    print(f"  jemalloc / glibc, end to end: {speedup:.2f}x")


if __name__ == "__main__":
    main()
