"""Run by test_sharding.py in a fresh process with 8 forced host devices."""

import json
import sys

import numpy as np

from glam import sharding
from glam.config import GlamConfig
from glam.model import build, forward

cfg = GlamConfig(
    name="test-sharded",
    vocab_size=97,
    d_model=32,
    d_ff=64,
    num_layers=4,
    num_heads=2,
    head_dim=16,
    num_experts=8,
    capacity_factor=2.0,
)
rng = np.random.default_rng(0)
tokens = rng.integers(0, cfg.vocab_size, (3, 24)).astype(np.int32)  # 3 rows: padded to 4
mask = np.ones_like(tokens, bool)
mask[1, 15:] = False
ablate = {3: [2]}

single = build(cfg, seed=1)
ref_logits, ref_trace = forward(single, tokens, mask, capture=True, ablate=ablate)

sharded = sharding.shard_model(build(cfg, seed=1), sharding.make_mesh(data=2, expert=4))
expert_weight = sharded.blocks[1].ffn.up_edf[...]
logits, trace = forward(sharded, tokens, mask, capture=True, ablate=ablate)

report = {
    "devices": len(expert_weight.sharding.device_set),
    "expert_shard_rows": int(expert_weight.addressable_shards[0].data.shape[0]),
    "logits_max_diff": float(np.abs(np.asarray(logits) - np.asarray(ref_logits)).max()),
    "experts_equal": bool((trace.expert == ref_trace.expert).all()),
    "kept_equal": bool((trace.kept == ref_trace.kept).all()),
    "gate_max_diff": float(np.abs(trace.gate - ref_trace.gate).max()),
    "aux_max_diff": float(np.abs(trace.aux_loss - ref_trace.aux_loss).max()),
    "nll_max_diff": float(np.nanmax(np.abs(trace.nll - ref_trace.nll))),
    "shape": list(np.asarray(logits).shape),
}
json.dump(report, sys.stdout)
