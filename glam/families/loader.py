"""Hugging Face model directories: config.json, *.safetensors, tokenizer.json -> `Loaded`.

A directory holds `model.safetensors`, or shards listed by `model.safetensors.index.json`
(any other `*.safetensors` files are read too). Tensors are read with safetensors'
`framework="flax"` (it reads bfloat16, which numpy cannot, straight into jax arrays) and
keep the checkpoint's dtype. Experts load from either layout: per-expert keys
(`...experts.{j}.gate_proj.weight`, Mixtral's `...experts.{j}.w1.weight`), stacked here,
or the fused `...mlp.experts.gate_up_proj` / `.down_proj` that transformers 5.x writes
with `save_original_format=False`. Every failure is one `CheckpointError` line naming the
file or tensor at fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from safetensors import safe_open

from glam.checkpoint import CheckpointError, Loaded
from glam.families import deepseek_v3, mixtral, olmoe, qwen2_moe, qwen3_moe
from glam.families.config import HFMoEConfig, TensorNames
from glam.families.model import HFMoEModel, abstract_model
from glam.families.tokenizer import FILENAME as TOKENIZER_FILE
from glam.families.tokenizer import HFTokenizer

FAMILIES: dict[str, ModuleType] = {
    module.MODEL_TYPE: module for module in (mixtral, olmoe, qwen2_moe, qwen3_moe, deepseek_v3)
}
INDEX_FILE = "model.safetensors.index.json"
# Tensors a checkpoint may hold that the model does not use.
_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")


def is_hf_dir(path: Path | str) -> bool:
    """A Hugging Face model directory: config.json with a model_type, and safetensors."""
    path = Path(path)
    config = path / "config.json"
    if not config.is_file() or not any(path.glob("*.safetensors")):
        return False
    try:
        return "model_type" in json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError):
        return False


class SafetensorsDir(contextlib.AbstractContextManager):
    """Every tensor of a directory's safetensors files, by name, opened lazily."""

    def __init__(self, path: Path):
        index = path / INDEX_FILE
        files = sorted(path.glob("*.safetensors"))
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted({path / name for name in weight_map.values()} | set(files))
        self._stack = contextlib.ExitStack()
        self._where: dict[str, Any] = {}
        for file in files:
            if not file.is_file():
                raise CheckpointError(
                    f"{path}: shard {file.name} listed in {INDEX_FILE} is missing"
                )
            handle = self._stack.enter_context(safe_open(str(file), framework="flax"))
            for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                self._where[key] = handle
        self.used: set[str] = set()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __contains__(self, key: str) -> bool:
        return key in self._where

    @property
    def keys(self) -> set[str]:
        return set(self._where)

    def get(self, key: str) -> jax.Array:
        self.used.add(key)
        return self._where[key].get_tensor(key)


def _missing(family: str, key: str) -> CheckpointError:
    return CheckpointError(f"{family} checkpoint is missing tensor {key}")


def _first_present(tensors: SafetensorsDir, family: str, candidates: list[str]) -> jax.Array:
    for key in candidates:
        if key in tensors:
            return tensors.get(key)
    raise _missing(family, candidates[0])


def _experts(
    tensors: SafetensorsDir, cfg: HFMoEConfig, names: TensorNames, layer: int, which: str
) -> jax.Array:
    """[e, 2f, d] gate_up or [e, d, f] down, from the fused key or stacked per expert."""
    fused = f"model.layers.{layer}.mlp.experts.{which}"
    if fused in tensors:
        return tensors.get(fused)
    gate, up, down = names.gate_up_down
    prefix = next(
        (
            f"model.layers.{layer}.{moe}.experts"
            for moe in dict.fromkeys((names.moe, "mlp"))
            if f"model.layers.{layer}.{moe}.experts.0.{down}.weight" in tensors
        ),
        None,
    )
    if prefix is None:
        raise _missing(cfg.family, fused)

    def one(j: int, proj: str) -> jax.Array:
        key = f"{prefix}.{j}.{proj}.weight"
        if key not in tensors:
            raise _missing(cfg.family, key)
        return tensors.get(key)

    if which == "down_proj":
        return jnp.stack([one(j, down) for j in range(cfg.num_experts)])
    return jnp.stack([jnp.concatenate([one(j, gate), one(j, up)]) for j in range(cfg.num_experts)])


