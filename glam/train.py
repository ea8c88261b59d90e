"""Training: the GLaM recipe scaled down to a CPU.

AdamW (the paper uses Adafactor; at this size AdamW's extra memory is irrelevant and it
is the better-understood choice), linear warmup then inverse-square-root decay, loss =
next-token cross-entropy + 0.01 x aux loss per MoE layer (+ optional router z-loss).

    glam train --preset glam-tiny --corpus data/corpus.jsonl --steps 800 \
        --out runs/tiny --save-at 30

writes runs/tiny/step-000030/ and runs/tiny/final/ (model directories, see
glam/checkpoint.py) and runs/tiny/state/ (optimizer state for `--resume`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from flax import nnx

from glam import checkpoint
from glam.config import GlamConfig
from glam.corpus import TRAIN, Record, summarize
from glam.data import PackedBatches, PackedCorpus
from glam.layers import RouteOptions
from glam.losses import tied_softmax_cross_entropy
from glam.model import Glam, build
from glam.tokenizer import Tokenizer


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 800
    batch_size: int = 16
    seq_len: int = 256
    peak_lr: float = 3e-3  # tiny models take a high rate; the paper's 1e-2 is Adafactor's
    warmup_steps: int = 100
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    seed: int = 0
    save_at: tuple[int, ...] = ()


def learning_rate(train: TrainConfig) -> optax.Schedule:
    """Linear warmup to the peak, then peak * sqrt(warmup / step)."""
    warmup = max(train.warmup_steps, 1)

    def schedule(step: jax.Array) -> jax.Array:
        step = jnp.asarray(step, jnp.float32) + 1.0
        return train.peak_lr * jnp.minimum(step / warmup, jnp.sqrt(warmup / step))

    return schedule


def optimizer(train: TrainConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(train.clip_norm),
        optax.adamw(learning_rate(train), b1=0.9, b2=0.98, weight_decay=train.weight_decay),
    )


def loss_fn(
    params: nnx.State, graphdef: nnx.GraphDef, tokens_bs: jax.Array, cfg: GlamConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    model = nnx.merge(graphdef, params)
    mask_bs = jnp.ones(tokens_bs.shape, bool)
    x_bsd, router, _ = model.features(
        tokens_bs, mask_bs=mask_bs, options=RouteOptions(capacity_factor=cfg.capacity_factor)
    )
    # Every position but the last predicts the next token (packed rows: no padding).
    targets_bs = jnp.concatenate([tokens_bs[:, 1:], tokens_bs[:, :1]], axis=1)
    weights_bs = jnp.ones(tokens_bs.shape, jnp.float32).at[:, -1].set(0.0)
    ce = tied_softmax_cross_entropy(
        x_bsd.reshape(-1, x_bsd.shape[-1]),
        model.embed_vd[...],
        targets_bs.reshape(-1),
        weights_bs.reshape(-1),
    )
    aux = jnp.sum(router.aux_loss)
    z = jnp.sum(router.z_loss)
    loss = ce + cfg.aux_loss_weight * aux + cfg.z_loss_weight * z
    num_layers = max(router.aux_loss.shape[0], 1)
    metrics = {
        "loss": ce,
        "aux_loss": aux / num_layers,
        "z_loss": z / num_layers,
        "drop_rate": jnp.sum(router.drop_rate) / num_layers,
    }
    return loss, metrics


@functools.partial(jax.jit, static_argnames=("graphdef", "cfg", "tx"), donate_argnums=(0, 1))
def train_step(
    params: nnx.State,
    opt_state: optax.OptState,
    tokens_bs: jax.Array,
    *,
    graphdef: nnx.GraphDef,
    cfg: GlamConfig,
    tx: optax.GradientTransformation,
) -> tuple[nnx.State, optax.OptState, dict[str, jax.Array]]:
    grads, metrics = jax.grad(loss_fn, has_aux=True)(params, graphdef, tokens_bs, cfg)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics


@dataclasses.dataclass
class TrainResult:
    model: Glam
    steps: int
    tokens_seen: int
    wall_seconds: float
    history: list[dict[str, float]]
    saved: dict[int, Path]


def _state_manager(out: Path) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        (out / "state").resolve(),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
    )


def train(
    cfg: GlamConfig,
    records: Sequence[Record],
    tokenizer: Tokenizer,
    out: Path,
    train_cfg: TrainConfig,
    *,
    resume: bool = False,
    state_every: int = 100,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train on the corpus's training split; save model directories at `save_at` steps and
    at the end, and the full training state every `state_every` steps (for `resume`)."""
    out = Path(out)
    train_records = [r for r in records if r.split == TRAIN]
    if not train_records:
        raise ValueError("the corpus has no training documents")
    cfg = cfg.replace(vocab_size=tokenizer.vocab_size)
    batches = PackedBatches(
        PackedCorpus.from_records(train_records, tokenizer),
        batch_size=train_cfg.batch_size,
        seq_len=train_cfg.seq_len,
        seed=train_cfg.seed,
    )
    model = build(cfg, seed=train_cfg.seed)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optimizer(train_cfg)
    opt_state = tx.init(params)
    manager = _state_manager(out)
    start_step, history, wall_before = 0, [], 0.0
    if resume and manager.latest_step() is not None:
        restored = manager.restore(
            manager.latest_step(),
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(params),
                opt_state=ocp.args.StandardRestore(opt_state),
                progress=ocp.args.JsonRestore(),
            ),
        )
        params, opt_state = restored.params, restored.opt_state
        start_step = int(restored.progress["step"])
        history = list(restored.progress["history"])
        wall_before = float(restored.progress["wall_seconds"])

    corpus_meta = summarize(records).to_dict()
    saved: dict[int, Path] = {}
    started = time.perf_counter()

    def meta(step: int) -> dict[str, Any]:
        return {
            "step": step,
            "tokens_seen": step * train_cfg.batch_size * train_cfg.seq_len,
            "train": {**dataclasses.asdict(train_cfg), "save_at": list(train_cfg.save_at)},
            "wall_seconds": round(wall_before + time.perf_counter() - started, 1),
            "last_metrics": history[-1] if history else {},
            "corpus": corpus_meta,
        }

    def export(step: int, name: str) -> None:
        nnx.update(model, params)
        saved[step] = checkpoint.save(out / name, model, tokenizer, meta(step))

    # A step's metrics are read (a wait for the device) only once the next step has been
    # dispatched, so the host packs the next batch while the device computes.
    pending: tuple[int, dict[str, jax.Array]] | None = None

    def record(step: int, metrics: dict[str, jax.Array]) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        history.append(row)
        if progress:
            progress(step, row)

    for step in range(start_step, train_cfg.steps):
        tokens = jnp.asarray(batches.batch(step))
        params, opt_state, metrics = train_step(
            params, opt_state, tokens, graphdef=graphdef, cfg=cfg, tx=tx
        )
        done = step + 1
        if pending is not None:
            record(*pending)
        pending = (done, metrics)
        wants_state = done % state_every == 0 or done == train_cfg.steps
        if wants_state or done in train_cfg.save_at:
            record(*pending)  # saves carry the history up to this step
            pending = None
        if done in train_cfg.save_at and done != train_cfg.steps:
            export(done, f"step-{done:06d}")
        if wants_state:
            manager.save(
                done,
                args=ocp.args.Composite(
                    params=ocp.args.StandardSave(params),
                    opt_state=ocp.args.StandardSave(opt_state),
                    progress=ocp.args.JsonSave(
                        {
                            "step": done,
                            "history": history,
                            "wall_seconds": meta(done)["wall_seconds"],
                        }
                    ),
                ),
            )
    manager.wait_until_finished()
    export(train_cfg.steps, "final")
    nnx.update(model, params)
    (out / "history.json").write_text(json.dumps(history) + "\n")
    return TrainResult(
        model=model,
        steps=train_cfg.steps,
        tokens_seen=train_cfg.steps * train_cfg.batch_size * train_cfg.seq_len,
        wall_seconds=wall_before + time.perf_counter() - started,
        history=history,
        saved=saved,
    )
