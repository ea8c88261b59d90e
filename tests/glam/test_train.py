"""Training, checkpoints, evaluation: the loss goes down and everything reloads exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from glam import checkpoint
from glam.corpus import read_corpus
from glam.data import PackedBatches, PackedCorpus
from glam.evaluate import evaluate
from glam.model import forward
from glam.train import TrainConfig, learning_rate, train

FAST = TrainConfig(steps=12, batch_size=4, seq_len=32, warmup_steps=3, peak_lr=1e-2)


@pytest.fixture(scope="module")
def trained(small_config, corpus_path, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    records = read_corpus(corpus_path)
    cfg = FAST.__class__(**{**FAST.__dict__, "save_at": (4,)})
    return train(small_config, records, tokenizer, out, cfg), out


def test_training_lowers_the_loss_on_a_fixed_batch(small_config, corpus_path, tokenizer, trained):
    result, out = trained
    batches = PackedBatches(
        PackedCorpus.from_records(read_corpus(corpus_path, "train"), tokenizer),
        batch_size=4,
        seq_len=32,
        seed=0,
    )
    fixed = batches.batch(0)
    untrained = checkpoint.load(out / "step-000004")  # an early checkpoint
    final = checkpoint.load(out / "final")

    def loss(model):
        _, trace = forward(model, fixed, capture=True)
        return float(np.nanmean(trace.nll))

    assert loss(final.model) < loss(untrained.model) - 0.3
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert {"loss", "aux_loss", "drop_rate", "z_loss"} <= set(result.history[0])


def test_checkpoint_reload_gives_identical_logits(trained, tokenizer):
    result, out = trained
    loaded = checkpoint.load(out / "final")
    tokens = np.asarray([tokenizer.encode("def add(a, b): return a + b")], np.int32)
    want, _ = forward(result.model, tokens)
    got, _ = forward(loaded.model, tokens)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert loaded.config == result.model.config
    assert loaded.meta["step"] == 12 and loaded.meta["tokens_seen"] == 12 * 4 * 32
    assert loaded.tokenizer.encode("こんにちは") == tokenizer.encode("こんにちは")


def test_resume_continues_to_the_same_weights(small_config, corpus_path, tokenizer, tmp_path):
    records = read_corpus(corpus_path)
    straight = train(small_config, records, tokenizer, tmp_path / "a", FAST)
    half = FAST.__class__(**{**FAST.__dict__, "steps": 6})
    train(small_config, records, tokenizer, tmp_path / "b", half, state_every=3)
    resumed = train(small_config, records, tokenizer, tmp_path / "b", FAST, resume=True)
    assert [h["step"] for h in resumed.history] == list(range(1, 13))
    tokens = np.arange(1, 20, dtype=np.int32)[None]
    np.testing.assert_allclose(
        np.asarray(forward(resumed.model, tokens)[0]),
        np.asarray(forward(straight.model, tokens)[0]),
        atol=1e-5,
    )


def test_packed_batches_are_deterministic_and_cover_the_stream(corpus_path, tokenizer):
    packed = PackedCorpus.from_records(read_corpus(corpus_path, "train"), tokenizer)
    a = PackedBatches(packed, batch_size=3, seq_len=16, seed=1)
    b = PackedBatches(packed, batch_size=3, seq_len=16, seed=1)
    c = PackedBatches(packed, batch_size=3, seq_len=16, seed=2)
    np.testing.assert_array_equal(a.batch(5), b.batch(5))
    assert not np.array_equal(a.batch(0), c.batch(0))
    epoch = np.concatenate([a.batch(i) for i in range(a.rows_per_epoch // 3)])
    assert (epoch == tokenizer.eos_id).sum() >= len(packed.documents) - 2


def test_learning_rate_warms_up_then_decays_as_inverse_sqrt():
    schedule = learning_rate(TrainConfig(peak_lr=1.0, warmup_steps=100))
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(99)) == pytest.approx(1.0)
    assert float(schedule(399)) == pytest.approx(0.5)


def test_evaluate_reports_every_domain(trained, corpus_path):
    _, out = trained
    loaded = checkpoint.load(out / "final")
    result = evaluate(loaded.model, loaded.tokenizer, read_corpus(corpus_path), seq_len=32)
    assert [d.domain for d in result.domains] == ["chat-ja", "code", "prose-en"]
    assert all(d.tokens > 0 for d in result.domains)
    total = sum(d.loss * d.tokens for d in result.domains) / sum(d.tokens for d in result.domains)
    assert result.overall.loss == pytest.approx(total)
    assert result.overall.loss < np.log(loaded.config.vocab_size)
    assert 0 <= result.drop_rate < 1
    assert json.loads(json.dumps(result.to_dict()))["overall"]["tokens"] == result.overall.tokens


def test_loading_a_missing_directory_names_the_problem(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match=r"config\.json is missing"):
        checkpoint.load(tmp_path)


def test_glam_load_is_the_package_entry_point(trained):
    import glam

    _, out = trained
    model, tokenizer, config = glam.load(out / "final")
    assert config.name == "test-train" and tokenizer.vocab_size == config.vocab_size
    assert model.config == config


def test_bfloat16_weights_load_as_float32_of_the_rounded_values(trained, tokenizer, tmp_path):
    result, _ = trained
    saved = checkpoint.save(tmp_path / "bf16", result.model, tokenizer, {"step": 12},
                            params_dtype="bfloat16")  # fmt: skip
    loaded = checkpoint.load(saved)
    assert loaded.meta["params_dtype"] == "bfloat16"
    want = result.model.embed_vd[...]
    got = loaded.model.embed_vd[...]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want.astype("bfloat16"), np.float32))
    assert not np.array_equal(np.asarray(got), np.asarray(want))  # really rounded
    full = sum(f.stat().st_size for f in (tmp_path / "bf16" / "params").rglob("*") if f.is_file())
    f32 = checkpoint.save(tmp_path / "f32", result.model, tokenizer, {"step": 12})
    full32 = sum(f.stat().st_size for f in (f32 / "params").rglob("*") if f.is_file())
    assert full < 0.75 * full32
