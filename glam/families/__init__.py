"""Imported Hugging Face MoE families: Mixtral, OLMoE, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3.

    loaded = glam.load("path/to/hf-dir")   # config.json, *.safetensors, tokenizer.json
    logits, trace = glam.model.forward(loaded.model, tokens, mask, capture=True)

One router (router.py), one set of layers (layers.py), one model (model.py) and one config
type (config.py) serve every family; a family module (mixtral.py, ...) maps its config.json
onto `HFMoEConfig` and names its expert tensors; loader.py reads the directory.
docs/FAMILIES.md describes each family's routing as implemented.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: the family modules import glam.families.config, and need not load the loader.
    if name in ("load_hf", "is_hf_dir", "FAMILIES"):
        from glam.families import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'glam.families' has no attribute {name!r}")