def _tensor(
    tensors: SafetensorsDir, cfg: HFMoEConfig, names: TensorNames, path: tuple
) -> jax.Array:
    """The checkpoint tensor of one model parameter (its path in the nnx state)."""
    head, rest = path[0], [str(p) for p in path[1:]]
    if head == "embed_tokens":
        return _first_present(tensors, cfg.family, ["model.embed_tokens.weight"])
    if head == "final_norm":
        return _first_present(tensors, cfg.family, ["model.norm.weight"])
    if head == "lm_head":
        return _first_present(tensors, cfg.family, ["lm_head.weight"])
    layer, part, rest = int(rest[0]), rest[1], rest[2:]
    base = f"model.layers.{layer}"
    if part in ("attn_norm", "ffn_norm"):
        norm = "input_layernorm" if part == "attn_norm" else "post_attention_layernorm"
        return _first_present(tensors, cfg.family, [f"{base}.{norm}.weight"])
    if part == "attn":
        return _first_present(tensors, cfg.family, [f"{base}.self_attn.{'.'.join(rest)}"])
    if cfg.ffn_kind(layer) != "moe":
        return _first_present(tensors, cfg.family, [f"{base}.mlp.{'.'.join(rest)}"])
    sub = rest[0]
    if sub == "experts":
        return _experts(tensors, cfg, names, layer, rest[1])
    if sub == "gate":
        moe_prefixes = dict.fromkeys(("mlp", names.moe))
        return _first_present(tensors, cfg.family,
                              [f"{base}.{moe}.gate.{rest[1]}" for moe in moe_prefixes])  # fmt: skip
    if sub == "shared":
        return _first_present(tensors, cfg.family,
                              [f"{base}.mlp.{names.shared}.{'.'.join(rest[1:])}"])  # fmt: skip
    if sub == "shared_gate":
        return _first_present(tensors, cfg.family, [f"{base}.mlp.shared_expert_gate.weight"])
    raise CheckpointError(f"no checkpoint name for parameter {'.'.join(map(str, path))}")


def _check_unused(tensors: SafetensorsDir, cfg: HFMoEConfig) -> None:
    layer_of = re.compile(r"model\.layers\.(\d+)\.")
    for key in sorted(tensors.keys - tensors.used):
        match = layer_of.match(key)
        if match and int(match.group(1)) >= cfg.num_layers:
            continue  # e.g. DeepSeek-V3's multi-token-prediction layer, unused by inference
        if _IGNORED.match(key):
            continue
        if key.endswith("weight_scale_inv"):
            raise CheckpointError(
                f"{cfg.family} checkpoint is FP8-quantised ({key}); convert it to bfloat16 first"
            )
        if key.startswith("lm_head.") and cfg.tie_embeddings:
            continue
        raise CheckpointError(
            f"{cfg.family} checkpoint has tensor {key}, which its config.json does not account for"
        )


def read_config(path: Path) -> tuple[dict[str, Any], HFMoEConfig]:
    """config.json, and the HFMoEConfig its family makes of it."""
    hf = json.loads((path / "config.json").read_text())
    model_type = hf.get("model_type")
    family = FAMILIES.get(model_type)
    if family is None:
        raise CheckpointError(
            f"{path}: model_type {model_type!r} is not supported "
            f"(supported: {', '.join(sorted(FAMILIES))})"
        )
    try:
        cfg = family.parse_config(hf, name=path.name)
    except (KeyError, TypeError, ValueError) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else str(e)
        raise CheckpointError(f"{path}: {model_type} config.json: {detail}") from None
    cfg = cfg.replace(source=json.dumps(hf, sort_keys=True))
    return hf, cfg


def load_hf(path: Path | str) -> Loaded:
    """Load a Hugging Face MoE directory as a `Loaded` (model, tokenizer, config)."""
    path = Path(path).resolve()
    hf, cfg = read_config(path)
    if not (path / TOKENIZER_FILE).is_file():
        raise CheckpointError(f"{path}: {TOKENIZER_FILE} is missing")
    tokenizer = HFTokenizer.load(path, hf)
    names: TensorNames = FAMILIES[cfg.family].NAMES
    graphdef, abstract = nnx.split(abstract_model(cfg))
    params = {}
    with SafetensorsDir(path) as tensors:
        for var_path, variable in nnx.to_flat_state(abstract):
            array = _tensor(tensors, cfg, names, var_path)
            expected = tuple(variable.get_value().shape)
            if tuple(array.shape) != expected:
                raise CheckpointError(
                    f"{cfg.family} tensor for {'.'.join(map(str, var_path))} has shape "
                    f"{tuple(array.shape)}, expected {expected} from config.json"
                )
            params[var_path] = array
        _check_unused(tensors, cfg)
    state = nnx.from_flat_state([(p, v.replace(params[p])) for p, v in nnx.to_flat_state(abstract)])
    model: HFMoEModel = nnx.merge(graphdef, state)
    meta = {"format": "huggingface", "model_type": cfg.family}
    return Loaded(model=model, tokenizer=tokenizer, config=cfg, path=path, meta=meta)  # type: ignore[arg-type]


def weights_sha256(path: Path | str) -> str:
    """A digest of a directory's safetensors files (what `params_sha256` is for glam's)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).glob("*.safetensors")):
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
