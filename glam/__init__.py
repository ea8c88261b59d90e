"""GLaM in JAX / Flax NNX: the model whose every forward pass reports its routing.

import glam
model, tokenizer, config = glam.load()          # the shipped model
model, tokenizer, config = glam.load("runs/tiny/final")
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so `import glam.trace` (all that storage needs) does not import the model code.
    if name == "load":
        from glam.checkpoint import load

        return load
    raise AttributeError(f"module 'glam' has no attribute {name!r}")
