"""Training throughput: the train step alone vs end-to-end training, against the matmul peak.

    python bench/train.py                             # glam-64e, batch 32 x 256, f32, 20 steps
    python bench/train.py --preset glam-tiny --batch 16 --steps 20

Step only: `glam.train.train_step` on batches already packed, timed over `--steps` steps
after two of warm-up. End to end: `glam.train.train` itself over the same number of steps
(packing the corpus, logging every step, saving the training state and the final model
as the CLI does: state every 100 steps and at the end), timed from its third step to its
return, so the one state save and the export at the end weigh on a short run more than on
a real one. Both in one process, one after the other;
the matmul peak (a square float32 matmul) is measured in the same run. Training FLOPs are
three times the forward's (the backward pass costs two forwards): 6 x activated parameters
per token plus attention. Goals (issue 13): at least 35% of the peak, and end to end within
10% of the step-only rate. The corpus is real text: the shipped validation split, used as
training data here.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx
from forward import matmul_peak

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="glam-64e")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each")
    parser.add_argument("--tokenizer", default=str(REPO / "checkpoints/corpus/tokenizer.model"))
    parser.add_argument("--corpus", default=str(REPO / "checkpoints/corpus/validation.jsonl.gz"))
    parser.add_argument("--peak-n", type=int, default=2048, help="matmul size for the peak")
    args = parser.parse_args()

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
    tokens_per_step = args.batch * args.seq
    flops_per_token = 3 * forward_flops_per_token(cfg, args.seq)
    alone = step_only(cfg, batches, train_cfg, args.steps)
    whole = end_to_end(cfg, records, tokenizer, train_cfg)
    peak = matmul_peak(args.peak_n)
    print(
        f"{jax.devices()[0].platform} x{jax.device_count()} | {cfg.name}: d_model={cfg.d_model}"
        f" d_ff={cfg.d_ff} layers={cfg.num_layers} experts={cfg.num_experts}"
        f" vocab={cfg.vocab_size} | batch {args.batch} x {args.seq} | {args.steps} steps"
    )
    for name, seconds in (("train step alone", alone), ("end to end", whole)):
        rate = tokens_per_step / seconds
        print(f"  {name:17s} {rate:8.0f} tokens/s  {rate * flops_per_token / 1e9:6.1f} GFLOP/s"
              f"  {rate * flops_per_token / peak:6.1%} of peak")  # fmt: skip
    print(f"  matmul peak ({args.peak_n}^2 f32): {peak / 1e9:.1f} GFLOP/s")
    print(f"  end to end / step alone: {alone / whole:.3f}x  (goal >= 0.9)")


if __name__ == "__main__":
    main()
