"""`HFMoEModel`: an imported MoE decoder that `glam.model.forward` runs unchanged.

    loaded = glam.load("path/to/hf-checkpoint")     # config.json + *.safetensors
    logits, trace = glam.model.forward(loaded.model, tokens, mask, capture=True)

It has the call signature and the module layout forward relies on: `model(tokens_bs,
mask_bs=, ablated_le=, options=, capacity_b=)` returns (logits, RouterStats, caches);
`model.blocks[i].kind` is "moe" or "dense" and each MoE block's `ffn` sows the routing
record; `model.config` and `model.mesh`. Pre-norm blocks as in all five families:
h = x + attn(norm(x)); out = h + ffn(norm(h)); a final norm, then the output head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from glam.families.attention import Attention, KVCache, MLAttention
from glam.families.config import HFMoEConfig
from glam.families.layers import MLP, Linear, RMSNorm, SparseMoE
from glam.layers import NEVER_DROP, RouteOptions, RouterStats
from glam.params import ParamCount


class Block(nnx.Module):
    """One decoder layer: attention, then a dense SwiGLU MLP or a sparse MoE."""

    def __init__(self, cfg: HFMoEConfig, layer: int):
        self.attn_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = MLAttention(cfg, layer) if cfg.attention == "mla" else Attention(cfg, layer)
        self.ffn_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.kind = cfg.ffn_kind(layer)
        if self.kind == "moe":
            self.ffn = SparseMoE(cfg)
        else:
            self.ffn = MLP(cfg.d_model, cfg.dense_ff, act=cfg.hidden_act)

    def __call__(
        self,
        x_bsd: jax.Array,
        *,
        q_pos: jax.Array,
        mask_bs: jax.Array,
        key_mask_bt: jax.Array,
        ablated_e: jax.Array | None,
        options: RouteOptions,
        cache: KVCache | None = None,
    ) -> tuple[jax.Array, RouterStats | None, KVCache | None]:
        attn_bsd, cache = self.attn(
            self.attn_norm(x_bsd), q_pos=q_pos, key_mask_bt=key_mask_bt, cache=cache
        )
        x_bsd = x_bsd + attn_bsd
        normed_bsd = self.ffn_norm(x_bsd)
        if self.kind != "moe":
            return x_bsd + self.ffn(normed_bsd), None, cache
        ffn_bsd, routing = self.ffn(normed_bsd, mask_bs=mask_bs, ablated_e=ablated_e,
                                    options=options)  # fmt: skip
        stats = RouterStats(routing.aux_loss, routing.z_loss, jnp.zeros((), jnp.float32))
        return x_bsd + ffn_bsd, stats, cache


class HFMoEModel(nnx.Module):
    """Embedding, decoder layers, final norm and output head (tied or not)."""

    def __init__(self, cfg: HFMoEConfig):
        self.config = cfg
        self.embed_tokens = nnx.Param(jnp.zeros((cfg.vocab_size, cfg.d_model), jnp.float32))
        self.blocks = nnx.List([Block(cfg, i) for i in range(cfg.num_layers)])
        self.final_norm = RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else Linear(cfg.d_model, cfg.vocab_size)
        self.mesh: jax.sharding.Mesh | None = None  # never sharded (forward checks it)

    def __call__(
        self,
        tokens_bs: jax.Array,
        *,
        mask_bs: jax.Array,
        ablated_le: jax.Array | None = None,
        options: RouteOptions = NEVER_DROP,
        q_pos: jax.Array | None = None,
        key_mask_bt: jax.Array | None = None,
        caches: Sequence[KVCache] | None = None,
        capacity_b: jax.Array | None = None,  # dropless: capacities unused
    ) -> tuple[jax.Array, RouterStats, list[KVCache] | None]:
        """Logits [b, s, v] in the model's dtype, router statistics stacked over the MoE
        layers and the updated KV caches (arguments as `glam.model.Glam.features`)."""
        x_bsd = self.embed_tokens[...][tokens_bs]
        if q_pos is None:
            q_pos = jnp.arange(tokens_bs.shape[1])
        if key_mask_bt is None:
            key_mask_bt = mask_bs
        stats, new_caches = [], []
        for index, block in enumerate(self.blocks):
            x_bsd, layer_stats, cache = block(
                x_bsd,
                q_pos=q_pos,
                mask_bs=mask_bs,
                key_mask_bt=key_mask_bt,
                ablated_e=(
                    ablated_le[len(stats)]
                    if ablated_le is not None and block.kind == "moe"
                    else None
                ),
                options=options,
                cache=None if caches is None else caches[index],
            )
            new_caches.append(cache)
            if layer_stats is not None:
                stats.append(layer_stats)
        x_bsd = self.final_norm(x_bsd)
        if self.lm_head is None:
            logits = jnp.einsum("bsd,vd->bsv", x_bsd, self.embed_tokens[...].astype(x_bsd.dtype))
        else:
            logits = self.lm_head(x_bsd)
        if stats:
            router = RouterStats(*(jnp.stack(field) for field in zip(*stats, strict=True)))
        else:
            router = RouterStats(*(jnp.zeros((0,), jnp.float32) for _ in RouterStats._fields))
        return logits, router, new_caches if caches is not None else None


def abstract_model(cfg: HFMoEConfig) -> HFMoEModel:
    """The model with ShapeDtypeStructs for parameters (what the loader fills)."""
    return nnx.eval_shape(lambda: HFMoEModel(cfg))


def count_params(cfg: HFMoEConfig) -> ParamCount:
    """`glam.params.ParamCount` of an imported model, from shapes: each MoE layer's token
    uses top_k of its routed experts (shared experts and everything else always)."""
    sizes = {
        path: math.prod(variable.get_value().shape)
        for path, variable in nnx.to_flat_state(nnx.state(abstract_model(cfg), nnx.Param))
    }
    total = sum(sizes.values())
    expert = sum(n for path, n in sizes.items() if "experts" in path)
    embedding = sum(n for path, n in sizes.items() if path[-1] == "embed_tokens")
    activated_expert = expert * cfg.top_k // cfg.num_experts if expert else 0
    return ParamCount(total=total, activated=total - expert + activated_expert, expert=expert,
                      embedding=embedding)  # fmt: skip
