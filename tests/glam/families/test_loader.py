"""Loading Hugging Face directories: what is accepted, and the one-line errors for what is
not; the tokenizer.json wrapper; checkpoints kept in bfloat16."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import glam
from glam.checkpoint import CheckpointError
from glam.families.loader import is_hf_dir
from glam.families.tokenizer import HFTokenizer
from glam.model import forward
from tests.glam.families import reference as ref

torch = ref.torch

TINY = dict(
    vocab_size=40, hidden_size=16, intermediate_size=8, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def mixtral_dir(tmp_path_factory):
    model = ref.build("MixtralConfig", "MixtralForCausalLM", **TINY)
    return ref.save(model, tmp_path_factory.mktemp("mixtral"), fused=False)


def _copy(source, target):
    target.mkdir()
    for file in source.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def test_a_glam_directory_is_not_taken_for_a_hugging_face_one(tmp_path, mixtral_dir):
    assert is_hf_dir(mixtral_dir)
    (tmp_path / "config.json").write_text(json.dumps({"name": "glam-tiny"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not is_hf_dir(tmp_path)


def test_an_unknown_model_type_is_one_line_naming_it(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "llama")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(CheckpointError) as error:
        glam.load(directory)
    message = str(error.value)
    assert "\n" not in message
    assert "'llama' is not supported" in message and "mixtral" in message


def test_a_missing_tensor_is_named(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "broken")
    tensors = load_file(directory / "model.safetensors")
    del tensors["model.layers.0.self_attn.k_proj.weight"]
    save_file(tensors, directory / "model.safetensors")
    with pytest.raises(
        CheckpointError, match=r"missing tensor model\.layers\.0\.self_attn\.k_proj"
    ):
        glam.load(directory)


def test_a_missing_expert_is_named(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "broken")
    tensors = load_file(directory / "model.safetensors")
    del tensors["model.layers.0.block_sparse_moe.experts.3.w3.weight"]
    save_file(tensors, directory / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"block_sparse_moe\.experts\.3\.w3\.weight"):
        glam.load(directory)


def test_a_tensor_the_config_does_not_explain_is_an_error(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "extra")
    tensors = load_file(directory / "model.safetensors")
    tensors["model.layers.0.self_attn.q_proj.bias"] = np.zeros(16, np.float32)
    save_file(tensors, directory / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"q_proj\.bias"):
        glam.load(directory)


def test_a_shape_mismatch_names_parameter_and_shapes(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "reshaped")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "intermediate_size": 9}))
    expected = r"experts\.down_proj has shape \(4, 16, 8\), expected \(4, 16, 9\)"
    with pytest.raises(CheckpointError, match=expected):
        glam.load(directory)


def test_an_unsupported_rope_type_is_refused(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "rope")
    config = json.loads((directory / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 1e4}
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"rope type 'longrope' is not supported"):
        glam.load(directory)


def test_a_missing_tokenizer_is_named(tmp_path, mixtral_dir):
    directory = _copy(mixtral_dir, tmp_path / "no-tokenizer")
    (directory / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer\.json is missing"):
        glam.load(directory)


def test_tokenizer_json_behind_glams_interface(mixtral_dir):
    tokenizer = glam.load(mixtral_dir).tokenizer
    assert isinstance(tokenizer, HFTokenizer)
    ids = tokenizer.encode("the expert router")
    assert tokenizer.pieces(ids) == ["the", "expert", "router"]
    assert tokenizer.encode_batch(["the gate", "of"]) == [tokenizer.encode("the gate"), [10]]
    assert tokenizer.decode([tokenizer.bos_id, *ids, tokenizer.eos_id]) == "the expert router"
    # special ids from config.json (Mixtral's defaults: bos 1, eos 2, no pad)
    assert (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (1, 2, 2)
    assert tokenizer.vocab_size == TINY["vocab_size"] == len(tokenizer.vocab())
    assert tokenizer.vocab()[3] == "the"
    assert HFTokenizer.load(mixtral_dir, {}).eos_id is None


def test_bfloat16_checkpoints_stay_bfloat16(tmp_path):
    model = ref.build("MixtralConfig", "MixtralForCausalLM", **TINY)
    tokens, mask = ref.batch(TINY["vocab_size"], lengths=(6, 4))
    expected = ref.run(model, tokens, mask)["logits"]
    directory = ref.save(model.to(torch.bfloat16), tmp_path / "bf16", fused=True)
    loaded = glam.load(directory)
    assert loaded.model.embed_tokens[...].dtype == jnp.bfloat16
    assert loaded.model.blocks[0].ffn.experts.gate_up_proj[...].dtype == jnp.bfloat16
    logits, trace = forward(loaded.model, tokens, mask, capture=True)
    assert trace.gate.dtype == np.float32
    np.testing.assert_allclose(np.asarray(logits, np.float32)[mask], expected[mask], atol=0.1)
