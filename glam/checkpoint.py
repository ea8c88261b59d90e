"""Model directories: what a trained GLaM is on disk, and `glam.load`.

A model directory holds `config.json` (the GlamConfig), `tokenizer.model`, `params/` (an
Orbax checkpoint of the parameters, float32 or bfloat16; restored as float32) and
`meta.json` (step, tokens seen, params_dtype, ...).
Training state for resuming (optimizer moments) lives elsewhere: see glam/train.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from glam.config import GlamConfig
from glam.model import Glam, build
from glam.tokenizer import Tokenizer

CONFIG_FILE, META_FILE, PARAMS_DIR, TOKENIZER_FILE = (
    "config.json",
    "meta.json",
    "params",
    "tokenizer.model",
)
# The shipped model: checkpoints/ beside the package (an editable install or a source
# checkout), overridable for installed copies and containers.
REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = "glam-64e"


class CheckpointError(ValueError):
    """A model directory that is missing or incomplete."""


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A model ready to run, with what it needs to read and write text."""

    model: Glam
    tokenizer: Tokenizer
    config: GlamConfig
    path: Path
    meta: dict[str, Any]

    def __iter__(self):  # model, tokenizer, config = glam.load(...)
        return iter((self.model, self.tokenizer, self.config))


def shipped_dir(which: str = "final") -> Path:
    root = Path(os.environ.get("GLAM_CHECKPOINTS", REPO_ROOT / "checkpoints"))
    return root / SHIPPED_MODEL / which


def save(
    path: Path | str,
    model: Glam,
    tokenizer: Tokenizer,
    meta: dict[str, Any],
    *,
    params_dtype: str = "float32",
) -> Path:
    """Write a model directory atomically (a temporary sibling, renamed when complete).

    `params_dtype="bfloat16"` stores the weights at half the size (the shipped models);
    `load` always restores float32, so compute is float32 either way."""
    path = Path(path).resolve()
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    (staging / TOKENIZER_FILE).write_bytes(tokenizer.to_bytes())
    params = jax.device_get(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    params = jax.tree.map(lambda a: np.asarray(a).astype(params_dtype, copy=False), params)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(staging / PARAMS_DIR, params)
    meta = {**meta, "params_dtype": params_dtype}
    (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    # Swap: the old directory is moved aside before the new one takes its name, so a crash
    # at any point leaves a complete model directory under one of the two names.
    previous = path.with_name(path.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if path.exists():
        path.rename(previous)
    staging.rename(path)
    shutil.rmtree(previous, ignore_errors=True)
    return path


def params_sha256(path: Path | str) -> str:
    """A digest of the parameter files, stable across copies of the directory: the
    `params/` files of a GLaM directory, the safetensors of a Hugging Face one."""
    from glam.families.loader import is_hf_dir, weights_sha256

    if is_hf_dir(path):
        return weights_sha256(path)
    digest = hashlib.sha256()
    params = Path(path) / PARAMS_DIR
    for file in sorted(p for p in params.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(params)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def load(path: Path | str | None = None) -> Loaded:
    """Load a model directory; with no argument, the shipped model. A Hugging Face MoE
    directory (config.json with a model_type, *.safetensors) loads through glam.families."""
    path = Path(path).resolve() if path is not None else shipped_dir()
    from glam.families.loader import is_hf_dir, load_hf

    if is_hf_dir(path):
        return load_hf(path)
    for name in (CONFIG_FILE, TOKENIZER_FILE, PARAMS_DIR):
        if not (path / name).exists():
            raise CheckpointError(f"{path} is not a model directory: {name} is missing")
    config = GlamConfig.from_dict(json.loads((path / CONFIG_FILE).read_text()))
    tokenizer = Tokenizer.load(path / TOKENIZER_FILE)
    model = build(config, seed=0)
    target = jax.device_get(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    with ocp.StandardCheckpointer() as checkpointer:
        restored = checkpointer.restore(path / PARAMS_DIR, abstract)
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, restored))
    nnx.update(model, state)
    meta_file = path / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    return Loaded(model=model, tokenizer=tokenizer, config=config, path=path, meta=meta)
