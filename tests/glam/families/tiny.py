"""Tiny random Hugging Face MoE directories, for tests that serve an imported model.

`write_tiny_checkpoint(path, family=..., num_experts=..., top_k=...)` saves a seeded random
transformers model with `save_pretrained` (the Hub's per-expert layout) plus a word-level
`tokenizer.json`: a real directory that `glam.load` and `GLAMLAB_CHECKPOINT` accept. Hidden
sizes stay tiny whatever the expert count, so a 256-expert / top-8 model loads and routes
in seconds on a CPU. From the command line (for the dashboard's browser tests):

    python -m tests.glam.families.tiny OUT_DIR --family qwen3_moe --experts 256 --top-k 8
    python -m tests.glam.families.tiny OUT_DIR --family deepseek_v3 --experts 256 --top-k 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally


@dataclasses.dataclass(frozen=True)
class Family:
    config: str  # transformers' config class
    model: str  # its ForCausalLM class
    experts_key: str  # config.json's name for the number of routed experts
    shape: dict[str, Any]  # tiny attention and FFN sizes, one dense layer where the family has them


FAMILIES = {
    "mixtral": Family(
        "MixtralConfig", "MixtralForCausalLM", "num_local_experts",
        dict(num_attention_heads=2, num_key_value_heads=1, intermediate_size=8),
    ),
    "olmoe": Family(
        "OlmoeConfig", "OlmoeForCausalLM", "num_experts",
        dict(num_attention_heads=2, num_key_value_heads=1, intermediate_size=8),
    ),
    "qwen2_moe": Family(
        "Qwen2MoeConfig", "Qwen2MoeForCausalLM", "num_experts",
        dict(num_attention_heads=2, num_key_value_heads=1, intermediate_size=16,
             moe_intermediate_size=8, shared_expert_intermediate_size=16, mlp_only_layers=[0]),
    ),
    "qwen3_moe": Family(
        "Qwen3MoeConfig", "Qwen3MoeForCausalLM", "num_experts",
        dict(num_attention_heads=2, num_key_value_heads=1, head_dim=8, intermediate_size=16,
             moe_intermediate_size=8, norm_topk_prob=True, mlp_only_layers=[0]),
    ),
    # DeepSeek-V3's own routing plan (8 groups, 4 chosen) when the expert count allows it.
    "deepseek_v3": Family(
        "DeepseekV3Config", "DeepseekV3ForCausalLM", "n_routed_experts",
        dict(first_k_dense_replace=1, num_attention_heads=2, num_key_value_heads=2,
             intermediate_size=16, moe_intermediate_size=8, q_lora_rank=16, kv_lora_rank=8,
             qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, n_shared_experts=1,
             routed_scaling_factor=2.5, norm_topk_prob=True),
    ),
}  # fmt: skip

# Real words, so that the dashboard's token views read as text; the rest of the vocabulary
# is filler pieces. Anything else encodes to <unk>.
WORDS = """the a of and to in is it that for on with as by this from at be are was not or an
expert experts router routing token tokens layer layers gate gates mixture sparse dense model
models def return class import print if else for while true false none self data value
le la les de des et est un une du bonjour merci oui non
. , : ; ( ) [ ] = + - * / ' " ! ?""".split()  # noqa: SIM905 (a word list reads better as text)
SPECIALS = ["<unk>", "<s>", "</s>"]


def write_tokenizer(directory: Path, vocab_size: int) -> None:
    """A word-level tokenizer.json of `vocab_size` pieces: specials, WORDS, then fillers."""
    import tokenizers

    pieces = [*SPECIALS, *dict.fromkeys(WORDS)][:vocab_size]
    pieces += [f"w{i}" for i in range(vocab_size - len(pieces))]
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.decoder = tokenizers.decoders.WordPiece()
    tok.add_special_tokens(SPECIALS)
    tok.save(str(directory / "tokenizer.json"))


def write_tiny_checkpoint(
    path: Path | str,
    family: str = "qwen3_moe",
    *,
    num_experts: int = 16,
    top_k: int = 4,
    num_layers: int = 3,
    hidden_size: int = 16,
    vocab_size: int = 128,
    max_len: int = 128,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """Write a tiny random Hugging Face MoE directory of `family` at `path` and return it.

    `num_experts` routed experts with `top_k` choices per token in every MoE layer (the
    first layer is dense for the families that have dense layers); `overrides` go to the
    transformers config as they are. Two calls with the same arguments write the same
    weights; another `seed` gives another checkpoint of the same shape."""
    from tests.glam.families import reference as ref

    spec = FAMILIES[family]
    shape = dict(spec.shape)
    if family == "deepseek_v3":
        groups = 8 if num_experts % 8 == 0 and num_experts // 8 * 4 >= top_k else 1
        shape.update(n_group=groups, topk_group=min(4, groups))
    config = {
        **shape,
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "max_position_embeddings": max_len,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 2,
        spec.experts_key: num_experts,
        "num_experts_per_tok": top_k,
        **overrides,
    }
    model = ref.build(spec.config, spec.model, seed=seed, **config)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    write_tokenizer(path, vocab_size)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.glam.families.tiny", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--family", choices=sorted(FAMILIES), default="qwen3_moe")
    parser.add_argument("--experts", type=int, default=256)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--hidden-size", type=int, default=16)
    parser.add_argument("--vocab-size", type=int, default=128)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_tiny_checkpoint(
        args.out_dir,
        args.family,
        num_experts=args.experts,
        top_k=args.top_k,
        num_layers=args.layers,
        hidden_size=args.hidden_size,
        vocab_size=args.vocab_size,
        max_len=args.max_len,
        seed=args.seed,
    )
    config = json.loads((path / "config.json").read_text())
    print(f"{path}: {config['model_type']}, {args.experts} experts, top-{args.top_k}")


if __name__ == "__main__":
    main()
