"""Reference runs for the imported families: tiny random transformers models, saved as real
Hugging Face directories, and what transformers itself computes on them.

Every parameter and buffer is drawn from a seeded generator (norm weights near 1, biases
and DeepSeek's choice bias non-zero) so that no tensor sits at its init value and the
choices are not near-ties. Runs are float32 with eager attention and eager experts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is built locally
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from safetensors.numpy import load_file, save_file  # noqa: E402

WORDS = ["the", "expert", "router", "token", "layer", "gate", "mixture", "of", "sparse"]


def build(config_cls: str, model_cls: str, seed: int = 0, **overrides: Any):
    """A tiny random float32 model, every tensor re-drawn from `seed`."""
    torch.manual_seed(seed)
    config = getattr(transformers, config_cls)(
        attn_implementation="eager", experts_implementation="eager", **overrides
    )
    model = getattr(transformers, model_cls)(config).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if "inv_freq" in name:
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("norm.weight") or "layernorm" in name:
                tensor.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                tensor.copy_(0.1 * noise)
            else:
                fan_in = tensor.shape[-1] if tensor.ndim > 1 else 1
                tensor.copy_(noise * fan_in**-0.5)
    return model


def write_tokenizer(directory: Path, vocab_size: int) -> None:
    """A word-level tokenizer.json over WORDS plus filler pieces up to `vocab_size`."""
    pieces = ["<unk>", "<s>", "</s>", *WORDS]
    pieces += [f"w{i}" for i in range(vocab_size - len(pieces))]
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.decoder = tokenizers.decoders.WordPiece()
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.save(str(directory / "tokenizer.json"))


def save(model, directory: Path, *, fused: bool) -> Path:
    """save_pretrained in the per-expert (Hub) layout, or the fused one, plus a tokenizer."""
    model.save_pretrained(directory, save_original_format=not fused)
    write_tokenizer(directory, model.config.vocab_size)
    return directory


def shard(directory: Path) -> None:
    """Split model.safetensors into two shards listed by model.safetensors.index.json."""
    tensors = load_file(directory / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}  # fmt: skip
    weight_map = {}
    for file, keys in halves.items():
        save_file({k: tensors[k] for k in keys}, directory / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, file))
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )


def batch(vocab_size: int, seed: int = 0, lengths: tuple[int, ...] = (12, 7, 3)):
    """Random tokens [B, S] with right padding (0) after each row's length, and the mask."""
    rng = np.random.default_rng(seed)
    seq = max(lengths)
    tokens = rng.integers(3, vocab_size, size=(len(lengths), seq)).astype(np.int32)
    mask = np.arange(seq)[None, :] < np.asarray(lengths)[:, None]
    return np.where(mask, tokens, 0).astype(np.int32), mask


def run(model, tokens: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """transformers' logits and, per MoE layer, its router's (logits, weights, indices),
    caught by forward hooks on each `mlp.gate` ([B*S, ...] reshaped to [B, S, ...])."""
    routers: list[tuple[np.ndarray, ...]] = []
    hooks = []
    batch_size, seq = tokens.shape
    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is None or not hasattr(gate, "top_k"):
            continue

        def hook(_module, _inputs, output):
            logits, weights, indices = (t.detach().float().numpy() for t in output)
            routers.append(
                tuple(a.reshape(batch_size, seq, -1) for a in (logits, weights, indices))
            )

        hooks.append(gate.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(
                input_ids=torch.as_tensor(tokens, dtype=torch.long),
                attention_mask=torch.as_tensor(mask, dtype=torch.long),
            )
    finally:
        for handle in hooks:
            handle.remove()
    return {"logits": out.logits.float().numpy(), "routers": routers}
